"""stratosd's watch caches against the fake API server: they converge after
creates, updates and deletes; a dropped watch resumes without a LIST; a
forced 410 (in-stream ERROR or HTTP status) relists and ends identical to
the server; /readyz waits for the caches; pods cost little memory."""

import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubesim as ks  # noqa: E402
import stratos_testlib as tl  # noqa: E402
import yaml  # noqa: E402


class KubeCaches(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.sim = ks.Sim()
        # Fast bookmarks so a quiet stream still moves its resourceVersion.
        st, body = cls.sim.api.post("/_sim/config", {"bookmarkInterval": 0.5})
        assert st == 200, body
        st, body = cls.sim.api.post("/api/v1/namespaces",
                                    {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "ci"}})
        assert st == 201, body
        cls.daemon = ks.Daemon(cls.sim)
        cls.daemon.wait_synced()

    @classmethod
    def tearDownClass(cls):
        try:
            rc, _ = cls.daemon.stop()
            assert rc == 0, "stratosd exited with %d" % rc
        finally:
            cls.sim.down()

    def create(self, path, obj):
        st, body = self.sim.api.post(path, obj)
        self.assertEqual(st, 201, body)
        return body

    def converge(self, *resources):
        for r in resources or ks.PATHS:
            ks.wait_converged(self, self.daemon, self.sim, r)

    def test_a_converges_after_create_update_delete(self):
        for i in range(20):
            self.create("/api/v1/nodes", ks.node("conv-%02d" % i, pool="ci-runners" if i % 2
                                                 else "inference", state="standby", images=5))
        for i in range(40):
            ns = "ci" if i % 2 else "default"
            self.create("/api/v1/namespaces/%s/pods" % ns,
                        ks.pod(ns, "conv-%02d" % i, node_name="conv-%02d" % (i % 20)))
        with open(os.path.join(ks.REPO, "tests", "fixtures", "seed-examples.yaml")) as f:
            for doc in yaml.safe_load_all(f):
                if doc and doc["kind"] in ("NodePool", "AWSNodeClass"):
                    plural = doc["kind"].lower() + ("es" if doc["kind"].endswith("s") else "s")
                    self.create("/apis/stratos.sh/v1alpha1/" + plural, doc)
        self.converge()

        # Updates: a transition's label patch, a pod label, a pool's spec.
        for i in range(0, 20, 3):
            st, body = self.sim.api.patch("/api/v1/nodes/conv-%02d" % i,
                                          {"metadata": {"labels": {"stratos.sh/state": "running"}}})
            self.assertEqual(st, 200, body)
        st, body = self.sim.api.patch("/api/v1/namespaces/ci/pods/conv-01",
                                      {"metadata": {"labels": {"touched": "yes"}}})
        self.assertEqual(st, 200, body)
        st, body = self.sim.api.patch("/apis/stratos.sh/v1alpha1/nodepools/ci-runners",
                                      {"spec": {"minStandby": 1}})
        self.assertEqual(st, 200, body)
        # Deletes.
        for i in range(15, 20):
            st, body = self.sim.api.delete("/api/v1/nodes/conv-%02d" % i)
            self.assertEqual(st, 200, body)
        for i in range(30, 40):
            ns = "ci" if i % 2 else "default"
            st, body = self.sim.api.delete("/api/v1/namespaces/%s/pods/conv-%02d" % (ns, i))
            self.assertEqual(st, 200, body)
        st, body = self.sim.api.delete("/apis/stratos.sh/v1alpha1/nodepools/on-demand")
        self.assertEqual(st, 200, body)
        self.converge()

        summary = {c["resource"]: c for c in self.daemon.debug()["caches"]}
        for r in ks.PATHS:
            self.assertTrue(summary[r]["synced"], r)
            self.assertEqual(self.daemon.metric("stratos_cache_objects", resource=r),
                             summary[r]["count"], r)
        self.assertEqual(summary["nodepools"]["count"], 2)
        self.assertEqual(summary["awsnodeclasses"]["count"], 3)
        # Only the fields DESIGN §8 lists: a few hundred bytes per pod.
        self.assertGreater(summary["pods"]["bytesPerObject"], 50)
        self.assertLess(summary["pods"]["bytesPerObject"], 600)

    def test_b_dropped_watch_resumes_without_relist(self):
        for mode in ("clean", "abort"):
            with self.subTest(mode=mode):
                self.converge("nodes")
                # Converged says the LIST (or the last event) is applied, not that the
                # next WATCH is open yet: wait for the one the test drops.
                self.sim.wait_watch_open("nodes")
                self.sim.reset_requests()
                restarts = self.daemon.metric("stratos_kube_watch_restarts_total",
                                              resource="nodes",
                                              reason="closed" if mode == "clean" else "dropped") or 0
                self.assertGreaterEqual(self.sim.drop_watches("nodes", mode), 1)
                name = "drop-%s" % mode
                created = self.create("/api/v1/nodes", ks.node(name, pool="ci-runners",
                                                               state="warmup"))
                st, patched = self.sim.api.patch("/api/v1/nodes/conv-01",
                                                 {"metadata": {"labels": {"dropped": mode}}})
                self.assertEqual(st, 200, patched)
                # Only stratosd's own requests may be counted: no LIST from the test yet.
                ks.wait_cache_has(self.daemon, "nodes", {
                    name: created["metadata"]["resourceVersion"],
                    "conv-01": patched["metadata"]["resourceVersion"]})
                tl.wait_for(lambda: self.sim.watches().get("nodes") == 1, 10,
                            what="one nodes watch open again")
                counts = self.sim.requests()
                self.assertEqual(counts.get("list nodes", 0), 0, counts)
                self.assertGreaterEqual(counts.get("watch nodes", 0), 1, counts)
                self.assertGreater(self.daemon.metric(
                    "stratos_kube_watch_restarts_total", resource="nodes",
                    reason="closed" if mode == "clean" else "dropped") or 0, restarts)
                self.converge("nodes")

    def forced_410(self, mode):
        # No bookmark may move the watch past the compaction point meanwhile.
        st, body = self.sim.api.post("/_sim/config", {"bookmarkInterval": 3600})
        self.assertEqual(st, 200, body)
        self.addCleanup(self.sim.api.post, "/_sim/config", {"bookmarkInterval": 0.5})
        self.converge("nodes")
        # Something else changes, so the nodes watch's version is older than "now".
        self.create("/api/v1/namespaces/default/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "bump-%s" % mode}, "data": {"a": "b"}})
        start = len(self.daemon.logs)
        gone = self.daemon.metric("stratos_kube_watch_restarts_total", resource="nodes",
                                  reason="gone") or 0
        self.sim.wait_watch_open("nodes")
        self.sim.reset_requests()
        self.sim.compact("nodes", mode)
        self.assertGreaterEqual(self.sim.drop_watches("nodes", "clean"), 1)
        # While it relists, the world moves on.
        st, body = self.sim.api.delete("/api/v1/nodes/conv-02")
        self.assertIn(st, (200, 404), body)
        self.create("/api/v1/nodes", ks.node("after-410-%s" % mode, pool="inference"))
        line = self.daemon.wait_log(
            lambda o: o.get("msg") == "resourceVersion expired (410); relisting" and
            o.get("resource") == "nodes", 15, start=start)
        self.assertEqual(line["form"], "HTTP 410" if mode == "http" else "ERROR event")
        self.daemon.wait_log(lambda o: o.get("msg") == "listed" and
                             o.get("resource") == "nodes", 15, start=start)
        # Counted before the test lists anything itself: the LIST is stratosd's.
        counts = self.sim.requests()
        self.assertGreaterEqual(counts.get("list nodes", 0), 1, counts)
        self.converge("nodes")
        self.assertGreater(self.daemon.metric("stratos_kube_watch_restarts_total",
                                              resource="nodes", reason="gone"), gone)
        # The new watch (from the relist's version) works.
        self.create("/api/v1/nodes", ks.node("after-410-%s-2" % mode, pool="inference"))
        self.converge("nodes")

    def test_c_forced_410_in_stream_relists(self):
        self.forced_410("event")

    def test_d_forced_410_http_relists(self):
        self.forced_410("http")

    def test_e_bookmarks_are_followed(self):
        before = self.daemon.debug("nodes")["bookmarks"]
        tl.wait_for(lambda: self.daemon.debug("nodes")["bookmarks"] > before, 10,
                    what="a BOOKMARK on the quiet nodes watch")
        # The cache's version follows the bookmark to the server's current one.
        st, health = self.sim.api.get("/_sim/health")
        self.assertEqual(st, 200)
        tl.wait_for(lambda: int(self.daemon.debug("nodes")["resourceVersion"]) >=
                    int(health["resourceVersion"]), 10, what="resourceVersion from bookmarks")


    def mutate_patches(self, review):
        """Whether the pod webhook knows the pod's pool: only then does its patch
        tolerate the pool's startup taint (node.eks.amazonaws.com/not-ready)."""
        r = tl.http_request(self.daemon.https_port, "POST", "/admission/mutate-pod",
                            body=json.dumps(review))
        self.assertEqual(r.status, 200, r.body)
        patch = r.json()["response"].get("patch")
        self.assertIsNotNone(patch)          # a stratos.sh/pool nodeSelector: a pool pod
        return b"node.eks.amazonaws.com/not-ready" in base64.b64decode(patch)

    def test_f_pools_registry_follows_the_cluster(self):
        # The NodePools of the cluster reach the webhook through the watch.
        with open(os.path.join(ks.REPO, "tests", "fixtures", "admission",
                               "pod-create-pool.json")) as f:
            review = json.load(f)
        st, body = self.daemon.get("/readyz")
        self.assertIn(b'"pools"', body)
        tl.wait_for(lambda: self.mutate_patches(review), 10, what="ci-runners known")
        st, pool = self.sim.api.get("/apis/stratos.sh/v1alpha1/nodepools/ci-runners")
        self.assertEqual(st, 200)
        st, body = self.sim.api.delete("/apis/stratos.sh/v1alpha1/nodepools/ci-runners")
        self.assertEqual(st, 200, body)
        tl.wait_for(lambda: not self.mutate_patches(review), 10, what="ci-runners forgotten")
        for k in ("resourceVersion", "uid", "creationTimestamp", "generation",
                  "managedFields"):
            pool["metadata"].pop(k, None)
        pool.pop("status", None)
        self.create("/apis/stratos.sh/v1alpha1/nodepools", pool)
        tl.wait_for(lambda: self.mutate_patches(review), 10, what="ci-runners back")
        self.converge("nodepools")

    def pool_delete_warnings(self, pool):
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "0d5e1e7e-0000-4000-8000-000000000001",
            "kind": {"group": "stratos.sh", "version": "v1alpha1", "kind": "NodePool"},
            "resource": {"group": "stratos.sh", "version": "v1alpha1", "resource": "nodepools"},
            "name": pool, "operation": "DELETE", "userInfo": {"username": "admin"},
            "object": None,
            "oldObject": {"apiVersion": "stratos.sh/v1alpha1", "kind": "NodePool",
                          "metadata": {"name": pool}}}}
        r = tl.http_request(self.daemon.https_port, "POST", "/admission/validate-nodepool",
                            body=json.dumps(review))
        self.assertEqual(r.status, 200, r.body)
        resp = r.json()["response"]
        self.assertIs(resp["allowed"], True)
        return resp.get("warnings", [])

    def test_g_validating_webhook_counts_the_pools_nodes_from_the_cache(self):
        self.assertEqual(self.pool_delete_warnings("counted"), [])
        for i in range(3):
            self.create("/api/v1/nodes", ks.node("counted-%d" % i, pool="counted", state="standby"))
        warning = "deleting NodePool counted drains its %d node(s) and terminates their instances"
        tl.wait_for(lambda: self.pool_delete_warnings("counted") == [warning % 3], 10,
                    what="three nodes counted")
        st, body = self.sim.api.delete("/api/v1/nodes/counted-0")
        self.assertEqual(st, 200, body)
        tl.wait_for(lambda: self.pool_delete_warnings("counted") == [warning % 2], 10,
                    what="two nodes counted")


