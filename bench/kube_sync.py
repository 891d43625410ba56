#!/usr/bin/env python3
"""stratosd's initial cache sync at scale: fills the fake API server with
5,000 Nodes and 50,000 Pods of realistic shape, starts `stratosd serve`
against it and reports the time until every cache is synced (/readyz), the
resident memory, and the bytes each cached pod costs.

    python3 bench/kube_sync.py [--nodes 5000] [--pods 50000] [--runs 1] [--json]

Needs a built stratosd (STRATOSD, else build/stratosd). Nodes carry
allocatable/capacity, conditions, ~10 images, taints and stratos.sh labels
and annotations; pods have 1-3 containers with requests and limits, owner
references (Deployments' ReplicaSets, DaemonSets, Jobs), the default
tolerations plus pool ones, node selectors or affinity, and status.
"""

import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import kubesim as ks  # noqa: E402
import stratos_testlib as tl  # noqa: E402

POOLS = ["ci-runners", "inference", "on-demand", "batch", "web"]
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
TS = "2026-11-27T10:00:00Z"


def node(i):
    name = "ip-10-%d-%d-%d.ec2.internal" % (i // 65536, (i // 256) % 256, i % 256)
    zone = ZONES[i % 3]
    pool = POOLS[i % len(POOLS)] if i % 4 else None
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": "amd64",
              "node.kubernetes.io/instance-type": "m5.2xlarge",
              "beta.kubernetes.io/instance-type": "m5.2xlarge",
              "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "us-east-1",
              "failure-domain.beta.kubernetes.io/zone": zone,
              "eks.amazonaws.com/nodegroup": "ng-%d" % (i % 7)}
    annotations = {"node.alpha.kubernetes.io/ttl": "0",
                   "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    taints = []
    if pool:
        labels["stratos.sh/pool"] = pool
        labels["stratos.sh/state"] = "running" if i % 3 else "standby"
        labels["stratos.sh/instance-id"] = "i-%017x" % i
        annotations["stratos.sh/state-since"] = TS
        annotations["stratos.sh/last-workload"] = "ci/Deployment/runner-%d" % (i % 50)
        if i % 3 == 0:
            taints.append({"key": "stratos.sh/standby", "value": "true", "effect": "NoExecute"})
            taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                           "timeAdded": TS})
    images = [{"names": ["123456789012.dkr.ecr.us-east-1.amazonaws.com/team/svc-%d@sha256:%064x"
                         % (k, i * 16 + k),
                         "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/svc-%d:v1.%d" % (k, k)],
               "sizeBytes": 50000000 + k * 1000003} for k in range(10)]
    conds = [{"type": t, "status": "False", "reason": "Kubelet" + r, "message": m,
              "lastHeartbeatTime": TS, "lastTransitionTime": TS}
             for t, r, m in (("MemoryPressure", "HasSufficientMemory", "kubelet has sufficient memory available"),
                             ("DiskPressure", "HasNoDiskPressure", "kubelet has no disk pressure"),
                             ("PIDPressure", "HasSufficientPID", "kubelet has sufficient PID available"))]
    conds.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "kubelet is posting ready status", "lastHeartbeatTime": TS,
                  "lastTransitionTime": TS})
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations,
                     "creationTimestamp": TS},
        "spec": {"providerID": "aws:///%s/i-%017x" % (zone, i), "taints": taints},
        "status": {
            "capacity": {"cpu": "8", "memory": "32386420Ki", "pods": "58",
                         "ephemeral-storage": "209702892Ki", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": "7910m", "memory": "31369588Ki", "pods": "58",
                            "ephemeral-storage": "192188443124", "hugepages-2Mi": "0"},
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": "10.%d.%d.%d" % (i // 65536, (i // 256) % 256, i % 256)},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "%032x" % i, "systemUUID": "ec2%029x" % i,
                         "bootID": "%032x" % (i * 7), "kernelVersion": "6.1.112-124.190.amzn2023.x86_64",
                         "osImage": "Amazon Linux 2023", "containerRuntimeVersion": "containerd://1.7.22",
                         "kubeletVersion": "v1.32.4-eks", "kubeProxyVersion": "v1.32.4-eks",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "images": images,
        },
    }


