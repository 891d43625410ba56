"""Pool controller, crashes (DESIGN §2, §5): stratosd killed with SIGKILL at a
random moment while a pool replenishes (launch, warmup, stop) and scales a
node down (TTL, cordon, drain, stop), then started again, converges every
time: every instance has its Node and every Node its instance (nothing
leaked), nothing is left warming, running or stopping (nothing stuck), and
exactly one instance was launched per instance lost (no duplicate launch).

STRATOS_CRASH_ROUNDS sets the number of kills (default 5 here;
bench/controller_crash.py runs 25 with the same code)."""

import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctl_testlib as ct  # noqa: E402
from ctl_testlib import wait_for  # noqa: E402

POOL = "crash"
SIZE = 3
# Warmup pulls an image (3 GiB at 100 MiB/s simulated: 1.5 s at --time-scale 0.05), so the
# kills land in a pre-pull as often as in a launch, a stop or a drain.
IMAGE = "registry.example/toolchain:1"


def converged(c):
    """Why the pool is not converged, or None: exactly SIZE standby nodes, each
    with its own stopped instance tagged standby, and no other instance or Node."""
    nodes = c.nodes(POOL)
    states = [n["metadata"]["labels"].get("stratos.sh/state") for n in nodes]
    if states.count("standby") != SIZE or len(nodes) != SIZE:
        return "nodes %s" % states
    alive = {i["instance_id"]: i for i in c.instances(POOL)}
    ids = {n["metadata"]["labels"].get("stratos.sh/instance-id") for n in nodes}
    if set(alive) != ids:
        return "instances %s vs nodes' %s" % (sorted(alive), sorted(ids))
    for i in alive.values():
        if i["state"] != "stopped" or i["tagmap"].get("stratos.sh/state") != "standby":
            return "instance %s %s tag %s" % (i["instance_id"], i["state"],
                                              i["tagmap"].get("stratos.sh/state"))
    for n in nodes:
        keys = {t["key"] for t in n["spec"].get("taints") or []}
        if "stratos.sh/standby" not in keys or n["spec"].get("unschedulable"):
            return "node %s taints %s" % (n["metadata"]["name"], keys)
    ann = (c.pool(POOL)["metadata"].get("annotations") or {})
    if "stratos.sh/launches" in ann:
        return "launch records left: %s" % ann["stratos.sh/launches"]
    prepull = [p["metadata"]["name"] for p in c.pods(ct.NS) if p["metadata"]["name"].startswith(
        "stratos-prepull-") and not p["metadata"].get("deletionTimestamp")]
    if prepull:
        return "pre-pull pods left: %s" % prepull
    for i in alive.values():
        if not any(IMAGE in img for img in c.machine(i["instance_id"])["images"]):
            return "instance %s without the image" % i["instance_id"]
    return None


def run_rounds(test, rounds, seed=None, log=None):
    seed = seed if seed is not None else int(os.environ.get("STRATOS_CRASH_SEED", time.time()))
    rnd = random.Random(seed)
    log = log or (lambda *a: None)
    log("seed %d, %d rounds" % (seed, rounds))
    c = ct.Cluster(test, kubelet_args=["--image-size", IMAGE + "=3Gi"])
    c.apply(ct.nodeclass(POOL))
    c.apply(ct.nodepool(POOL, pool_size=SIZE, min_standby=SIZE, prewarm={"imagesToPull": [IMAGE]},
                        scale_down={"emptyNodeTTL": "2s", "drainTimeout": "20s"}))
    d = c.stratosd()
    wait_for(lambda: converged(c) is None, 90, "first convergence")
    created = SIZE
    kills = []
    for rnd_i in range(rounds):
        standby = [n["metadata"]["name"] for n in c.by_state(POOL, "standby")]
        lost, claimed = rnd.sample(standby, 2)
        lost_iid = c.node(lost)["metadata"]["labels"]["stratos.sh/instance-id"]
        # An instance lost (terminated by hand: one launch is needed), and a node
        # claimed (it runs, is empty, and scales down after its TTL).
        c.sim.ec2.terminate_instances(InstanceIds=[lost_iid])
        c.claim(claimed, pod="apps/round-%d" % rnd_i)
        delay = rnd.uniform(0, 5)
        time.sleep(delay)        # the crash lands at a random moment of the work (intended)
        snapshot = sorted(c.states(POOL).items())
        d.proc.kill()
        d.proc.wait()
        kills.append((round(delay, 2), snapshot))
        d = c.stratosd()
        t0 = time.time()
        why = [None]

        def ok():
            why[0] = converged(c)
            return why[0] is None
        try:
            wait_for(ok, 90, "convergence after kill %d" % (rnd_i + 1))
        except AssertionError:
            raise AssertionError("round %d (seed %d, kill %.2fs after the actions, states then %s): %s"
                                 % (rnd_i + 1, seed, delay, snapshot, why[0]))
        created += 1
        ever = c.instances(POOL, alive=False)
        tokens = [i["client_token"] for i in ever]
        test.assertEqual(len(tokens), len(set(tokens)), "two instances of one ClientToken")
        test.assertEqual(len(ever), created, "round %d: %d instances launched in all, want %d "
                         "(seed %d)" % (rnd_i + 1, len(ever), created, seed))
        log("round %2d: killed %.2fs in (%s), converged in %.1fs" % (
            rnd_i + 1, delay, ",".join(s for _, s in snapshot), time.time() - t0))
        c.check_logs(d, stop=rnd_i == rounds - 1)
    return kills


class CrashTest(unittest.TestCase):

    def test_kill_at_random_moments_converges(self):
        rounds = int(os.environ.get("STRATOS_CRASH_ROUNDS", "5"))
        run_rounds(self, rounds, log=lambda m: sys.stderr.write("\n" + m))


if __name__ == "__main__":
    unittest.main()
