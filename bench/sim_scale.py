#!/usr/bin/env python3
"""Scale of the simulated cluster: 5,000 Nodes and 20,000 pending pods.

Loads the fake API server with N Ready nodes (m5.2xlarge allocatable, three
zones) and M pending pods through /_sim/bulk, starts schedsim (and, with
--kubeletsim, kubeletsim's controllers) and measures:
  - scheduling cycles per second until every pod is bound (each cycle filters
    up to the adaptive percentageOfNodesToScore of the nodes, scores them and
    binds asynchronously);
  - cycles per second on pods that fit nowhere (each cycle filters every node);
  - the CPU seconds of each simulator process over each phase.

    python3 bench/sim_scale.py [--nodes 5000] [--pods 20000] [--unschedulable 1000] [--kubeletsim]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))
import simproc  # noqa: E402
from simclient import Client  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(TICK)


def node(i):
    name = "bench-node-%05d" % i
    zone = "us-east-1" + "abc"[i % 3]
    alloc = {"cpu": "7910m", "memory": "31598100Ki", "ephemeral-storage": "18242267956", "pods": "58"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "topology.kubernetes.io/zone": zone,
                                                  "node.kubernetes.io/instance-type": "m5.2xlarge"}},
            "spec": {"providerID": "aws:///%s/i-%017x" % (zone, i)},
            "status": {"capacity": dict(alloc, cpu="8", memory="32686452Ki"), "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.3-eks-473151a"}}}


def pending_pod(i, ns, cpu="100m", memory="128Mi"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bench-pod-%06d" % i, "namespace": ns, "labels": {"app": "bench-%d" % (i % 50)}},
            "spec": {"containers": [{"name": "c", "image": "registry.example/app:1.0",
                                     "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
            "status": {"phase": "Pending"}}


def bulk(c, items, chunk=2000):
    for i in range(0, len(items), chunk):
        st, body = c.post("/_sim/bulk", items[i:i + chunk])
        if st != 200 or body.get("failed"):
            raise RuntimeError("bulk: %s %s" % (st, str(body)[:300]))


def stats(port):
    st, doc = simproc.control("http://127.0.0.1:%d" % port, "GET", "/_sim/stats")
    s = doc["schedulers"][0]
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=20000)
    ap.add_argument("--unschedulable", type=int, default=1000,
                    help="pods that fit no node, scheduled after the others (0: skip that phase)")
    ap.add_argument("--kubeletsim", action="store_true", help="also run kubeletsim (its controllers)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    d = tempfile.mkdtemp(prefix="stratos-sim-scale-")
    procs = {}
    try:
        procs["apiserver"], _ = simproc.start("apiserver", d, ["--quiet", "--history", "100000"])
        c = Client(d)
        c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        t = time.time()
        bulk(c, [node(i) for i in range(args.nodes)])
        bulk(c, [pending_pod(i, "bench") for i in range(args.pods)])
        print("loaded %d nodes and %d pending pods in %.1fs" % (args.nodes, args.pods, time.time() - t))
        if args.kubeletsim:
            procs["kubeletsim"], _ = simproc.start("kubeletsim", d, [])
        cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
        t0 = time.time()
        procs["schedsim"], sport = simproc.start("schedsim", d, ["--bind-workers", "4"])
        cpu0["schedsim"] = cpu_seconds(procs["schedsim"].pid)
        first = None
        last_print = t0
        while True:
            s = stats(sport)
            if first is None and s.get("cycles"):
                first = time.time()
                print("schedsim synced its caches (%d nodes, %d pods listed and watched) in %.1fs"
                      % (args.nodes, args.pods, first - t0))
            if s.get("bound", 0) >= args.pods:
                break
            if time.time() - t0 > args.timeout:
                print("timed out")
                break
            if time.time() - last_print > 10:
                last_print = time.time()
                print("  ... %d bound, %d cycles" % (s.get("bound", 0), s.get("cycles", 0)))
            time.sleep(0.2)
        t1 = time.time()
        s = stats(sport)
        cpu1 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
        span = t1 - (first or t0)
        print("\nphase 1: %d pods bound on %d nodes" % (s.get("bound", 0), args.nodes))
        print("  scheduling cycles:        %d in %.1fs = %.0f cycles/s (binds %.0f/s)"
              % (s.get("cycles", 0), span, s.get("cycles", 0) / span, s.get("bound", 0) / span))
        print("  schedsim time in cycles:  %.1fs (%.2f ms per cycle: filter, score, assume)"
              % (s["cycleSeconds"], 1000 * s["cycleSeconds"] / max(1, s.get("cycles", 1))))
        for n in procs:
            print("  CPU %-11s %7.1fs (%.0f%% of one core)" % (n + ":", cpu1[n] - cpu0[n],
                                                            100 * (cpu1[n] - cpu0[n]) / (t1 - t0)))
        if args.unschedulable:
            bulk(c, [pending_pod(args.pods + i, "bench", cpu="64") for i in range(args.unschedulable)])
            c0 = stats(sport).get("cycles", 0)
            cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
            t0 = time.time()
            while stats(sport).get("cycles", 0) - c0 < args.unschedulable and time.time() - t0 < args.timeout:
                time.sleep(0.1)
            c1 = stats(sport).get("cycles", 0)
            t1 = time.time()
            cpu1 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
            print("\nphase 2: %d pods that fit no node (every node filtered, PodScheduled=False written)"
                  % args.unschedulable)
            print("  first attempts:           %d in %.1fs = %.1f cycles/s" % (c1 - c0, t1 - t0, (c1 - c0) / (t1 - t0)))
            for n in procs:
                print("  CPU %-11s %7.1fs (%.0f%% of one core)" % (n + ":", cpu1[n] - cpu0[n],
                                                                100 * (cpu1[n] - cpu0[n]) / (t1 - t0)))
        c.close()
    finally:
        for n in ("schedsim", "kubeletsim", "apiserver"):
            if n in procs:
                simproc.stop(procs[n])
        if args.keep:
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