def pod(i, node_names, rng):
    kind = rng.random()
    ns = "team-%d" % (i % 20)
    node_name = node_names[i % len(node_names)]
    labels = {"app": "svc-%d" % (i % 300)}
    tolerations = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]
    spec = {}
    if kind < 0.1:
        ds = "ds-%d" % (i % 4)
        owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds,
                 "uid": "00000000-0000-4000-8000-%012d" % (i % 4), "controller": True,
                 "blockOwnerDeletion": True}
        ns = "kube-system"
        tolerations.append({"operator": "Exists"})
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                    "values": [node_name]}]}]}}}
        name = "%s-%05x" % (ds, i)
    elif kind < 0.2:
        job = "job-%d" % (i % 500)
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job,
                 "uid": "00000000-0000-4000-8001-%012d" % (i % 500), "controller": True}
        name = "%s-%05x" % (job, i)
    else:
        dep = "svc-%d" % (i % 300)
        h = "%x" % (0x5d8f7c9b4 + i % 300)
        labels["pod-template-hash"] = h
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "%s-%s" % (dep, h),
                 "uid": "00000000-0000-4000-8002-%012d" % (i % 300), "controller": True,
                 "blockOwnerDeletion": True}
        name = "%s-%s-%05x" % (dep, h, i)
        pool = POOLS[i % len(POOLS)]
        if i % 2:
            spec["nodeSelector"] = {"stratos.sh/pool": pool}
            tolerations.append({"key": "stratos.sh/standby", "operator": "Exists"})
            tolerations.append({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                "effect": "NoSchedule"})
        else:
            spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.kubernetes.io/zone", "operator": "In",
                     "values": ZONES[:2]}]}]}}}
    containers = []
    for c in range(1 + i % 3):
        containers.append({
            "name": "c%d" % c,
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/svc-%d:v1.%d" % (i % 300, c),
            "ports": [{"containerPort": 8080 + c, "protocol": "TCP"}],
            "env": [{"name": "SERVICE", "value": "svc-%d" % (i % 300)},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"requests": {"cpu": "%dm" % (100 + 50 * c), "memory": "%dMi" % (128 * (c + 1))},
                          "limits": {"memory": "%dMi" % (256 * (c + 1))}},
            "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
    spec.update({
        "containers": containers, "nodeName": node_name, "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default", "schedulerName": "default-scheduler",
        "securityContext": {}, "tolerations": tolerations, "priority": 0,
        "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
        "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "ownerReferences": [owner], "creationTimestamp": TS,
                     "uid": "%08x-0000-4000-8000-%012x" % (i, i)},
        "spec": spec,
        "status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.%d.%d" % (i // 256 % 256, i % 256),
            "startTime": TS, "qosClass": "Burstable",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": TS}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0,
                                   "image": c["image"], "imageID": c["image"] + "@sha256:%064x" % i,
                                   "containerID": "containerd://%064x" % (i * 3 + k),
                                   "started": True, "state": {"running": {"startedAt": TS}}}
                                  for k, c in enumerate(containers)]},
    }


def load(sim, nodes, pods):
    rng = random.Random(42)
    for ns in sorted({"team-%d" % k for k in range(20)}):
        st, body = sim.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": ns}})
        assert st in (201, 409), body
    t = time.monotonic()
    node_objs = [node(i) for i in range(nodes)]
    names = [n["metadata"]["name"] for n in node_objs]
    size = 0
    for k in range(0, nodes, 1000):
        body = json.dumps({"items": node_objs[k:k + 1000]})
        size += len(body)
        st, r = sim.api.post("/_sim/bulk", body)
        assert st == 200 and r["failed"] == 0, r
    for k in range(0, pods, 5000):
        body = json.dumps({"items": [pod(i, names, rng) for i in range(k, min(pods, k + 5000))]})
        size += len(body)
        st, r = sim.api.post("/_sim/bulk", body)
        assert st == 200 and r["failed"] == 0, r
    return time.monotonic() - t, size


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(sim):
    t0 = time.monotonic()
    d = ks.Daemon(sim)
    try:
        def ready():
            st, body = d.get("/readyz")
            return st == 200
        tl.wait_for(ready, 120, interval=0.02, what="caches synced")
        sync = time.monotonic() - t0
        cpu = cpu_seconds(d.pid)
        listed = {o["resource"]: o["ms"] for o in d.logs if o.get("msg") == "listed"}
        time.sleep(1.0)      # let the last pages' buffers go back
        dbg = d.debug()
        caches = {c["resource"]: c for c in dbg["caches"]}
        out = {
            "sync_seconds": round(sync, 2),
            "stratosd_cpu_seconds": round(cpu, 2),
            "list_ms": listed,
            "rss_mb": round(status_kib(d.pid, "VmRSS") / 1024, 1),
            "peak_rss_mb": round(status_kib(d.pid, "VmHWM") / 1024, 1),
            "nodes": caches["nodes"]["count"],
            "pods": caches["pods"]["count"],
            "bytes_per_pod": caches["pods"]["bytesPerObject"],
            "bytes_per_node": caches["nodes"]["bytesPerObject"],
            "interned_entries": dbg["interned"]["entries"],
            "interned_mb": round(dbg["interned"]["bytes"] / 1e6, 2),
        }
        # The interned strings and blobs are shared, mostly by pods: count them in.
        out["bytes_per_pod_with_interned"] = int(
            (caches["pods"]["bytes"] + dbg["interned"]["bytes"]) / max(1, out["pods"]))
        rc, _ = d.stop()
        assert rc == 0, "stratosd exited with %d" % rc
        return out
    finally:
        d.__exit__()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sim = ks.Sim(apiserver_opts=["--quiet"])
    try:
        load_s, size = load(sim, a.nodes, a.pods)
        if not a.json:
            print("loaded %d nodes + %d pods (%.0f MB of JSON) in %.1f s"
                  % (a.nodes, a.pods, size / 1e6, load_s))
        results = []
        for r in range(a.runs):
            res = run_once(sim)
            results.append(res)
            if a.json:
                continue
            print("run %d: all caches synced in %.2f s (LIST ms: %s)"
                  % (r + 1, res["sync_seconds"], ", ".join("%s %d" % kv for kv in sorted(res["list_ms"].items()))))
            print("       stratosd used %.2f s of CPU for it (the rest is the fake API server)"
                  % res["stratosd_cpu_seconds"])
            print("       RSS %.1f MB (peak %.1f MB); %d nodes, %d pods cached"
                  % (res["rss_mb"], res["peak_rss_mb"], res["nodes"], res["pods"]))
            print("       %d bytes per pod object (+ shared interned: %d bytes per pod), %d bytes per node"
                  % (res["bytes_per_pod"], res["bytes_per_pod_with_interned"], res["bytes_per_node"]))
            print("       targets: sync < 10 s: %s; RSS < 100 MB: %s"
                  % ("yes" if res["sync_seconds"] < 10 else "NO",
                     "yes" if res["peak_rss_mb"] < 100 else "NO"))
        if a.json:
            print(json.dumps(results))
    finally:
        sim.down()


if __name__ == "__main__":
    main()
