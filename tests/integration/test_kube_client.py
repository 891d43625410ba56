"""The REST calls of the Kubernetes client against the fake API server:
binding, eviction (with a PodDisruptionBudget), events.k8s.io Events, the
status subresource of a NodePool, SelfSubjectAccessReview; and a rotated
service-account token picked up after the server refuses the old one."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubesim as ks  # noqa: E402
import stratos_testlib as tl  # noqa: E402
import yaml  # noqa: E402


class RestCalls(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.driver = tl.driver_path("kube_driver")
        cls.sim = ks.Sim()
        st, body = cls.sim.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": "ci"}})
        assert st == 201, body

    @classmethod
    def tearDownClass(cls):
        cls.sim.down()

    def call(self, op, *args):
        r = subprocess.run([self.driver, op, "--kubeconfig", self.sim.kubeconfig] + list(args),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def test_bind(self):
        self.sim.api.post("/api/v1/nodes", ks.node("bind-node"))
        st, body = self.sim.api.post("/api/v1/namespaces/ci/pods", ks.pod("ci", "bind-me"))
        self.assertEqual(st, 201, body)
        self.assertTrue(self.call("bind", "ci", "bind-me", "bind-node")["ok"])
        st, pod = self.sim.api.get("/api/v1/namespaces/ci/pods/bind-me")
        self.assertEqual(pod["spec"]["nodeName"], "bind-node")
        again = self.call("bind", "ci", "bind-me", "bind-node")
        self.assertFalse(again["ok"])
        self.assertEqual(again["class"], "conflict")
        self.assertEqual(self.call("bind", "ci", "nope", "bind-node")["class"], "not_found")

    def test_evict_with_and_without_budget(self):
        # Running and Ready pods (bulk keeps status), two guarded by minAvailable: 2.
        self.sim.api.post("/api/v1/nodes", ks.node("evict-node"))
        pods = []
        for name in ("free", "guarded-1", "guarded-2"):
            p = ks.pod("ci", name, node_name="evict-node")
            p["metadata"]["labels"] = {"app": "guarded" if name != "free" else "free"}
            p["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
            pods.append(p)
        self.sim.bulk(pods)
        st, body = self.sim.api.post("/apis/policy/v1/namespaces/ci/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "guard", "namespace": "ci"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}})
        self.assertEqual(st, 201, body)
        self.assertTrue(self.call("evict", "ci", "free")["ok"])
        blocked = self.call("evict", "ci", "guarded-1")
        self.assertFalse(blocked["ok"])
        self.assertEqual(blocked["class"], "too_many_requests")
        self.assertEqual(blocked["code"], 429)
        # eviction.go: NewTooManyRequests(msg, 0) -- no Retry-After -- and the
        # budget named only in the DisruptionBudget cause, which the client keeps.
        self.assertEqual(blocked["retryAfter"], -1)
        self.assertEqual(blocked["message"], "Cannot evict pod as it would violate the pod's disruption "
                         "budget.: The disruption budget guard needs 2 healthy pods and has 2 currently")
        self.assertEqual(self.call("evict", "ci", "free")["class"], "not_found")

    def test_events(self):
        self.assertTrue(self.call("event", "Node", "bind-node")["ok"])
        self.assertTrue(self.call("event", "Pod", "bind-me", "ci")["ok"])
        st, body = self.sim.api.get("/apis/events.k8s.io/v1/namespaces/default/events")
        self.assertEqual(st, 200)
        ev = [e for e in body["items"] if e["regarding"]["name"] == "bind-node"]
        self.assertEqual(len(ev), 1, body)
        self.assertEqual(ev[0]["reportingController"], "stratos.sh/stratosd")
        self.assertEqual(ev[0]["reportingInstance"], "kube-driver")
        self.assertEqual(ev[0]["type"], "Warning")
        self.assertEqual(ev[0]["reason"], "DrainTimeout")
        self.assertEqual(ev[0]["regarding"]["kind"], "Node")
        st, body = self.sim.api.get("/apis/events.k8s.io/v1/namespaces/ci/events")
        self.assertEqual(len(body["items"]), 1)

    def test_nodepool_status_subresource(self):
        with open(os.path.join(ks.REPO, "tests", "fixtures", "seed-examples.yaml")) as f:
            pool = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "NodePool"][0]
        st, body = self.sim.api.post("/apis/stratos.sh/v1alpha1/nodepools", pool)
        self.assertEqual(st, 201, body)
        r = self.call("status", pool["metadata"]["name"])
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["status"]["nodes"]["standby"], 2)
        st, got = self.sim.api.get("/apis/stratos.sh/v1alpha1/nodepools/" + pool["metadata"]["name"])
        self.assertEqual(got["status"]["nodes"]["total"], 2)
        self.assertEqual(got["spec"]["poolSize"], pool["spec"]["poolSize"])

    def test_can_i(self):
        self.assertTrue(self.call("can-i", "patch", "nodes")["allowed"])
        st, body = self.sim.api.post("/_sim/ssar", {"deny": [{"verb": "patch", "resource": "nodes"}]})
        self.assertEqual(st, 200, body)
        self.addCleanup(self.sim.api.post, "/_sim/ssar", {"deny": []})
        r = self.call("can-i", "patch", "nodes")
        self.assertTrue(r["ok"])
        self.assertFalse(r["allowed"])
        self.assertTrue(self.call("can-i", "get", "nodes")["allowed"])


class TokenRotation(unittest.TestCase):

    def test_rotated_token_file_is_reread_after_401(self):
        d = tl.tempdir(self)
        server_tokens = os.path.join(d, "accepted-tokens")
        sim = ks.Sim(self, apiserver_opts=["--token-file=" + server_tokens])
        self.addCleanup(sim.down)
        with open(server_tokens) as f:
            token = f.read().split()[0]
        # A kubeconfig that reads its token from a file, like a projected SA token.
        client_token = os.path.join(d, "token")
        with open(client_token, "w") as f:
            f.write(token + "\n")
        with open(sim.kubeconfig) as f:
            kc = yaml.safe_load(f)
        for u in kc["users"]:
            u["user"].pop("token", None)
            u["user"]["tokenFile"] = client_token
        kubeconfig = os.path.join(d, "kubeconfig")
        with open(kubeconfig, "w") as f:
            yaml.safe_dump(kc, f)
        sim.kubeconfig = kubeconfig
        with ks.Daemon(sim) as daemon:
            daemon.wait_synced()
            # The watch to drop must be open (with the old token) before the rotation:
            # "synced" only says the LIST is applied, the WATCH request comes after it.
            sim.wait_watch_open("nodes")
            # Rotate: the server accepts only the new token, the file holds it.
            for path in (client_token, server_tokens):
                with open(path + ".tmp", "w") as f:
                    f.write("rotated-token-0123456789\n")
                os.replace(path + ".tmp", path)
            sim.api.token = "rotated-token-0123456789"
            sim.api.close()
            self.assertGreaterEqual(sim.drop_watches("nodes", "clean"), 1)
            created = sim.api.post("/api/v1/nodes", ks.node("after-rotation"))[1]
            ks.wait_cache_has(daemon, "nodes",
                              {"after-rotation": created["metadata"]["resourceVersion"]})
            self.assertGreaterEqual(daemon.metric("stratos_kube_requests_total", verb="watch",
                                                  resource="nodes", code="401") or 0, 1)
            rc, _ = daemon.stop()
            self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
