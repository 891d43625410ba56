"""Leader election between stratosd replicas on the fake API server: exactly
one leader; after SIGKILL the other takes over within 20 s (but not before
the lease could have expired); a clean SIGTERM releases the Lease so the
next replica takes over at once."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubesim as ks  # noqa: E402
import stratos_testlib as tl  # noqa: E402

LEASE = "/apis/coordination.k8s.io/v1/namespaces/stratos-system/leases/stratos-controller"


class LeaderElection(unittest.TestCase):

    def setUp(self):
        self.sim = ks.Sim(self, crds=True)
        self.addCleanup(self.sim.down)

    def start(self):
        d = ks.Daemon(self.sim, "--leader-elect", "--namespace", "stratos-system")
        self.addCleanup(d.__exit__)
        d.ident = d.identity()
        return d

    def lease(self):
        st, body = self.sim.api.get(LEASE)
        self.assertEqual(st, 200, body)
        return body["spec"]

    def leaders(self, daemons):
        return [d for d in daemons if d.alive() and d.metric("stratos_leader") == 1]

    def wait_one_leader(self, daemons, timeout):
        tl.wait_for(lambda: len(self.leaders(daemons)) == 1, timeout, interval=0.1,
                    what="exactly one leader")
        return self.leaders(daemons)[0]

    def test_one_leader_sigkill_takeover_and_clean_release(self):
        a, b = self.start(), self.start()
        leader = self.wait_one_leader([a, b], 10)
        other = b if leader is a else a
        self.assertEqual(self.lease()["holderIdentity"], leader.ident)
        self.assertEqual(other.metric("stratos_leader"), 0)
        other.wait_log(lambda o: o.get("msg") == "observed leader" and
                       o.get("holder") == leader.ident, 10)

        # Stable: the leader renews (twice: about 4 s at the 2 s retry period), nobody
        # else takes over meanwhile.
        renew = self.lease()["renewTime"]
        for _ in range(2):
            tl.wait_for(lambda: self.lease()["renewTime"] > renew, 10, interval=0.1,
                        what="a renewal of the Lease")
            renew = self.lease()["renewTime"]
            self.assertEqual(self.leaders([a, b]), [leader])
        spec = self.lease()
        self.assertEqual(spec["holderIdentity"], leader.ident)
        self.assertEqual(spec["leaseDurationSeconds"], 15)
        transitions = spec.get("leaseTransitions", 0)

        # SIGKILL: no release; the other waits for the lease to run out on its own clock.
        leader.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        leader.proc.wait(5)
        tl.wait_for(lambda: other.metric("stratos_leader") == 1, 20, interval=0.1,
                    what="takeover after SIGKILL")
        took = time.monotonic() - t0
        self.assertLess(took, 20.0)
        self.assertGreater(took, 11.0, "took over before the old lease could have expired")
        spec = self.lease()
        self.assertEqual(spec["holderIdentity"], other.ident)
        self.assertEqual(spec.get("leaseTransitions", 0), transitions + 1)
        other.wait_log(lambda o: o.get("msg") == "became leader" and
                       o.get("identity") == other.ident, 5)
        sys.stderr.write("\n  takeover after SIGKILL: %.1f s\n" % took)

        # A third replica waits; SIGTERM of the leader hands over at once.
        c = self.start()
        c.wait_log(lambda o: o.get("msg") == "observed leader" and
                   o.get("holder") == other.ident, 10)
        self.assertEqual(c.metric("stratos_leader"), 0)
        t0 = time.monotonic()
        rc, _ = other.stop(signal.SIGTERM)
        self.assertEqual(rc, 0)
        self.assertTrue(any(o.get("msg") == "released the Lease" for o in other.logs))
        tl.wait_for(lambda: c.metric("stratos_leader") == 1, 8, interval=0.1,
                    what="takeover after a clean shutdown")
        took = time.monotonic() - t0
        self.assertLess(took, 6.0)
        self.assertEqual(self.lease()["holderIdentity"], c.ident)
        sys.stderr.write("  takeover after SIGTERM: %.1f s\n" % took)
        rc, _ = c.stop(signal.SIGTERM)
        self.assertEqual(rc, 0)
        self.assertEqual(self.lease()["holderIdentity"], "")

    def test_without_leader_elect_no_lease(self):
        d = ks.Daemon(self.sim)
        self.addCleanup(d.__exit__)
        d.wait_synced()
        time.sleep(2.5)
        st, _ = self.sim.api.get(LEASE)
        self.assertEqual(st, 404)
        self.assertIsNone(d.metric("stratos_leader"))
        rc, _ = d.stop()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
