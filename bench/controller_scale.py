#!/usr/bin/env python3
"""The pool controller at scale, at steady state: 100 NodePools and 5,000
standby nodes (each a stopped ec2sim instance and its Node), and stratosd
with --cluster-name reconciling them.

Measures, after every pool's status shows its standby nodes:
  - stratosd's CPU time per minute and its memory (RSS, peak) over a window;
  - the EC2 calls it makes per minute (ec2sim's request log) — with nothing
    changing they should be almost none: one full DescribeInstances listing
    (5,000 instances = 10 pages) per --ec2-resync, nothing else;
  - the Kubernetes API requests per minute (fake API server counters);
  - the start-up: time and CPU until every pool's status is written.

    STRATOSD=build/stratosd python3 bench/controller_scale.py [--pools 100] [--nodes 5000] [--window 120]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import simproc  # noqa: E402
import stratos_testlib as tl  # noqa: E402
import yaml  # noqa: E402
from simclient import Client  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
CLUSTER = "bench"
# A /20 each in ec2sim: 4,091 addresses, so 5,000 instances need two or more.
SUBNETS = ["subnet-12345678", "subnet-22222222", "subnet-33333333"]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(TICK)


def tl_duration_s(s):
    """"5m", "30s", "1h" → seconds."""
    unit = {"s": 1, "m": 60, "h": 3600}[s[-1]]
    return float(s[:-1]) * unit


def mem_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def bulk(api, items, chunk=1000):
    for i in range(0, len(items), chunk):
        st, body = api.post("/_sim/bulk", items[i:i + chunk])
        if st != 200 or body.get("failed"):
            raise RuntimeError("bulk: %s %s" % (st, str(body)[:300]))


def ec2_requests(env):
    st, body = simproc.control(env["STRATOS_SIM_EC2_CONTROL"], "GET", "requests?since=0",
                               ca=env["AWS_CA_BUNDLE"])
    return body


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pools", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--window", type=float, default=120, help="steady-state seconds measured")
    ap.add_argument("--ec2-resync", default="5m")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    per_pool = args.nodes // args.pools
    d = tempfile.mkdtemp(prefix="stratos-bench-ctl-")
    procs = []
    try:
        for name, extra in (("ec2sim", ["--time-scale", "0.01"] + sum((["--subnet", s] for s in SUBNETS), [])),
                            ("apiserver", ["--quiet"])):
            p, _ = simproc.start(name, d, extra)
            procs.append(p)
        env = simproc.read_env(os.path.join(d, "ec2sim.env"))
        api = Client(d)
        for f in sorted(os.listdir(os.path.join(REPO, "manifests", "crds"))):
            if f.startswith("stratos.sh_"):
                with open(os.path.join(REPO, "manifests", "crds", f)) as fh:
                    for doc in yaml.safe_load_all(fh):
                        api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)
        api.post("/apis/stratos.sh/v1alpha1/awsnodeclasses", {
            "apiVersion": "stratos.sh/v1alpha1", "kind": "AWSNodeClass", "metadata": {"name": "bench"},
            "spec": {"instanceType": "m5.large", "ami": "ami-0123456789abcdef0",
                     "subnetIds": SUBNETS, "securityGroupIds": ["sg-12345678"],
                     "iamInstanceProfile": "node-role", "userData": "#!/bin/bash\n"}})
        pools = ["pool-%03d" % i for i in range(args.pools)]
        for p in pools:
            st, body = api.post("/apis/stratos.sh/v1alpha1/nodepools", {
                "apiVersion": "stratos.sh/v1alpha1", "kind": "NodePool", "metadata": {"name": p},
                "spec": {"poolSize": per_pool + 10, "minStandby": per_pool,
                         "template": {"nodeClassRef": {"kind": "AWSNodeClass", "name": "bench"},
                                      "labels": {"stratos.sh/pool": p}}}})
            assert st == 201, body
        # The instances: launched stopped-to-be, tagged as the controller tags them.
        import boto3
        import botocore.config
        ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL_EC2"], verify=env["AWS_CA_BUNDLE"],
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"],
                           config=botocore.config.Config(retries={"total_max_attempts": 3}))
        t0 = time.time()
        nodes, ids = [], []
        for k, p in enumerate(pools):
            r = ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="m5.large",
                                  MinCount=per_pool, MaxCount=per_pool, SubnetId=SUBNETS[k % len(SUBNETS)],
                                  TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                      {"Key": "stratos.sh/cluster", "Value": CLUSTER},
                                      {"Key": "stratos.sh/pool", "Value": p},
                                      {"Key": "stratos.sh/state", "Value": "standby"},
                                      {"Key": "managed-by", "Value": "stratos"}]}])
            for i in r["Instances"]:
                ids.append(i["InstanceId"])
                az = i["Placement"]["AvailabilityZone"]
                name = i["PrivateDnsName"]
                nodes.append({"apiVersion": "v1", "kind": "Node", "metadata": {
                    "name": name, "labels": {"kubernetes.io/hostname": name, "stratos.sh/pool": p,
                                             "stratos.sh/state": "standby",
                                             "stratos.sh/instance-id": i["InstanceId"],
                                             "topology.kubernetes.io/zone": az,
                                             "node.kubernetes.io/instance-type": "m5.large"},
                    "annotations": {"stratos.sh/state-since": "2026-12-06T00:00:00Z"}},
                    "spec": {"providerID": "aws:///%s/%s" % (az, i["InstanceId"]), "taints": [
                        {"key": "stratos.sh/standby", "value": "true", "effect": "NoExecute"},
                        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]},
                    "status": {"allocatable": {"cpu": "1930m", "memory": "7244284Ki", "pods": "29"},
                               "conditions": [{"type": "Ready", "status": "Unknown"}]}})
        time.sleep(0.2)   # pending → running (2 s x 0.01)
        for i in range(0, len(ids), 500):
            ec2.stop_instances(InstanceIds=ids[i:i + 500])
        bulk(api, nodes)
        print("set up %d pools, %d instances and Nodes in %.0fs" % (len(pools), len(ids), time.time() - t0))
        # stratosd
        senv = {k: env[k] for k in ("AWS_ENDPOINT_URL_EC2", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                    "AWS_REGION", "AWS_CA_BUNDLE")}
        time.sleep(0.5)   # stopping → stopped
        before = ec2_requests(env)["last_seq"]
        daemon = tl.Stratosd(["--insecure-http", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                              "--kubeconfig", os.path.join(d, "kubeconfig"), "--cluster-name", CLUSTER,
                              "--namespace", "stratos-system", "--ec2-resync", args.ec2_resync,
                              # moto takes tens of seconds over its first listing of 5,000 instances
                              "--ec2-timeout", "180s"],
                             env=senv, ready_timeout=60)
        t_start = time.time()
        cpu0 = cpu_seconds(daemon.pid)

        def all_status():
            items, _ = api.list_all("/apis/stratos.sh/v1alpha1/nodepools")
            return all(((i.get("status") or {}).get("nodes") or {}).get("standby") == per_pool for i in items)
        while not all_status():
            if time.time() - t_start > 300:
                raise RuntimeError("pools not reconciled after 300 s")
            time.sleep(0.5)
        startup = time.time() - t_start
        startup_cpu = cpu_seconds(daemon.pid) - cpu0
        reqs = ec2_requests(env)
        startup_calls = [r["action"] or "?" for r in reqs["requests"] if r["seq"] > before]
        print("start-up: every pool's status written in %.1fs, %.2f CPU s; EC2 calls: %s" % (
            startup, startup_cpu, {a: startup_calls.count(a) for a in sorted(set(startup_calls))}))
        # Steady state.
        api.post("/_sim/requests/reset", {})
        seq0 = ec2_requests(env)["last_seq"]
        cpu1, t1 = cpu_seconds(daemon.pid), time.time()
        time.sleep(args.window)
        cpu2, t2 = cpu_seconds(daemon.pid), time.time()
        mem = mem_kib(daemon.pid)
        calls = [r["action"] or "?" for r in ec2_requests(env)["requests"] if r["seq"] > seq0]
        st, counts = api.get("/_sim/requests")
        minutes = (t2 - t1) / 60.0
        kube = {k: v for k, v in counts["counts"].items() if v}
        print("steady state over %.0fs (%d pools, %d nodes, nothing changing):" % (t2 - t1, len(pools), len(ids)))
        print("  CPU: %.2f s per minute (%.2f%% of one core)" % ((cpu2 - cpu1) / minutes,
                                                                100.0 * (cpu2 - cpu1) / (t2 - t1)))
        print("  memory: RSS %.1f MiB, peak %.1f MiB" % (mem["VmRSS"] / 1024.0, mem["VmHWM"] / 1024.0))
        api_calls = [a for a in calls if a != "?"]
        print("  EC2 API calls: %.2f per minute %s" % (len(api_calls) / minutes,
                                                       {a: api_calls.count(a) for a in sorted(set(api_calls))}))
        print("  (plus %.1f keep-alive pings per minute: unsigned requests with no action that keep "
              "the pooled connections open for the extender's fast path)" % (
                  (len(calls) - len(api_calls)) / minutes))
        pages = -(-len(ids) // 500)
        print("  full listing for garbage collection: %d DescribeInstances pages every --ec2-resync "
              "(%s), %.1f per minute on average" % (pages, args.ec2_resync,
                                                    pages / (tl_duration_s(args.ec2_resync) / 60.0)))
        print("  Kubernetes API requests: %.1f per minute %s" % (sum(kube.values()) / minutes, kube))
        daemon.stop()
    finally:
        for p in reversed(procs):
            simproc.stop(p)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print("kept", d)


if __name__ == "__main__":
    main()
