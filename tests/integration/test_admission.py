"""The admission webhooks of the real stratosd over HTTPS, and `stratosd validate`.

Starts `stratosd serve --pools-file ...` with certificates made for the run,
sends AdmissionReviews shaped like the API server's (tests/fixtures/admission/
and variants of them), applies the returned patches with the `jsonpatch`
library and compares the result with the expected pod.
"""

import base64
import copy
import json
import os
import re
import subprocess
import sys
import unittest

import jsonpatch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stratos_testlib as tl  # noqa: E402

FIXTURES = os.path.join(tl.REPO, "tests", "fixtures")
SEED = os.path.join(FIXTURES, "seed-examples.yaml")
MUTATE = "/admission/mutate-pod"
VALIDATE_POOL = "/admission/validate-nodepool"
VALIDATE_CLASS = "/admission/validate-awsnodeclass"

STANDARD_TOLERATIONS = [
    {"key": "stratos.sh/standby", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.cloudprovider.kubernetes.io/shutdown", "operator": "Exists",
     "effect": "NoSchedule"},
]
EKS_NOT_READY = {"key": "node.eks.amazonaws.com/not-ready", "operator": "Exists",
                 "effect": "NoSchedule"}

# Two more pools beside the seed's: they share a label, so a nodeSelector on it is ambiguous.
EXTRA_POOLS = """
---
apiVersion: stratos.sh/v1alpha1
kind: NodePool
metadata: {name: gpu-a}
spec:
  poolSize: 4
  minStandby: 1
  template:
    nodeClassRef: {name: inference}
    labels: {team: ml, accelerator: a10g}
    startupTaints:
      - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
---
apiVersion: stratos.sh/v1alpha1
kind: NodePool
metadata: {name: gpu-b}
spec:
  poolSize: 4
  minStandby: 0
  template:
    nodeClassRef: {name: inference}
    labels: {team: ml}
"""


def fixture(name):
    with open(os.path.join(FIXTURES, "admission", name)) as f:
        return json.load(f)


def seed_docs():
    with open(SEED) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def review_of(obj, kind, op="CREATE", old=None, uid="5b1f7c1e-0000-4000-8000-00000000abcd",
              group="stratos.sh", version="v1alpha1", resource=None):
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version,
                         "resource": resource or kind.lower() + "s"},
            "name": (obj or old or {}).get("metadata", {}).get("name", ""),
            "operation": op,
            "userInfo": {"username": "kubernetes-admin"},
            "object": obj, "oldObject": old, "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


class AdmissionTestCase(unittest.TestCase):
    extra_flags = ("--scheduler-name", "stratos-scheduler")

    @classmethod
    def setUpClass(cls):
        cls.tmp = tl.tempfile.TemporaryDirectory(prefix="stratos-test-")
        d = cls.tmp.name
        cls.certs = tl.make_certs(d)
        cls.pools_file = os.path.join(d, "pools.yaml")
        with open(SEED) as src, open(cls.pools_file, "w") as dst:
            dst.write(src.read() + EXTRA_POOLS)
        cls.d = tl.Stratosd(tl.serve_args(cls.certs, "--pools-file", cls.pools_file,
                                          *cls.extra_flags))
        cls.ctx = tl.tls_context(ca=cls.certs["ca.crt"])

    @classmethod
    def tearDownClass(cls):
        rc, _ = cls.d.stop()
        cls.d.__exit__()
        cls.tmp.cleanup()
        if rc != 0:
            raise AssertionError("stratosd exited with %d" % rc)

    def post(self, path, body, status=200):
        r = tl.https_request(self.d.https_port, "POST", path + "?timeout=10s", body=body,
                             ctx=self.ctx)
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.headers.get("Content-Type"), "application/json")
        return r.json()

    def answer(self, path, review):
        """POSTs a review; checks apiVersion, kind and uid; returns response."""
        out = self.post(path, review)
        self.assertEqual(out["apiVersion"], "admission.k8s.io/v1")
        self.assertEqual(out["kind"], "AdmissionReview")
        self.assertEqual(out["response"]["uid"], review["request"]["uid"])
        return out["response"]

    def mutate(self, review):
        """Sends a pod review; returns (response, patched pod or None)."""
        resp = self.answer(MUTATE, review)
        self.assertIs(resp["allowed"], True)
        if "patch" not in resp:
            self.assertNotIn("patchType", resp)
            return resp, None
        self.assertEqual(resp["patchType"], "JSONPatch")
        raw = base64.b64decode(resp["patch"], validate=True)
        self.assertEqual(base64.b64encode(raw).decode(), resp["patch"])   # standard, padded
        patch = jsonpatch.JsonPatch(json.loads(raw))
        # The API server applies it to exactly the object it sent.
        patched = patch.apply(copy.deepcopy(review["request"]["object"]))
        return resp, patched


