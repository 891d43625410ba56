"""The client's paged LIST against the fake API server, with writes between
its pages: like kube-apiserver (etcd3 GetList reads every continuation page
at the revision in the continue token), the pages show the objects as of the
first page and all carry its resourceVersion; the client keeps that version,
and a watch from it brings every change made meanwhile, so a cache built this
way misses nothing (no ghost of a deleted node, no missed creation)."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubesim as ks  # noqa: E402
import stratos_testlib as tl  # noqa: E402

NODES = 1100            # three pages of LIMITS_KUBE_LIST_PAGE (500)


class PagedListSnapshot(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.driver = tl.driver_path("kube_driver")
        cls.sim = ks.Sim(crds=False)
        cls.sim.bulk([ks.node("snap-%04d" % i) for i in range(NODES)])

    @classmethod
    def tearDownClass(cls):
        cls.sim.down()

    def test_writes_between_pages_are_not_lost(self):
        pause = os.path.join(self.sim.dir, "resume-list")
        p = subprocess.Popen([self.driver, "list", "--kubeconfig", self.sim.kubeconfig, "/api/v1/nodes", "-",
                              pause], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Paused at the first item of the first page.
            self.assertEqual(json.loads(p.stdout.readline()), {"paused": True})
            st, before = self.sim.api.get("/api/v1/nodes?limit=1")
            self.assertEqual(st, 200)
            first_rv = before["metadata"]["resourceVersion"]
            # A node of the page already read and one of the last page go; a new
            # node sorts into the last page.
            for name in ("snap-0010", "snap-1050"):
                self.assertEqual(self.sim.api.delete("/api/v1/nodes/" + name)[0], 200)
            st, body = self.sim.api.post("/api/v1/nodes", ks.node("snap-1050a"))
            self.assertEqual(st, 201, body)
            open(pause, "w").close()
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        r = json.loads(out.strip().splitlines()[-1])
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["names"], ["snap-%04d" % i for i in range(NODES)])
        self.assertEqual(r["rv"], first_rv)
        # From that version the watch tells of everything done meanwhile.
        w = self.sim.api.watch("/api/v1/nodes?watch=1&resourceVersion=" + r["rv"])
        events = [w.next() for _ in range(3)]
        w.close()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("DELETED", "snap-0010"), ("DELETED", "snap-1050"), ("ADDED", "snap-1050a")])


if __name__ == "__main__":
    unittest.main()
