"""Tests of scripts/sim: two environments side by side, clean shutdown.

Run from the repository root:  python3 -m unittest tests/sim/test_sim_script.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import REPO, Client  # noqa: E402

SIM = os.path.join(REPO, "scripts", "sim")


def sim(*args, timeout=120):
    return subprocess.run([sys.executable, SIM] + list(args), capture_output=True, text=True, timeout=timeout)


def procs_mentioning(d):
    """Live processes whose command line names directory d."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % e, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            with open("/proc/%s/stat" % e) as f:
                st = f.read()
        except OSError:
            continue
        if st[st.rindex(")") + 2:].split()[0] == "Z":
            continue
        if d in argv:
            out.append((int(e), " ".join(argv)))
    return out


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2:].split()[0] != "Z"


class SimScriptTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sim-script-")
        self.dirs = [os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")]

    def tearDown(self):
        for d in self.dirs:
            sim("down", "--dir", d)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def read_env(self, d):
        with open(os.path.join(d, "env")) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if line.strip())

    def test_two_environments_side_by_side_and_clean_down(self):
        for d in self.dirs:
            r = sim("up", "--dir", d, "--apiserver-opt=--bookmark-interval=1")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("kubectl --kubeconfig %s/kubeconfig" % d, r.stdout)
        envs = [self.read_env(d) for d in self.dirs]
        self.assertNotEqual(envs[0]["STRATOS_SIM_APISERVER"], envs[1]["STRATOS_SIM_APISERVER"])
        ec2 = os.path.exists(os.path.join(REPO, "tests", "sim", "ec2sim.py"))
        for d, env in zip(self.dirs, envs):
            self.assertEqual(env["KUBECONFIG"], os.path.join(d, "kubeconfig"))
            if ec2:
                self.assertEqual(env["AWS_ACCESS_KEY_ID"], "AKIASTRATOSSIM000001")
                self.assertEqual(env["AWS_SECRET_ACCESS_KEY"], "stratosSimSecretKey00000000000000000000")
                self.assertEqual(env["AWS_REGION"], "us-east-1")
                self.assertTrue(env["AWS_ENDPOINT_URL_EC2"].startswith("https://127.0.0.1:"))
                self.assertTrue(os.path.exists(env["AWS_CA_BUNDLE"]))
                self.assertEqual(env["STRATOS_SIM_EC2_CONTROL"], env["AWS_ENDPOINT_URL_EC2"] + "/_sim")
            else:
                self.assertNotIn("AWS_ENDPOINT_URL_EC2", env)
        # Each environment has its own state.
        c0, c1 = Client(self.dirs[0]), Client(self.dirs[1])
        self.assertEqual(c0.post("/api/v1/namespaces/default/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only-in-a"}})[0], 201)
        self.assertEqual(c1.get("/api/v1/namespaces/default/configmaps/only-in-a")[0], 404)
        self.assertEqual(c0.get("/_sim/config")[1]["bookmarkInterval"], 1.0)
        c0.close()
        c1.close()
        # A second `up` on a running environment is refused.
        r = sim("up", "--dir", self.dirs[0])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already running", r.stderr)
        self.assertEqual(sim("status", "--dir", self.dirs[0]).returncode, 0)
        pids = []
        for d in self.dirs:
            with open(os.path.join(d, "pids")) as f:
                pids += [int(line.split()[1]) for line in f if line.strip()]
            self.assertTrue(procs_mentioning(d))
        # down stops only its own environment.
        r = sim("down", "--dir", self.dirs[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(procs_mentioning(self.dirs[0]), [])
        self.assertTrue(procs_mentioning(self.dirs[1]))
        self.assertFalse(os.path.exists(os.path.join(self.dirs[0], "pids")))
        self.assertTrue(os.path.exists(os.path.join(self.dirs[0], "kubeconfig")), "down removes nothing else")
        self.assertEqual(sim("down", "--dir", self.dirs[0]).returncode, 0, "down is idempotent")
        self.assertEqual(sim("down", "--dir", self.dirs[1]).returncode, 0)
        self.assertEqual(procs_mentioning(self.dirs[1]), [])
        for pid in pids:
            self.assertFalse(running(pid), "pid %d still runs" % pid)

    def test_failure_is_reported_with_the_log(self):
        d = self.dirs[0]
        t0 = time.time()
        r = sim("up", "--dir", d, "--components", "apiserver", "--apiserver-opt=--history=lots")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("apiserver exited with status 2", r.stderr)
        self.assertIn("invalid int value", r.stderr)
        self.assertLess(time.time() - t0, 30)
        self.assertEqual(procs_mentioning(d), [])
        r = sim("up", "--dir", d, "--no-such-flag", "1")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no component accepts --no-such-flag", r.stderr)

    def test_timeline_of_an_instance_and_a_pod(self):
        """The whole environment at --time-scale 0.05: an instance boots into a
        Node, schedsim binds a pod, kubeletsim runs it; `scripts/sim timeline`
        shows each step."""
        d = self.dirs[0]
        r = sim("up", "--dir", d, "--time-scale", "0.05")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        env = self.read_env(d)
        self.assertTrue(env["STRATOS_SIM_SCHEDSIM"].startswith("http://127.0.0.1:"))
        import boto3
        ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL_EC2"], verify=env["AWS_CA_BUNDLE"],
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
        node = ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="m5.large", MinCount=1, MaxCount=1,
                                 SubnetId="subnet-12345678")["Instances"][0]["PrivateDnsName"]
        c = Client(d)
        self.addCleanup(c.close)
        self.assertEqual(c.post("/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})[0], 201)
        deadline = time.time() + 30
        while time.time() < deadline:
            st, p = c.get("/api/v1/namespaces/default/pods/web")
            if p.get("status", {}).get("phase") == "Running":
                break
            time.sleep(0.1)
        self.assertEqual(p["status"]["phase"], "Running", p)
        self.assertEqual(p["spec"]["nodeName"], node)
        time.sleep(0.3)         # the simulators post their timeline entries in batches
        r = subprocess.run([sys.executable, SIM, "timeline", "--dir", d], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("NODE %s" % node, out)
        self.assertIn("POD default/web  on %s" % node, out)
        for step in ("RunInstances called", "instance running", "kubelet started", "registered", "Ready=True",
                     "NetworkUnavailable=False", "taint removed node.kubernetes.io/not-ready:NoSchedule",
                     "created", "scheduling attempt 1", "bound", "container started", "Running"):
            self.assertIn(" %s" % step, out)
        r = subprocess.run([sys.executable, SIM, "timeline", "--dir", d, "--pod", "default/web", "--json"],
                           capture_output=True, text=True, timeout=60)
        doc = json.loads(r.stdout)
        self.assertEqual([x["key"] for x in doc["pods"]], ["default/web"])
        self.assertEqual(doc["nodes"], [])

    def test_help(self):
        r = sim("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("up", "down", "--NAME-opt", "DIR/env"):
            self.assertIn(word, r.stdout)


if __name__ == "__main__":
    unittest.main()