class TestMutatePod(AdmissionTestCase):
    def test_pool_pod_fixture(self):
        review = fixture("pod-create-pool.json")
        resp, pod = self.mutate(review)
        want = copy.deepcopy(review["request"]["object"])
        want["metadata"]["annotations"] = {"stratos.sh/pool": "ci-runners"}
        want["spec"]["tolerations"] += STANDARD_TOLERATIONS + [EKS_NOT_READY]
        want["spec"]["schedulerName"] = "stratos-scheduler"
        self.assertEqual(pod, want)
        self.assertNotIn("warnings", resp)

    def test_other_pod_fixture_is_left_alone(self):
        resp, pod = self.mutate(fixture("pod-create-other.json"))
        self.assertIsNone(pod)
        self.assertNotIn("warnings", resp)

    def pool_review(self, mutate_spec=None, mutate_meta=None):
        review = fixture("pod-create-pool.json")
        pod = review["request"]["object"]
        if mutate_spec:
            mutate_spec(pod["spec"])
        if mutate_meta:
            mutate_meta(pod["metadata"])
        return review

    def test_no_tolerations_and_existing_annotations(self):
        def spec(s):
            del s["tolerations"]

        def meta(m):
            m["annotations"] = {"a/b~c": "x"}
        review = self.pool_review(spec, meta)
        _, pod = self.mutate(review)
        self.assertEqual(pod["spec"]["tolerations"], STANDARD_TOLERATIONS + [EKS_NOT_READY])
        self.assertEqual(pod["metadata"]["annotations"],
                         {"a/b~c": "x", "stratos.sh/pool": "ci-runners"})

    def test_tolerations_already_there_are_not_repeated(self):
        def spec(s):
            s["tolerations"] = [{"operator": "Exists"}]
        _, pod = self.mutate(self.pool_review(spec))
        self.assertEqual(pod["spec"]["tolerations"], [{"operator": "Exists"}])
        self.assertEqual(pod["metadata"]["annotations"], {"stratos.sh/pool": "ci-runners"})

    def test_affinity_with_several_pools(self):
        def spec(s):
            del s["nodeSelector"]
            s["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "stratos.sh/pool", "operator": "In", "values": ["gpu-a", "inference"]}]}]}}}
        _, pod = self.mutate(self.pool_review(spec))
        self.assertEqual(pod["metadata"]["annotations"]["stratos.sh/pool"], "gpu-a,inference")
        keys = [(t["key"], t.get("effect")) for t in pod["spec"]["tolerations"]]
        self.assertIn(("nvidia.com/gpu", "NoSchedule"), keys)
        self.assertIn(("node.eks.amazonaws.com/not-ready", "NoSchedule"), keys)
        self.assertEqual(len(keys), len(set(keys)))

    def test_label_subset_and_ambiguity(self):
        def subset(s):
            s["nodeSelector"] = {"node-role.kubernetes.io/inference": ""}
        _, pod = self.mutate(self.pool_review(subset))
        self.assertEqual(pod["metadata"]["annotations"]["stratos.sh/pool"], "inference")

        def ambiguous(s):
            s["nodeSelector"] = {"team": "ml"}
        resp, pod = self.mutate(self.pool_review(ambiguous))
        self.assertIsNone(pod)
        self.assertEqual(resp["warnings"],
                         ["stratos: nodeSelector matches NodePools gpu-a, gpu-b; "
                          "not treated as a pool pod"])
        for w in resp["warnings"]:
            self.assertLess(len(w), 120)

    def test_generate_name_dry_run_and_unknown_pool(self):
        def spec(s):
            s["nodeSelector"] = {"stratos.sh/pool": "does-not-exist"}
        review = self.pool_review(spec)
        review["request"]["dryRun"] = True
        self.assertNotIn("name", review["request"]["object"]["metadata"])
        resp, pod = self.mutate(review)
        self.assertEqual(pod["spec"]["tolerations"][2:], STANDARD_TOLERATIONS)
        self.assertIn("does-not-exist", resp["warnings"][0])

    def test_only_pod_creates_are_mutated(self):
        review = fixture("pod-create-pool.json")
        review["request"]["operation"] = "UPDATE"
        review["request"]["oldObject"] = review["request"]["object"]
        _, pod = self.mutate(review)
        self.assertIsNone(pod)

    def test_malformed_reviews_get_400_with_a_json_reason(self):
        r = tl.https_request(self.d.https_port, "POST", MUTATE, body="{nope", ctx=self.ctx)
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json())
        review = fixture("pod-create-pool.json")
        review["apiVersion"] = "admission.k8s.io/v1beta1"
        out = self.post(MUTATE, review, status=400)
        self.assertEqual(out["message"], "apiVersion must be admission.k8s.io/v1")
        del review["request"]["uid"]
        review["apiVersion"] = "admission.k8s.io/v1"
        self.assertEqual(self.post(MUTATE, review, status=400)["message"],
                         "request.uid is required")

    def test_metrics_count_decisions(self):
        self.mutate(fixture("pod-create-pool.json"))
        self.mutate(fixture("pod-create-other.json"))
        text = tl.http_request(self.d.metrics_port, "GET", "/metrics").body.decode()
        mutated = re.search(r'^stratos_admission_pods_total\{pool="ci-runners",result="mutated"\} (\d+)',
                            text, re.M)
        skipped = re.search(r'^stratos_admission_pods_total\{pool="",result="skipped"\} (\d+)',
                            text, re.M)
        self.assertTrue(mutated and int(mutated.group(1)) >= 1, text)
        self.assertTrue(skipped and int(skipped.group(1)) >= 1, text)

    def test_readyz_reports_the_pools(self):
        r = tl.https_request(self.d.https_port, "GET", "/readyz", ctx=self.ctx)
        self.assertEqual(r.status, 200)
        self.assertIn("pools", r.body.decode())


