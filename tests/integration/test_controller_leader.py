"""Pool controller, leadership (DESIGN §2, §5): with two replicas only the
Lease holder acts; a holder whose renewals fail stops acting within the
renew deadline and writes nothing after; the next leader picks the work up
from what the cluster and EC2 record."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402

# Log lines of the controller's writes (Kubernetes and EC2).
WRITES = re.compile(r"^(instance launched|node (adopt|standby|warmup-done|stopping|running|rewarm|"
                    r"drain-timeout|empty-since|last-workload|remove-startup-taints|"
                    r"converge-running|run-after-warmup|warmup-failed)|node deleted|.* accepted$|"
                    r"finalizer .*|pre-pull pod (created|deleted)|pod evicted|instance state tags repaired)")


def writes(d, start=0, end=None):
    return [o for o in d.logs[start:end] if WRITES.match(str(o.get("msg", "")))]


def index_of(d, pred, start=0):
    for i, o in enumerate(d.logs[start:], start):
        if pred(o):
            return i
    return None


class LeaderTest(unittest.TestCase):

    def test_only_the_leader_acts_and_a_lost_lease_stops_it_in_time(self):
        c = ct.Cluster(self)
        c.apply(ct.nodeclass("le"))
        c.apply(ct.nodepool("le", pool_size=3, min_standby=2))
        a = c.stratosd("--leader-elect")
        b = c.stratosd("--leader-elect")
        leader = wait_for(lambda: next((d for d in (a, b) if index_of(
            d, lambda o: o.get("msg") == "became leader") is not None), None), 30, "a leader")
        other = b if leader is a else a
        wait_for(lambda: len(c.by_state("le", "standby")) == 2, 60, "2 standby")
        self.assertTrue(writes(leader))
        self.assertEqual(writes(other), [], "the replica without the Lease wrote")
        self.assertEqual(len(c.instances("le")), 2)
        # The leader's renewals fail (every Lease update answers 500).
        st, _ = c.api.post("/_sim/fail", {"verb": "update", "resource": "leases.coordination.k8s.io", "code": 500,
                                          "count": 100000})
        self.assertEqual(st, 200)
        t_fail = time.time()
        line = leader.wait_log(lambda o: o.get("msg") == "pool controller stopped", timeout=20)
        stopped = ct.parse_ms(line["ts"])
        # Renewed at most one retry period (2 s) before the failures; deadline 10 s.
        self.assertLess(stopped - t_fail, 10 + 2 + 1, "stopped %.1fs after the failures began" %
                        (stopped - t_fail))
        stop_idx = leader.logs.index(line)
        c.api.post("/_sim/fail", {"clear": True})
        # Work for whoever leads next: an instance lost.
        victim = c.by_state("le", "standby")[0]
        iid = victim["metadata"]["labels"]["stratos.sh/instance-id"]
        c.sim.ec2.terminate_instances(InstanceIds=[iid])
        wait_for(lambda: c.node(victim["metadata"]["name"]) is None and
                 len(c.by_state("le", "standby")) == 2, 60, "the next leader replaced it")
        c.assert_standby("le", 2)
        self.assertEqual(len(c.instances("le")), 2)
        # The old leader wrote nothing from its stop until it led again (if it did).
        again = index_of(leader, lambda o: o.get("msg") == "became leader", stop_idx)
        self.assertEqual(writes(leader, stop_idx + 1, again), [],
                         "writes after the lease was lost")
        # The leader shuts down (SIGTERM releases the Lease): the other replica takes over at once.
        now_leader = wait_for(lambda: next((d for d in (a, b) if d.alive() and
                                            c.metrics(d).get("stratos_leader") == 1), None), 30,
                              "the current leader")
        successor = b if now_leader is a else a
        mark = len(successor.logs)
        rc, _ = now_leader.stop()
        self.assertEqual(rc, 0, "\n".join(now_leader.raw[-60:]))
        successor.wait_log(lambda o: o.get("msg") == "became leader", timeout=10, start=mark)
        victim = c.by_state("le", "standby")[0]
        c.sim.ec2.terminate_instances(InstanceIds=[victim["metadata"]["labels"]["stratos.sh/instance-id"]])
        wait_for(lambda: c.node(victim["metadata"]["name"]) is None and
                 len(c.by_state("le", "standby")) == 2, 60, "the successor replaced it")
        self.assertTrue(writes(successor, mark))
        c.assert_standby("le", 2)
        for d in (a, b):
            c.check_logs(d)


if __name__ == "__main__":
    unittest.main()