class ReadyzWaitsForCaches(unittest.TestCase):

    def test_not_ready_until_the_crds_exist(self):
        sim = ks.Sim(self, crds=False)
        self.addCleanup(sim.down)
        with ks.Daemon(sim) as d:
            # Wait for what the test reads: the nodes cache listed, the nodepools LIST refused.
            def settled():
                s = {c["resource"]: c for c in d.debug()["caches"]}
                return s["nodes"]["synced"] and s["nodepools"]["lastError"]
            tl.wait_for(settled, 15, what="nodes synced and a failed nodepools list")
            st, body = d.get("/readyz")
            self.assertEqual(st, 503, body)
            self.assertIn(b"not synced", body)
            summary = {c["resource"]: c for c in d.debug()["caches"]}
            self.assertTrue(summary["nodes"]["synced"])
            self.assertFalse(summary["nodepools"]["synced"])
            self.assertIn("could not find the requested resource",
                          summary["nodepools"]["lastError"])
            sim.apply_crds()
            # The informers retry with backoff (capped at 30 s) and then list.
            d.wait_synced(timeout=40)
            rc, _ = d.stop()
            self.assertEqual(rc, 0)

    def test_bad_kubeconfig_is_a_config_error(self):
        d = tl.tempdir(self)
        path = os.path.join(d, "kubeconfig")
        with open(path, "w") as f:
            f.write("current-context: x\ncontexts:\n- name: x\n  context: {}\n")
        r = tl.run_stratosd(["--insecure-http", "--listen", "127.0.0.1:0", "--metrics-listen",
                             "127.0.0.1:0", "--kubeconfig", path])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("contexts[name=x].context.cluster: missing", r.stderr)


if __name__ == "__main__":
    unittest.main()