class TestManagedResource(AdmissionTestCase):
    extra_flags = ("--managed-resource",)

    def test_extended_resource_on_the_first_container(self):
        review = fixture("pod-create-pool.json")
        review["request"]["object"]["spec"]["containers"].append({"name": "side", "image": "x"})
        _, pod = self.mutate(review)
        res = pod["spec"]["containers"][0]["resources"]
        self.assertEqual(res["requests"], {"cpu": "2", "memory": "4Gi", "stratos.sh/pool-pod": "1"})
        self.assertEqual(res["limits"], {"memory": "8Gi", "stratos.sh/pool-pod": "1"})
        self.assertEqual(pod["spec"]["containers"][1], {"name": "side", "image": "x"})
        self.assertEqual(pod["spec"]["schedulerName"], "default-scheduler")

    def test_container_without_resources(self):
        review = fixture("pod-create-pool.json")
        del review["request"]["object"]["spec"]["containers"][0]["resources"]
        _, pod = self.mutate(review)
        self.assertEqual(pod["spec"]["containers"][0]["resources"],
                         {"requests": {"stratos.sh/pool-pod": "1"},
                          "limits": {"stratos.sh/pool-pod": "1"}})


class TestValidate(AdmissionTestCase):
    def test_invalid_fixture_is_denied_with_every_violation(self):
        resp = self.answer(VALIDATE_POOL, fixture("nodepool-create-invalid.json"))
        self.assertIs(resp["allowed"], False)
        self.assertNotIn("patch", resp)
        st = resp["status"]
        self.assertEqual(st["code"], 422)
        self.assertEqual(st["reason"], "Invalid")
        self.assertEqual(st["message"],
                         'NodePool "ci-runners" is invalid: '
                         "spec.minStandby: must not be greater than spec.poolSize (3); "
                         "spec.template.startupTaints[0].effect: must be one of NoSchedule, "
                         "PreferNoSchedule, NoExecute; "
                         "spec.preWarm.timeout: must be a duration like 30s, 5m or 1h30m")
        self.assertEqual([c["field"] for c in st["details"]["causes"]],
                         ["spec.minStandby", "spec.template.startupTaints[0].effect",
                          "spec.preWarm.timeout"])

    def test_seed_examples_are_allowed(self):
        for doc in seed_docs():
            path = VALIDATE_POOL if doc["kind"] == "NodePool" else VALIDATE_CLASS
            resp = self.answer(path, review_of(doc, doc["kind"]))
            self.assertIs(resp["allowed"], True, (doc["metadata"]["name"], resp))
            self.assertNotIn("warnings", resp)
            self.assertNotIn("patch", resp)

    def test_invalid_class_reports_everything(self):
        doc = next(d for d in seed_docs() if d["kind"] == "AWSNodeClass")
        doc["spec"]["ami"] = "ami-xyz"
        doc["spec"]["subnetIds"] = []
        doc["spec"]["blockDeviceMappings"][0].update(volumeType="st1", iops=500, kmsKeyId="alias/x",
                                                     encrypted=False)
        doc["spec"]["tags"] = {"aws:owner": "me"}
        del doc["spec"]["userData"]
        resp = self.answer(VALIDATE_CLASS, review_of(doc, "AWSNodeClass"))
        self.assertIs(resp["allowed"], False)
        fields = [c["field"] for c in resp["status"]["details"]["causes"]]
        self.assertEqual(fields, ["spec.ami", "spec.subnetIds", "spec.blockDeviceMappings[0].iops",
                                  "spec.blockDeviceMappings[0].kmsKeyId", "spec.tags[aws:owner]"])
        self.assertEqual(resp["warnings"], ["spec.userData: not set; instances join the cluster "
                                            "only if the AMI bootstraps itself"])

    def test_update_warns_about_existing_nodes(self):
        old = next(d for d in seed_docs() if d["kind"] == "NodePool")
        new = copy.deepcopy(old)
        new["spec"]["template"]["nodeClassRef"]["name"] = "inference"
        resp = self.answer(VALIDATE_POOL, review_of(new, "NodePool", "UPDATE", old))
        self.assertIs(resp["allowed"], True)
        self.assertEqual(resp["warnings"], [
            "spec.template.nodeClassRef: changed; nodes launched before keep the old class "
            "until replaced"])
        # A metadata-only update (a finalizer) of an object that breaks a rule is allowed.
        bad = copy.deepcopy(old)
        bad["spec"]["minStandby"] = 99
        bad2 = copy.deepcopy(bad)
        bad2["metadata"]["finalizers"] = []
        resp = self.answer(VALIDATE_POOL, review_of(bad2, "NodePool", "UPDATE", bad))
        self.assertIs(resp["allowed"], True)

    def test_denials_are_counted(self):
        self.answer(VALIDATE_POOL, fixture("nodepool-create-invalid.json"))
        text = tl.http_request(self.d.metrics_port, "GET", "/metrics").body.decode()
        m = re.search(r'^stratos_admission_denials_total\{kind="NodePool"\} (\d+)', text, re.M)
        self.assertTrue(m and int(m.group(1)) >= 1, text)


