"""The seed's three example pools (seed/examples.yaml, copied to
tests/fixtures/seed-examples.yaml) applied as they are: every one reaches
its minStandby in the simulation, each standby node with its instance
stopped (the seed's user data powers the machines off by itself), the
inference pool's model image on the disk, and `kubectl get nodepools`
showing the counts in its printer columns."""

import os
import shutil
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402

MODEL = "my-registry.com/llama-3:70b"


class SeedTest(unittest.TestCase):

    def test_seed_pools_reach_min_standby(self):
        # A 70b model image is big: at 1 GiB/s (simulated) it takes longer than the
        # seed's 30 s before poweroff, so the inference nodes are started again to finish.
        c = ct.Cluster(self, kubelet_args=["--image-size", MODEL + "=40Gi", "--pull-bandwidth", "1Gi"])
        with open(ct.SEED) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for d in docs:
            if d["kind"] == "AWSNodeClass":
                c.apply(d)
        for d in docs:
            if d["kind"] == "NodePool":
                c.apply(d)
        d = c.stratosd()
        want = {"ci-runners": 5, "inference": 2, "on-demand": 2}
        wait_for(lambda: all(len(c.by_state(p, "standby")) == n for p, n in want.items()), 120,
                 "every seed pool at its minStandby")
        for p, n in want.items():
            c.assert_standby(p, n, images=[MODEL] if p == "inference" else ())
            self.assertEqual(len(c.instances(p)), n, p)
            wait_for(lambda: c.condition(p, "Ready").get("status") == "True", 20, p + " Ready")
        types = {p: {i["instance_type"] for i in c.instances(p)} for p in want}
        self.assertEqual(types, {"ci-runners": {"m5.2xlarge"}, "inference": {"g5.2xlarge"},
                                 "on-demand": {"m5.large"}})
        # The model pull outlasted the user data's poweroff: started again to finish it.
        for i in c.instances("inference"):
            self.assertGreaterEqual(c.machine(i["instance_id"])["boots"], 2)
        self.assertEqual(len({e["regarding"]["name"] for e in c.events("WarmupRestarted")}), 2)
        kubectl = shutil.which("kubectl")
        if kubectl:
            out = subprocess.run([kubectl, "--kubeconfig", os.path.join(c.sim.dir, "kubeconfig"),
                                  "get", "nodepools"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            rows = {ln.split()[0]: ln.split() for ln in out.stdout.splitlines()[1:]}
            header = out.stdout.splitlines()[0].split()
            self.assertEqual(header[:6], ["NAME", "SIZE", "MIN-STANDBY", "WARMUP", "STANDBY", "RUNNING"])
            self.assertEqual(rows["ci-runners"][1:7], ["20", "5", "0", "5", "0", "True"])
            self.assertEqual(rows["inference"][1:7], ["10", "2", "0", "2", "0", "True"])
            self.assertEqual(rows["on-demand"][1:7], ["10", "2", "0", "2", "0", "True"])
        c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