class TestPoolsFileErrors(unittest.TestCase):
    def test_a_bad_pools_file_stops_start_up_with_every_violation(self):
        d = tl.tempdir(self)
        certs = tl.make_certs(d)
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("apiVersion: stratos.sh/v1alpha1\nkind: NodePool\nmetadata: {name: p}\n"
                    "spec: {poolSize: 2, minStandby: 3, template: {nodeClassRef: {name: c}},"
                    " preWarm: {timeout: 3h}}\n---\napiVersion: v1\nkind: ConfigMap\n"
                    "metadata: {name: x}\n")
        p = tl.run_stratosd(tl.serve_args(certs, "--pools-file", bad))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(bad + ": doc 1 (NodePool/p): spec.minStandby: must not be greater than "
                      "spec.poolSize (2)", p.stderr)
        self.assertIn(bad + ": doc 1 (NodePool/p): spec.preWarm.timeout: must be between 1m and 2h",
                      p.stderr)
        self.assertIn(bad + ": doc 2 (ConfigMap/x): kind: must be NodePool or AWSNodeClass",
                      p.stderr)


class TestValidateCommand(unittest.TestCase):
    def run_validate(self, *args, stdin=None):
        return subprocess.run([tl.stratosd_path(), "validate"] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=30)

    def test_seed_examples_are_valid(self):
        p = self.run_validate(SEED)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertIn("6 resources in 1 file: 0 violations, 0 warnings", p.stderr)

    def test_violations_exit_1_with_one_line_each(self):
        d = tl.tempdir(self)
        review = fixture("nodepool-create-invalid.json")
        path = os.path.join(d, "pools.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all([{"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": "web"}}, review["request"]["object"]], f)
        p = self.run_validate(path)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout.splitlines(), [
            path + ": doc 2 (NodePool/ci-runners): spec.minStandby: must not be greater than "
                   "spec.poolSize (3)",
            path + ": doc 2 (NodePool/ci-runners): spec.template.startupTaints[0].effect: must be "
                   "one of NoSchedule, PreferNoSchedule, NoExecute",
            path + ": doc 2 (NodePool/ci-runners): spec.preWarm.timeout: must be a duration like "
                   "30s, 5m or 1h30m",
        ])

    def test_warnings_alone_exit_0_and_stdin(self):
        text = ("apiVersion: stratos.sh/v1alpha1\nkind: NodePool\nmetadata: {name: p}\n"
                "spec: {poolSize: 2, minStandby: 1, template: {nodeClassRef: {name: c}},"
                " scaleDown: {emptyNodeTTL: 0s}}\n")
        p = self.run_validate("-", stdin=text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "<stdin>: doc 1 (NodePool/p): warning: spec.scaleDown.emptyNodeTTL: "
                                   "0s stops a node the moment it is empty; the next pod waits for "
                                   "a start\n")

    def test_cross_file_class_reference(self):
        d = tl.tempdir(self)
        classes = os.path.join(d, "classes.yaml")
        pools = os.path.join(d, "pools.yaml")
        docs = seed_docs()
        with open(classes, "w") as f:
            yaml.safe_dump_all([x for x in docs if x["kind"] == "AWSNodeClass"], f)
        pool = next(x for x in docs if x["kind"] == "NodePool")
        pool["spec"]["template"]["nodeClassRef"]["name"] = "missing"
        with open(pools, "w") as f:
            yaml.safe_dump(pool, f)
        p = self.run_validate(classes, pools)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("warning: spec.template.nodeClassRef.name: AWSNodeClass missing not found",
                      p.stdout)

    def test_unreadable_file_exits_2_and_syntax_errors_1(self):
        p = self.run_validate(SEED, "/nonexistent/x.yaml")
        self.assertEqual(p.returncode, 2)
        self.assertIn("/nonexistent/x.yaml: cannot read", p.stderr)
        d = tl.tempdir(self)
        broken = os.path.join(d, "broken.yaml")
        with open(broken, "w") as f:
            f.write("a: [1, 2\n")
        p = self.run_validate(broken)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stdout.startswith(broken + ":"), p.stdout)
        p = self.run_validate()
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()
