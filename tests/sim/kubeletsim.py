#!/usr/bin/env python3
"""Kubelet simulator: the life of the emulated EC2 instances as the cluster
sees it.

For every instance of the emulated EC2 (ec2sim) it plays the node's kubelet,
and for the cluster it plays the control-plane controllers that react to
nodes: the node lifecycle controller, the cloud node lifecycle controller
(aws cloud provider), the taint eviction controller, the pod garbage
collector and the DaemonSet controller.

    python3 tests/sim/kubeletsim.py --dir DIR [--time-scale F] [options]

Needs the fake API server (DIR/apiserver.port) and ec2sim (DIR/ec2sim.env).
Writes DIR/kubeletsim.port (a plain-HTTP control API, see tests/sim/README.md)
once it runs. Every behaviour copies the upstream code named in its comment.
"""

import argparse
import base64
import collections
import hashlib
import http.server
import json
import os
import random
import re
import shlex
import signal
import ssl
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simkube import (ApiClient, Informer, Loop, NodeMatcher, TimeScale, TimelineClient,  # noqa: E402
                     fmt_milli, is_extended, log, micro_time, parse_time, pod_requests, q_value,
                     quantity, resource_vector, rfc3339, tolerates, untolerated_taint, write_atomic)

NAME = "kubeletsim"

# ---------------------------------------------------------------------------
# What an EKS node looks like.
#
# vCPUs, memory (GiB), ENIs, IPv4 addresses per ENI, NVIDIA GPUs: the EC2
# instance type specifications. Max pods = ENIs x (IPv4 per ENI - 1) + 2, the
# formula and the values of amazon-eks-ami files/eni-max-pods.txt ("First IP on
# each ENI is not used for pods; +2 for the pods that use host-networking (AWS
# CNI and kube-proxy)"): m5.large 29, m5.2xlarge 58, m5.4xlarge 234,
# g5.2xlarge 58, c5.large 29, r5.large 29, t3.large 35...
INSTANCE_TYPES = {
    # instance type: (vCPUs, GiB, ENIs, IPv4 addresses per ENI, GPUs)
    "t3.medium": (2, 4, 3, 6, 0), "t3.large": (2, 8, 3, 12, 0), "t3.xlarge": (4, 16, 4, 15, 0),
    "m5.large": (2, 8, 3, 10, 0), "m5.xlarge": (4, 16, 4, 15, 0), "m5.2xlarge": (8, 32, 4, 15, 0),
    "m5.4xlarge": (16, 64, 8, 30, 0), "m5.8xlarge": (32, 128, 8, 30, 0), "m5.12xlarge": (48, 192, 8, 30, 0),
    "m6i.large": (2, 8, 3, 10, 0), "m6i.xlarge": (4, 16, 4, 15, 0), "m6i.2xlarge": (8, 32, 4, 15, 0),
    "c5.large": (2, 4, 3, 10, 0), "c5.xlarge": (4, 8, 4, 15, 0), "c5.2xlarge": (8, 16, 4, 15, 0),
    "c5.4xlarge": (16, 32, 8, 30, 0), "c5.9xlarge": (36, 72, 8, 30, 0),
    "r5.large": (2, 16, 3, 10, 0), "r5.xlarge": (4, 32, 4, 15, 0), "r5.2xlarge": (8, 64, 4, 15, 0),
    "r5.4xlarge": (16, 128, 8, 30, 0), "r5.8xlarge": (32, 256, 8, 30, 0),
    "g5.xlarge": (4, 16, 4, 15, 1), "g5.2xlarge": (8, 32, 4, 15, 1), "g5.4xlarge": (16, 64, 8, 30, 1),
    "g5.8xlarge": (32, 128, 8, 30, 1), "g5.12xlarge": (48, 192, 8, 30, 4),
}
# /proc/meminfo MemTotal (what cAdvisor reports as capacity) is below the
# nominal size: an m5.large on the EKS AMI reports 7934460Ki of its 8GiB
# (allocatable 7244284Ki = 7934460Ki - 574Mi kube-reserved - 100Mi eviction).
# Modelled as that ratio for every type.
MEMTOTAL_RATIO = 7934460 / (8 * 1024 * 1024)
# The root filesystem (XFS on the EKS AMI) shows 12308Ki less than its volume:
# a 20GiB root volume reports ephemeral-storage capacity 20959212Ki.
ROOTFS_OVERHEAD_KI = 12308
DEFAULT_ROOT_GIB = 20           # the EKS AMI's root volume when none is given
GPU_RESOURCE = "nvidia.com/gpu"

# Sizes of a few well-known images (compressed, as pulled); the rest use
# --default-image-size unless --image-size says otherwise.
DEFAULT_IMAGE_SIZES = {
    "registry.k8s.io/pause": 300 * 1024,
    "busybox": 2 * 1024 * 1024,
    "alpine": 3 * 1024 * 1024,
    "nginx": 70 * 1024 * 1024,
    "python": 380 * 1024 * 1024,
    "amazon/aws-node": 70 * 1024 * 1024,
    "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni": 70 * 1024 * 1024,
    "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy": 30 * 1024 * 1024,
    "nvcr.io/nvidia/k8s-device-plugin": 120 * 1024 * 1024,
}

RUN_SECONDS_ANNOTATION = "sim.stratos.sh/run-seconds"
INIT_RUN_SECONDS_ANNOTATION = "sim.stratos.sh/init-run-seconds"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_SHUTDOWN = "node.cloudprovider.kubernetes.io/shutdown"
TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
# pkg/controller/nodelifecycle/node_lifecycle_controller.go
# nodeConditionToTaintKeyStatusMap: the NoSchedule taint each condition status means.
CONDITION_TAINTS = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
}
CONTROLLER_NOSCHEDULE_KEYS = set(v for m in CONDITION_TAINTS.values() for v in m.values()) | {TAINT_UNSCHEDULABLE}
KUBELET_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def instance_shape(itype):
    """(vcpu, memory bytes, max pods, gpus) of an instance type."""
    spec = INSTANCE_TYPES.get(itype)
    if spec is None:
        # Unknown type: scale an m5 of the same size (large=2 vCPU, xlarge=4, Nxlarge=4N).
        size = (itype or "").split(".")[-1]
        m = re.fullmatch(r"(\d*)xlarge", size)
        vcpu = 2 if size == "large" else (4 * int(m.group(1) or 1) if m else 2)
        enis, ips = (3, 10) if vcpu <= 2 else ((4, 15) if vcpu <= 8 else (8, 30))
        spec = (vcpu, vcpu * 4, enis, ips, 0)
    vcpu, gib, enis, ips, gpus = spec
    return vcpu, gib * 1024 ** 3, enis * (ips - 1) + 2, gpus


def eks_kube_reserved(vcpu, max_pods):
    """amazon-eks-ami files/bootstrap.sh: kubeReserved memory = 11 x maxPods +
    255 MiB (get_memory_mebibytes_to_reserve); cpu = 6% of the first core, 1% of
    the second, 0.5% of cores 3-4, 0.25% of the rest (get_cpu_millicores_to_reserve);
    ephemeral-storage 1Gi."""
    total = vcpu * 1000
    cpu = 0
    for start, end, pct in ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, total, 25)):
        if total > start:
            cpu += (min(total, end) - start) * pct // 100 // 100
    return {"cpu": cpu, "memory": (11 * max_pods + 255) * 1024 * 1024, "ephemeral-storage": 1024 ** 3}


def node_resources(itype, root_gib, max_pods_override=None):
    """(capacity, allocatable) as the kubelet reports them on the EKS AMI:
    allocatable = capacity - kubeReserved - evictionHard, evictionHard being
    memory.available<100Mi and nodefs.available<10% (bootstrap.sh), computed as
    the kubelet does (pkg/kubelet/cm/node_container_manager_linux.go
    GetNodeAllocatableAbsolute, hard eviction thresholds from
    pkg/kubelet/eviction/api GetThresholdQuantity)."""
    vcpu, mem_nominal, max_pods, gpus = instance_shape(itype)
    reserved = eks_kube_reserved(vcpu, max_pods)
    if max_pods_override:
        max_pods = max_pods_override
    mem_ki = int(mem_nominal // 1024 * MEMTOTAL_RATIO)
    eph_bytes = (root_gib * 1024 * 1024 - ROOTFS_OVERHEAD_KI) * 1024
    cap = {"cpu": fmt_milli(vcpu * 1000), "memory": "%dKi" % mem_ki, "ephemeral-storage": "%dKi" % (eph_bytes // 1024),
           "pods": str(max_pods), "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    alloc = {"cpu": fmt_milli(vcpu * 1000 - reserved["cpu"]),
             "memory": "%dKi" % (mem_ki - (reserved["memory"] + 100 * 1024 * 1024) // 1024),
             "ephemeral-storage": str(eph_bytes - reserved["ephemeral-storage"] - int(eph_bytes * 0.1)),
             "pods": str(max_pods), "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    return cap, alloc, gpus


# ---------------------------------------------------------------------------
# User data (the seed's pattern: /etc/eks/bootstrap.sh --kubelet-extra-args
# '...'; wait for kubelet health; sleep; poweroff).

def decode_user_data(raw):
    if not raw:
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
    except (ValueError, UnicodeDecodeError):
        return raw


def kubelet_flags(user_data):
    """The kubelet flags the user data passes: the words of every
    --kubelet-extra-args value (bootstrap.sh writes them to KUBELET_EXTRA_ARGS)."""
    text = user_data.replace("\\\n", " ")
    out = []
    for m in re.finditer(r"--kubelet-extra-args(?:=|\s+)('[^']*'|\"[^\"]*\"|\S+)", text):
        value = m.group(1)
        if value[:1] in "'\"" and value[-1:] == value[:1]:
            value = value[1:-1]
        try:
            out.extend(shlex.split(value))
        except ValueError:
            out.extend(value.split())
    flags = {}
    for i, w in enumerate(out):
        if not w.startswith("--"):
            continue
        if "=" in w:
            k, v = w[2:].split("=", 1)
        else:
            k, v = w[2:], out[i + 1] if i + 1 < len(out) and not out[i + 1].startswith("--") else "true"
        flags[k] = v
    return flags


def parse_taints(spec):
    """kubelet --register-with-taints "key=value:Effect,key2:Effect"."""
    taints = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        kv, _, effect = part.rpartition(":")
        key, _, value = kv.partition("=")
        t = {"key": key, "effect": effect}
        if value:
            t["value"] = value
        taints.append(t)
    return taints


def parse_labels(spec):
    out = {}
    for part in (spec or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def parse_poweroff(user_data):
    """(poll seconds, sleep seconds) when the user data ends by powering the
    machine off after the kubelet is healthy ("until curl .../healthz; do sleep
    P; done; sleep N; poweroff"), else None."""
    lines = [ln.strip() for ln in user_data.replace("\\\n", " ").splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    if not lines or not re.match(r"^(sudo\s+)?(poweroff|shutdown\s+-h|halt\s+-p|systemctl\s+poweroff)\b", lines[-1]):
        return None
    poll, sleep_s = 5.0, 0.0
    text = "\n".join(lines)
    m = re.search(r"until\b.*healthz.*?do\s+sleep\s+(\d+(?:\.\d+)?)", text, re.S)
    if m:
        poll = float(m.group(1))
    if len(lines) >= 2:
        m = re.match(r"^sleep\s+(\d+(?:\.\d+)?)\s*$", lines[-2])
        if m:
            sleep_s = float(m.group(1))
    return poll, sleep_s


def bootstrap_aborts(user_data):
    """True when a user-data script exits with a non-zero status before it
    reaches bootstrap.sh (an "exit N" line first): cloud-init runs the script
    once (scripts-user, cc_scripts_user.py) and a script that exits never
    starts the kubelet, so the instance runs without ever registering a Node.
    Any other user data (none included) boots the kubelet, as an AMI that
    bootstraps itself does."""
    for ln in user_data.replace("\\\n", " ").splitlines():
        ln = ln.strip()
        if "bootstrap.sh" in ln:
            return False
        if re.match(r"^exit\s+[1-9]\d*\s*$", ln):
            return True
    return False


def root_volume_gib(params):
    """The root volume size of RunInstances' BlockDeviceMapping (/dev/xvda or
    the first mapping), or the AMI's default."""
    vols = {}
    for k, v in params.items():
        m = re.match(r"BlockDeviceMapping\.(\d+)\.(DeviceName|Ebs\.VolumeSize)$", k)
        if m:
            vols.setdefault(m.group(1), {})[m.group(2)] = v
    for v in vols.values():
        if v.get("DeviceName") in ("/dev/xvda", "/dev/sda1") and v.get("Ebs.VolumeSize"):
            return int(v["Ebs.VolumeSize"])
    for _, v in sorted(vols.items()):
        if v.get("Ebs.VolumeSize"):
            return int(v["Ebs.VolumeSize"])
    return DEFAULT_ROOT_GIB


# ---------------------------------------------------------------------------
# Images.

def normalize_image(ref):
    """The runtime's full reference (containerd: docker.io/library/nginx:latest)."""
    name, digest = ref, ""
    if "@" in ref:
        name, digest = ref.split("@", 1)
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    return name + ("@" + digest if digest else "")


def image_repo(ref):
    n = normalize_image(ref).split("@")[0]
    last = n.rsplit("/", 1)
    return n[:n.rfind(":")] if ":" in last[-1] else n


def image_digest(ref):
    return "sha256:" + hashlib.sha256(normalize_image(ref).encode()).hexdigest()


class Images:
    """image -> size: exact references, then repositories (image without tag),
    then the short names of DEFAULT_IMAGE_SIZES, then the default."""

    def __init__(self, default_size, sizes):
        self.default = default_size
        self.sizes = {}
        for k, v in DEFAULT_IMAGE_SIZES.items():
            self.sizes[image_repo(k)] = v
        self.sizes.update({k: v for k, v in sizes.items()})

    def size(self, ref):
        for k in (ref, normalize_image(ref), image_repo(ref)):
            if k in self.sizes:
                return self.sizes[k]
        return self.default


# ---------------------------------------------------------------------------
# API writes off the loop thread, in order per key.

class Writer:
    """A few threads running API calls; calls with the same key run in the
    order they were submitted (one node's, one pod's writes stay ordered)."""

    def __init__(self, threads=4):
        self.lock = threading.Condition()
        self.pending = {}           # key -> deque of fns
        self.ready = collections.deque()
        self.busy = set()
        for i in range(threads):
            threading.Thread(target=self.run, name="writer-%d" % i, daemon=True).start()

    def submit(self, key, fn):
        with self.lock:
            q = self.pending.get(key)
            if q is None:
                q = self.pending[key] = collections.deque()
            q.append(fn)
            if key not in self.busy and len(q) == 1:
                self.ready.append(key)
                self.lock.notify()

    def run(self):
        while True:
            with self.lock:
                while not self.ready:
                    self.lock.wait()
                key = self.ready.popleft()
                self.busy.add(key)
                fn = self.pending[key].popleft()
            try:
                fn()
            except Exception:
                log(NAME, "write %s failed:\n%s" % (key, traceback.format_exc()))
            with self.lock:
                self.busy.discard(key)
                q = self.pending.get(key)
                if q:
                    self.ready.append(key)
                    self.lock.notify()
                elif q is not None:
                    del self.pending[key]

    def idle(self):
        with self.lock:
            return not self.pending and not self.busy


# ---------------------------------------------------------------------------
# State kept on the loop thread.

class Machine:
    """An EC2 instance and what survives on its disk."""

    def __init__(self, iid):
        self.iid = iid
        self.state = None
        self.info = {}
        self.params = {}
        self.tags = {}
        self.user_data = ""
        self.flags = {}
        self.poweroff = None
        self.no_kubelet = False         # the user data exits before bootstrap.sh
        self.node = None                # private DNS name = the Node's name
        self.disk = {}                  # pulled images: normalized ref -> size (EBS root volume)
        self.boots = 0
        self.user_data_ran = False      # cloud-init runs user-data scripts once per instance
        self.kubelet = None             # Kubelet while the OS runs
        self.gen = 0
        self.last_heartbeat = None      # monotonic time of the last lease renewal / status post
        self.ever_ready = False
        self.terminated = False

    def public(self):
        k = self.kubelet
        return {"instance_id": self.iid, "state": self.state, "node": self.node, "boots": self.boots,
                "instance_type": self.info.get("instance_type"), "zone": self.info.get("availability_zone"),
                "kubelet": None if k is None else {
                    "started": k.started_wall, "ready": k.ready, "network_ready": k.network_ready,
                    "device_plugin_ready": k.device_ready, "boot_id": k.boot_id},
                "images": sorted(self.disk), "register_with_taints": parse_taints(self.flags.get("register-with-taints")),
                "node_labels": parse_labels(self.flags.get("node-labels")),
                "poweroff": None if self.poweroff is None else {"poll_seconds": self.poweroff[0],
                                                               "sleep_seconds": self.poweroff[1]},
                "user_data_ran": self.user_data_ran}


class Kubelet:
    """One boot of a machine's kubelet."""

    def __init__(self, m, now):
        self.machine = m
        self.gen = m.gen
        self.started = now
        self.started_wall = time.time()
        self.boot_id = str(uuid.uuid4())
        self.ready = False
        self.network_ready = False
        self.network_ready_at = None    # monotonic
        self.device_ready = False
        self.registered = False
        self.pulls = {}                 # normalized ref -> Pull
        self.bandwidth_users = []
        self.images_dirty = False


class Pull:
    def __init__(self, ref, size, now):
        self.ref = ref
        self.remaining = float(size)
        self.size = size
        self.waiters = []
        self.updated = now
        self.done = False


class PodRun:
    """What the kubelet does with one pod during one boot."""

    def __init__(self, pod, kubelet):
        self.key = "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.uid = pod["metadata"]["uid"]
        self.kubelet = kubelet
        self.gen = kubelet.gen
        self.phase = "Pending"
        self.reason = None
        self.message = None
        self.admitted_at = time.time()
        self.ip = None
        self.sandbox = False
        self.initialized = False
        self.init = {}          # name -> status dict
        self.containers = {}    # name -> status dict
        self.restarts = {}
        self.done = False
        self.dirty = False


class KubeletSim:
    def __init__(self, args):
        self.args = args
        self.ts = TimeScale(args.time_scale)
        self.api = ApiClient(args.dir)
        self.timeline = TimelineClient(self.api, NAME)
        self.loop = Loop(NAME)
        self.writer = Writer(args.writers)
        self.stop = threading.Event()
        self.images = Images(q_value(args.default_image_size),
                             {k: q_value(v) for k, v in (s.split("=", 1) for s in args.image_size or [])})
        self.bandwidth = q_value(args.pull_bandwidth)
        # ec2sim control API
        env = {}
        envfile = os.path.join(args.dir, "ec2sim.env")
        if os.path.exists(envfile):
            with open(envfile) as f:
                env = dict(line.strip().split("=", 1) for line in f if "=" in line)
        self.ec2_url = args.ec2sim_control or env.get("STRATOS_SIM_EC2_CONTROL")
        ca = args.ec2sim_ca or env.get("AWS_CA_BUNDLE")
        self.ec2_ctx = ssl.create_default_context(cafile=ca) if ca else None
        # loop-thread state
        self.machines = {}              # iid -> Machine
        self.by_node = {}               # node name -> Machine
        self.nodes = {}                 # name -> Node (from the watch)
        self.pods = {}                  # key -> Pod
        self.pods_by_node = collections.defaultdict(set)
        self.runs = {}                  # pod uid -> PodRun
        self.dss = {}                   # key -> DaemonSet
        self.ds_pods = collections.defaultdict(set)   # DaemonSet uid -> pod keys
        self.ds_pending = {}            # (ds uid, node) -> monotonic deadline of an unconfirmed create
        self.ds_dirty = set()
        self.ds_scheduled = False
        self.evictions = {}             # pod uid -> (due monotonic, token)
        self.gc_due = {}                # pod key -> monotonic time the pod GC deletes it
        self.zone_queue = collections.defaultdict(collections.OrderedDict)   # zone -> node -> None
        self.zone_tokens = {}           # zone -> (tokens, last monotonic)
        self.zone_state = {}            # zone -> state
        self.synced = set()
        self.ec2_seq = 0
        self.counters = collections.Counter()

    # ---------------------------------------------------------------- plumbing

    def dl(self, seconds):
        """A simulated delay in real seconds."""
        return self.ts(seconds)

    def ec2(self, method, path, body=None, timeout=70):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.ec2_url.rstrip("/") + "/" + path.lstrip("/"), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ec2_ctx) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def write(self, key, method, path, body=None, ctype="application/json", done=None):
        def fn():
            st, resp = self.api.request(method, path, body, ctype)
            if st >= 300 and st not in (404, 409) and not self.stop.is_set():
                log(NAME, "%s %s: %s %s" % (method, path, st, str(resp)[:300]))
            if done is not None:
                self.loop.post(done, st, resp)
        self.writer.submit(key, fn)

    def node_taints(self, name, mutate, why=""):
        """Read-modify-write of a Node's taints with a resourceVersion
        precondition, retried on conflict (controller-utils PatchNodeTaints:
        the patch carries the resourceVersion, so a concurrent change is a 409)."""
        def fn():
            for _ in range(8):
                st, node = self.api.get("/api/v1/nodes/%s" % name)
                if st != 200:
                    return
                old = (node.get("spec") or {}).get("taints") or []
                new = mutate([dict(t) for t in old])
                if new == old:
                    return
                st, body = self.api.patch("/api/v1/nodes/%s" % name, {
                    "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                    "spec": {"taints": new or None}})
                if st == 200:
                    return
                if st != 409:
                    log(NAME, "taints of %s (%s): %s %s" % (name, why, st, str(body)[:200]))
                    return
        self.writer.submit("node/" + name, fn)

    def tl_node(self, m, event, t=None, **detail):
        if m.node:
            self.timeline.add("node", m.node, event, t, instance=m.iid, **detail)

    # ---------------------------------------------------------------- start

    def start(self):
        self.loop.start()
        for name, path, handler in (("nodes", "/api/v1/nodes", self.on_node),
                                    ("pods", "/api/v1/pods", self.on_pod),
                                    ("daemonsets", "/apis/apps/v1/daemonsets", self.on_ds)):
            Informer(self.api, path, lambda t, o, old, h=handler: self.loop.post(h, t, o, old),
                     name="watch-" + name, stop=self.stop).start()
        if self.ec2_url:
            threading.Thread(target=self.poll_ec2, name="ec2", daemon=True).start()
        else:
            log(NAME, "no ec2sim (DIR/ec2sim.env or --ec2sim-control): controllers only")
        self.loop.after(self.dl(self.args.node_monitor_period), self.monitor_nodes)
        self.loop.after(self.dl(self.args.node_monitor_period), self.cloud_monitor)
        self.loop.after(0.1, self.taint_queue_pass)

    # ---------------------------------------------------------------- EC2

    def poll_ec2(self):
        while not self.stop.is_set():
            try:
                st, doc = self.ec2("GET", "instances")
                if st != 200:
                    raise RuntimeError("GET /_sim/instances: %s" % st)
                st2, tr = self.ec2("GET", "transitions?since=0&wait=0")
                self.ec2_seq = tr.get("last_seq", 0) if st2 == 200 else 0
                self.loop.post(self.on_instances, doc["instances"])
                break
            except Exception as e:
                log(NAME, "ec2sim: %s; retrying" % e)
                self.stop.wait(1)
        while not self.stop.is_set():
            try:
                st, doc = self.ec2("GET", "transitions?since=%d&wait=30" % self.ec2_seq)
                if st != 200:
                    raise RuntimeError("transitions: %s %s" % (st, doc))
                trs = doc.get("transitions") or []
                if doc.get("last_seq", 0) < self.ec2_seq:
                    self.ec2_seq = 0        # a fresh emulator
                    continue
                new_ids = {t["instance_id"] for t in trs if t.get("from") is None}
                infos = {}
                for iid in new_ids:
                    s, inst = self.ec2("GET", "instances/%s" % iid)
                    if s == 200:
                        infos[iid] = inst
                if trs:
                    self.ec2_seq = max(t["seq"] for t in trs)
                    self.loop.post(self.on_transitions, trs, infos)
            except Exception as e:
                if self.stop.is_set():
                    return
                log(NAME, "ec2sim transitions: %s; retrying" % e)
                self.stop.wait(1)

    def machine_from(self, inst):
        m = self.machines.get(inst["instance_id"])
        if m is None:
            m = self.machines[inst["instance_id"]] = Machine(inst["instance_id"])
        m.info = {k: inst.get(k) for k in ("private_dns_name", "private_ip_address", "availability_zone",
                                            "subnet_id", "instance_type", "image_id")}
        m.params = inst.get("launch_params") or {}
        m.tags = inst.get("tags") or {}
        m.user_data = decode_user_data(m.params.get("UserData"))
        m.flags = kubelet_flags(m.user_data)
        m.poweroff = parse_poweroff(m.user_data)
        m.no_kubelet = bootstrap_aborts(m.user_data)
        m.node = m.info.get("private_dns_name")
        if m.node:
            self.by_node[m.node] = m
        return m

    def on_instances(self, insts):
        """The instances that exist when kubeletsim starts: running ones boot now
        (a kubeletsim restart), the rest wait for their transitions."""
        for inst in insts:
            m = self.machine_from(inst)
            m.state = inst["state"]
            m.terminated = m.state == "terminated"
            if m.state == "running":
                # Instances that already ran their user data do not power off again.
                m.user_data_ran = True
                self.boot(m)
        self.synced.add("ec2")

    def on_transitions(self, trs, infos):
        for t in trs:
            iid = t["instance_id"]
            m = self.machines.get(iid)
            if m is None:
                if iid not in infos:
                    continue
                m = self.machine_from(infos[iid])
            old, new, why = t.get("from"), t.get("to"), t.get("why") or ""
            m.state = new
            when = t.get("time")
            if why in ("RunInstances", "StartInstances", "StopInstances", "TerminateInstances") or why.startswith("poweroff"):
                self.tl_node(m, "%s called" % (why.split(" ")[0]), when)
            if new in ("running", "stopped", "terminated"):
                self.tl_node(m, "instance %s" % new, when)
            if new == "running" and old != "running":
                self.boot(m)
            elif old == "running" and new != "running":
                self.shutdown(m, why)
            if new == "terminated":
                # The root volume goes with the instance (DeleteOnTermination).
                m.terminated = True
                m.disk.clear()

    # ---------------------------------------------------------------- kubelet

    def boot(self, m):
        """The OS boots; after --boot-seconds systemd starts the kubelet
        (bootstrap.sh ends with systemctl start kubelet)."""
        m.gen += 1
        m.boots += 1
        gen = m.gen
        self.loop.after(self.dl(self.args.boot_seconds), self.kubelet_start, m, gen)

    def shutdown(self, m, why):
        """The machine stops or terminates: the kubelet and every container die."""
        m.gen += 1
        k = m.kubelet
        m.kubelet = None
        if k is not None:
            self.tl_node(m, "kubelet stopped", detail_why=why)
            for uid, run in list(self.runs.items()):
                if run.kubelet is k:
                    del self.runs[uid]

    def alive(self, m, gen):
        return m.gen == gen and m.kubelet is not None and m.kubelet.gen == gen

    def kubelet_start(self, m, gen):
        if m.gen != gen or m.state != "running" or not m.node or m.no_kubelet:
            return
        now = time.monotonic()
        k = m.kubelet = Kubelet(m, now)
        m.last_heartbeat = now
        self.tl_node(m, "kubelet started")
        node = self.nodes.get(m.node)
        if node is None:
            self.register(m, k)
        else:
            self.recover(m, k, node)
        # kubelet.Run: the node lease controller starts with the kubelet
        # (pkg/kubelet/nodelease, renew interval = 0.25 x leaseDurationSeconds).
        self.renew_lease(m, gen)
        self.loop.after(self.dl(self.args.ready_seconds), self.kubelet_ready, m, gen)
        self.loop.after(self.dl(self.args.node_status_report_seconds), self.status_heartbeat, m, gen)
        if instance_shape(m.info.get("instance_type"))[3]:
            self.loop.after(self.dl(self.args.device_plugin_seconds), self.device_plugin_registered, m, gen)
        if m.poweroff and not m.user_data_ran:
            # The user data's "until curl -sf http://localhost:10248/healthz; do sleep P; done;
            # sleep N; poweroff": /healthz answers --kubelet-healthz-seconds after the kubelet
            # starts; the loop polls every P seconds from the kubelet's start.
            poll, sleep_s = m.poweroff
            healthy = self.args.kubelet_healthz_seconds
            polls = 0 if healthy <= 0 else int(-(-healthy // poll))
            self.loop.after(self.dl(polls * poll + sleep_s), self.user_data_poweroff, m, gen)
        m.user_data_ran = True
        for key in list(self.pods_by_node.get(m.node, ())):
            pod = self.pods.get(key)
            if pod is not None:
                self.sync_pod(pod)

    def base_labels(self, m):
        """The labels the kubelet sets (kubelet_node_status.go initialNode and
        updateDefaultLabels: hostname, os, arch and, from the cloud provider,
        instance type, zone, region, with their beta twins)."""
        zone = m.info.get("availability_zone") or ""
        region = zone[:-1] if zone else ""
        itype = m.info.get("instance_type") or ""
        return {"kubernetes.io/hostname": m.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": itype, "beta.kubernetes.io/instance-type": itype,
                "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": region,
                "failure-domain.beta.kubernetes.io/zone": zone, "failure-domain.beta.kubernetes.io/region": region}

    def conditions(self, k, heartbeat, ready=None, old=None):
        """The kubelet's own conditions (pkg/kubelet/nodestatus/setters.go):
        pressure conditions False, Ready False until the runtime network is
        ready. Transition times are kept when the status does not change."""
        t = rfc3339(heartbeat)
        ready = k.ready if ready is None else ready
        prev = {c["type"]: c for c in old or []}

        def cond(ctype, status, reason, msg):
            c = {"type": ctype, "status": status, "lastHeartbeatTime": t, "lastTransitionTime": t,
                 "reason": reason, "message": msg}
            p = prev.get(ctype)
            if p and p.get("status") == status and p.get("lastTransitionTime"):
                c["lastTransitionTime"] = p["lastTransitionTime"]
            return c
        out = [cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
               cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
               cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available")]
        if ready:
            out.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
        else:
            out.append(cond("Ready", "False", "KubeletNotReady",
                            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                            "message:Network plugin returns error: cni plugin not initialized"))
        return out

    def node_info(self, m, k):
        return {"machineID": hashlib.md5(m.iid.encode()).hexdigest(),
                "systemUUID": "ec2" + hashlib.md5(("uuid" + m.iid).encode()).hexdigest()[3:],
                "bootID": k.boot_id, "kernelVersion": "6.1.119-129.201.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.6.20250115", "containerRuntimeVersion": "containerd://1.7.25",
                "kubeletVersion": self.args.kubelet_version, "kubeProxyVersion": self.args.kubelet_version,
                "operatingSystem": "linux", "architecture": "amd64"}

    def register(self, m, k, backoff=0.1):
        """kubelet registerWithAPIServer with initialNode (pkg/kubelet/kubelet_node_status.go):
        --register-with-taints and --node-labels apply only here, when the Node is
        created; the TaintNodesByCondition admission plugin adds
        node.kubernetes.io/not-ready:NoSchedule to every new Node
        (plugin/pkg/admission/nodetaint), and with an external cloud provider the
        kubelet adds node.cloudprovider.kubernetes.io/uninitialized:NoSchedule
        until the cloud controller manager initializes the Node."""
        max_pods = int(m.flags["max-pods"]) if m.flags.get("max-pods", "").isdigit() else None
        cap, alloc, gpus = node_resources(m.info.get("instance_type"), root_volume_gib(m.params), max_pods)
        labels = self.base_labels(m)
        labels.update(parse_labels(m.flags.get("node-labels")))
        taints = parse_taints(m.flags.get("register-with-taints"))
        if self.args.external_cloud_provider:
            taints.append({"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"})
        taints.append({"key": TAINT_NOT_READY, "effect": "NoSchedule"})
        ip = m.info.get("private_ip_address")
        now = time.time()
        conds = self.conditions(k, now)
        # The kubelet on clouds whose network needs route configuration (and CNI
        # plugins that own the condition) start with NetworkUnavailable True
        # (initialNode: "NoRouteCreated", "Node created without a route").
        conds.insert(0, {"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated",
                         "message": "Node created without a route", "lastHeartbeatTime": rfc3339(now),
                         "lastTransitionTime": rfc3339(now)})
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": m.node, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": {"providerID": "aws:///%s/%s" % (m.info.get("availability_zone"), m.iid), "taints": taints},
                "status": {"capacity": cap, "allocatable": alloc, "conditions": conds,
                           "addresses": [{"type": "InternalIP", "address": ip},
                                         {"type": "InternalDNS", "address": m.node},
                                         {"type": "Hostname", "address": m.node}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                           "nodeInfo": self.node_info(m, k), "images": self.node_images(m)}}
        gen = m.gen

        def done(st, body):
            if st == 201:
                k.registered = True
                self.tl_node(m, "kubelet registered the Node")
                if self.args.external_cloud_provider:
                    self.loop.after(self.dl(self.args.ccm_init_seconds), self.ccm_initialize, m.node)
            elif st == 409 and self.alive(m, gen):
                # Somebody created it meanwhile: take it over as on a restart.
                st2, cur = self.api.get("/api/v1/nodes/%s" % m.node)
                if st2 == 200:
                    self.recover(m, k, cur)
            elif self.alive(m, gen):
                # registerWithAPIServer retries with a backoff from 100ms doubling to 7s.
                if backoff == 0.1:
                    log(NAME, "registering %s: %s %s" % (m.node, st, str(body)[:300]))
                self.loop.after(self.dl(backoff), lambda: self.alive(m, gen) and self.register(m, k, min(backoff * 2, 7.0)))
        self.write("node/" + m.node, "POST", "/api/v1/nodes", node, done=done)
        self.counters["nodes registered"] += 1

    def recover(self, m, k, node):
        """A restarted kubelet finds its Node (tryRegisterWithAPIServer: the
        Node exists): it reconciles only the default labels
        (updateDefaultLabels) and posts its status; taints and the other labels
        stay as they are."""
        k.registered = True
        self.tl_node(m, "kubelet recovered the Node")
        labels = self.base_labels(m)
        cur = (node.get("metadata") or {}).get("labels") or {}
        patch = {k2: v for k2, v in labels.items() if cur.get(k2) != v}
        if patch:
            self.write("node/" + m.node, "PATCH", "/api/v1/nodes/%s" % m.node, {"metadata": {"labels": patch}},
                       "application/strategic-merge-patch+json")
        self.post_status(m, k)

    def post_status(self, m, k, extra=None):
        """kubelet updateNodeStatus: a strategic merge patch of nodes/status
        (nodeutil.PatchNodeStatus); conditions merge by type."""
        node = self.nodes.get(m.node) or {}
        old = (node.get("status") or {}).get("conditions")
        status = {"conditions": self.conditions(k, time.time(), old=old), "nodeInfo": self.node_info(m, k)}
        if k.images_dirty:
            status["images"] = self.node_images(m)
            k.images_dirty = False
        if extra:
            status.update(extra)
        m.last_heartbeat = time.monotonic()
        self.write("node/" + m.node, "PATCH", "/api/v1/nodes/%s/status" % m.node, {"status": status},
                   "application/strategic-merge-patch+json")

    def kubelet_ready(self, m, gen):
        """The runtime network is ready (the CNI plugin's configuration is in
        place): the kubelet reports Ready True, which it cannot do before
        (pkg/kubelet/nodestatus/setters.go ReadyCondition: runtime, network and
        storage errors keep it False), and pods that do not use the host
        network can get their sandboxes from now on."""
        if not self.alive(m, gen):
            return
        k = m.kubelet
        if not k.registered:
            self.loop.after(self.dl(0.2), self.kubelet_ready, m, gen)
            return
        k.ready = True
        k.network_ready = True
        k.network_ready_at = time.monotonic()
        m.ever_ready = True
        self.post_status(m, k)
        self.tl_node(m, "runtime network ready")
        self.loop.after(self.dl(self.args.cni_seconds), self.cni_reports_network, m, gen)

    def cni_reports_network(self, m, gen):
        """The CNI agent (or the cloud route controller) reports the pod
        network: NetworkUnavailable False (pkg/controller/route/route_controller.go
        updateNetworkingCondition: "RouteCreated", "RouteController created a
        route"). Nobody sets it True again when the machine restarts: only the
        kubelet's initialNode does, on the Node's creation."""
        if not self.alive(m, gen):
            return
        if KubeletSim.cond_status(self.nodes.get(m.node) or {}, "NetworkUnavailable") != "True":
            return
        now = rfc3339()
        self.write("node/" + m.node, "PATCH", "/api/v1/nodes/%s/status" % m.node, {"status": {"conditions": [
            {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated",
             "message": "RouteController created a route", "lastHeartbeatTime": now, "lastTransitionTime": now}]}},
            "application/strategic-merge-patch+json")

    def device_plugin_registered(self, m, gen):
        """The NVIDIA device plugin (a DaemonSet) registers with the kubelet:
        nvidia.com/gpu appears in capacity and allocatable
        (pkg/kubelet/cm/devicemanager). Before that, on a restarted node that
        still advertises the GPU, a GPU pod fails admission with
        UnexpectedAdmissionError."""
        if not self.alive(m, gen):
            return
        k = m.kubelet
        k.device_ready = True
        gpus = instance_shape(m.info.get("instance_type"))[3]
        node = self.nodes.get(m.node) or {}
        cap = dict((node.get("status") or {}).get("capacity") or {})
        if cap.get(GPU_RESOURCE) != str(gpus):
            self.write("node/" + m.node, "PATCH", "/api/v1/nodes/%s/status" % m.node,
                       {"status": {"capacity": {GPU_RESOURCE: str(gpus)}, "allocatable": {GPU_RESOURCE: str(gpus)}}},
                       "application/strategic-merge-patch+json")
        for key in list(self.pods_by_node.get(m.node, ())):
            pod = self.pods.get(key)
            if pod is not None:
                self.sync_pod(pod)

    def renew_lease(self, m, gen):
        """The node lease (kube-node-lease/<node>), renewed every
        0.25 x leaseDurationSeconds (pkg/kubelet/nodelease: renewIntervalFraction)."""
        if not self.alive(m, gen):
            return
        duration = max(1, int(round(self.dl(self.args.lease_duration_seconds))))
        now = micro_time()
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": m.node, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": m.node, "leaseDurationSeconds": duration, "renewTime": now}}
        node = self.nodes.get(m.node)
        if node is not None:
            lease["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": m.node,
                                                     "uid": node["metadata"]["uid"]}]
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s" % m.node

        def fn():
            # The lease controller sets the Node as owner once it can (setNodeOwnerFunc).
            patch = {"spec": {"renewTime": now, "holderIdentity": m.node, "leaseDurationSeconds": duration}}
            if "ownerReferences" in lease["metadata"]:
                patch["metadata"] = {"ownerReferences": lease["metadata"]["ownerReferences"]}
            st, body = self.api.patch(path, patch)
            if st == 404:
                self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
        self.writer.submit("lease/" + m.node, fn)
        m.last_heartbeat = time.monotonic()
        if self.args.lease_duration_seconds > 0:
            self.loop.after(max(self.dl(self.args.lease_duration_seconds * 0.25), 0.2), self.renew_lease, m, gen)

    def status_heartbeat(self, m, gen):
        """With leases, the kubelet still posts its status every
        nodeStatusReportFrequency (5m) when nothing changed."""
        if not self.alive(m, gen):
            return
        self.post_status(m, m.kubelet)
        self.loop.after(self.dl(self.args.node_status_report_seconds), self.status_heartbeat, m, gen)

    def user_data_poweroff(self, m, gen):
        if not self.alive(m, gen):
            return
        self.tl_node(m, "user data powers the instance off")

        def fn():
            st, body = self.ec2("POST", "instances/%s/poweroff" % m.iid)
            if st != 200:
                log(NAME, "poweroff %s: %s %s" % (m.iid, st, body))
        threading.Thread(target=fn, daemon=True).start()

    def node_images(self, m):
        """node.status.images: the 50 largest images on the disk
        (setters.go Images, nodeStatusMaxImages)."""
        imgs = sorted(m.disk.items(), key=lambda kv: -kv[1])[:50]
        return [{"names": ["%s@%s" % (image_repo(ref), image_digest(ref)), ref], "sizeBytes": size}
                for ref, size in imgs]

    def images_changed(self, m):
        """The kubelet reports a new image list with its next status update
        (nodeStatusUpdateFrequency, 10s)."""
        k = m.kubelet
        if k is None or k.images_dirty:
            return
        k.images_dirty = True
        gen = m.gen
        self.loop.after(self.dl(self.args.node_status_update_seconds),
                        lambda: self.alive(m, gen) and k.images_dirty and self.post_status(m, k))

    # ---------------------------------------------------------------- image pulls

    def pull(self, m, ref, policy, on_done):
        """Pulls ref onto the machine's disk (serializeImagePulls: false on the
        EKS AMI, files/kubelet-config.json: pulls run in parallel and share the
        node's --pull-bandwidth). on_done(ok, reason) runs when the image is
        there. imagePullPolicy: IfNotPresent/Never use the disk; Always asks the
        registry (--pull-overhead-seconds) and transfers only what is missing."""
        k = m.kubelet
        full = normalize_image(ref)
        present = full in m.disk
        if policy == "Never":
            on_done(present, None if present else "ErrImageNeverPull")
            return
        if present and policy != "Always":
            on_done(True, None)
            return
        gen = m.gen
        if present:
            self.loop.after(self.dl(self.args.pull_overhead_seconds), lambda: self.alive(m, gen) and on_done(True, None))
            return
        p = k.pulls.get(full)
        if p is None:
            self.bandwidth_update(k)
            p = k.pulls[full] = Pull(full, self.images.size(full), time.monotonic())
            self.timeline.add("node", m.node, "pull started", image=full, bytes=p.size, instance=m.iid)
            self.loop.after(self.dl(self.args.pull_overhead_seconds), self.pull_transfer, m, gen, p)
        p.waiters.append(on_done)

    def pull_transfer(self, m, gen, p):
        if not self.alive(m, gen):
            return
        k = m.kubelet
        self.bandwidth_update(k)
        k.bandwidth_users.append(p)
        self.bandwidth_schedule(m, gen)

    def bandwidth_update(self, k):
        now = time.monotonic()
        n = len(k.bandwidth_users)
        rate = (self.bandwidth / self.ts.f) / n if n else 0
        for p in k.bandwidth_users:
            p.remaining -= (now - p.updated) * rate
            p.updated = now
        for p in list(k.pulls.values()):
            if p not in k.bandwidth_users:
                p.updated = now

    def bandwidth_schedule(self, m, gen):
        k = m.kubelet
        if not k.bandwidth_users:
            return
        rate = (self.bandwidth / self.ts.f) / len(k.bandwidth_users)
        first = min(k.bandwidth_users, key=lambda p: p.remaining)
        self.loop.after(max(0.0, first.remaining / rate), self.bandwidth_tick, m, gen)

    def bandwidth_tick(self, m, gen):
        if not self.alive(m, gen):
            return
        k = m.kubelet
        self.bandwidth_update(k)
        finished = [p for p in k.bandwidth_users if p.remaining <= 1.0]
        for p in finished:
            k.bandwidth_users.remove(p)
            del k.pulls[p.ref]
            m.disk[p.ref] = p.size
            self.timeline.add("node", m.node, "pull finished", image=p.ref, instance=m.iid)
            for w in p.waiters:
                w(True, None)
        if finished:
            self.images_changed(m)
        self.bandwidth_schedule(m, gen)

    # ---------------------------------------------------------------- pods (kubelet)

    def sync_pod(self, pod):
        """Called on every change of a pod bound to one of our nodes."""
        md = pod["metadata"]
        node = (pod.get("spec") or {}).get("nodeName")
        m = self.by_node.get(node)
        if m is None or m.kubelet is None or not m.kubelet.registered:
            return
        k = m.kubelet
        run = self.runs.get(md["uid"])
        if md.get("deletionTimestamp"):
            return
        phase = (pod.get("status") or {}).get("phase")
        if run is None:
            if phase in ("Succeeded", "Failed"):
                return
            run = self.runs[md["uid"]] = PodRun(pod, k)
            self.admit(m, k, run, pod)

    def admit(self, m, k, run, pod):
        """kubelet HandlePodAdditions -> canAdmitPod (pkg/kubelet/lifecycle/predicate.go):
        extended resources the node does not advertise are ignored (they belong to
        scheduler extenders: removeMissingExtendedResources); device-plugin
        resources before the plugin registered fail with UnexpectedAdmissionError;
        too little room fails with OutOf<resource>; a node selector/affinity
        mismatch with NodeAffinity."""
        node = self.nodes.get(m.node) or {}
        alloc = resource_vector((node.get("status") or {}).get("allocatable"))
        req = {r: v for r, v in pod_requests(pod).items() if not (is_extended(r) and r not in alloc)}
        prev_status = pod.get("status") or {}
        if GPU_RESOURCE in req and req[GPU_RESOURCE] > 0 and not k.device_ready:
            return self.reject(run, pod, "UnexpectedAdmissionError",
                               "Allocate failed due to no healthy devices present; cannot allocate unhealthy devices "
                               "%s, which is unexpected" % GPU_RESOURCE)
        used = {}
        count = 0
        for other in self.runs.values():
            if other is run or other.kubelet is not k or other.phase in ("Succeeded", "Failed") or other.done:
                continue
            op = self.pods.get(other.key)
            if op is None:
                continue
            count += 1
            for r, v in pod_requests(op).items():
                used[r] = used.get(r, 0) + v
        if count + 1 > alloc.get("pods", 110):
            return self.reject(run, pod, "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: %d, "
                                                      "capacity: %d" % (count, alloc.get("pods", 110)))
        for r, v in sorted(req.items()):
            if v > 0 and r in ("cpu", "memory", "ephemeral-storage") or (is_extended(r) and v > 0):
                if used.get(r, 0) + v > alloc.get(r, 0):
                    return self.reject(run, pod, "OutOf" + r,
                                       "Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d"
                                       % (r, v, used.get(r, 0), alloc.get(r, 0)))
        labels = (node.get("metadata") or {}).get("labels") or {}
        if not NodeMatcher(pod).match(labels, m.node):
            return self.reject(run, pod, "NodeAffinity", "Predicate NodeAffinity failed")
        # Admitted: status Pending with the containers waiting.
        spec = pod.get("spec") or {}
        run.start_time = prev_status.get("startTime") or rfc3339()
        for c in spec.get("initContainers") or []:
            run.init[c["name"]] = self.cstatus(c, {"waiting": {"reason": "PodInitializing"}}, run)
        for c in spec.get("containers") or []:
            reason = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
            run.containers[c["name"]] = self.cstatus(c, {"waiting": {"reason": reason}}, run)
        prev_restarts = {cs.get("name"): cs.get("restartCount", 0)
                         for cs in prev_status.get("containerStatuses") or []}
        had_run = {cs.get("name") for cs in prev_status.get("containerStatuses") or []
                   if (cs.get("state") or {}).get("running") or (cs.get("lastState") or {}).get("terminated")
                   or cs.get("started")}
        if had_run:
            # A pod whose containers ran before the machine stopped: they are gone.
            if spec.get("restartPolicy", "Always") == "Never":
                for name in run.containers:
                    run.containers[name]["state"] = {"terminated": {
                        "exitCode": 137, "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated"}}
                run.phase = "Failed"
                run.done = True
                self.write_pod_status(run, pod)
                return
            for name in run.containers:
                run.restarts[name] = prev_restarts.get(name, 0) + (1 if name in had_run else 0)
                run.containers[name]["restartCount"] = run.restarts[name]
        self.write_pod_status(run, pod)
        self.wait_for_network(m, k, run, pod)

    def reject(self, run, pod, reason, message):
        run.phase = "Failed"
        run.reason = reason
        run.message = "Pod was rejected: " + message
        run.done = True
        self.write_pod_status(run, pod)

    def wait_for_network(self, m, k, run, pod):
        """SyncPod stops at "network is not ready" until the runtime network is
        ready, except for host-network pods (pkg/kubelet/kubelet.go SyncPod,
        NetworkNotReadyErrorMsg); the pod worker retries after
        wait.Jitter(1s, 0.5) (pkg/kubelet/pod_workers.go
        backOffOnTransientErrorPeriod). Because that check comes before the
        pod's secrets and config maps are registered, its volume mounts (the
        projected service-account token every pod has) fail meanwhile and back
        off 0.5s, doubling, up to 2m2s, not reset when the network comes up
        (pkg/util/goroutinemap/exponentialbackoff)."""
        gen = k.gen
        host_net = bool((pod.get("spec") or {}).get("hostNetwork"))
        if host_net or k.network_ready:
            self.timeline.add("pod", run.key, "volumes mounted", node=m.node, attempt=1)
            self.loop.after(self.dl(self.args.sandbox_seconds), self.sandbox_ready, m, gen, run)
            return
        self.timeline.add("pod", run.key, "network not ready", node=m.node)
        run.mount_failures = [time.monotonic()]      # first attempt fails right away
        run.mount_backoff = 0.5
        run.registered_at = None
        self.loop.after(self.dl(1.0 + random.random() * 0.5), self.retry_sync, m, gen, run)

    def retry_sync(self, m, gen, run):
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        k = m.kubelet
        if not k.network_ready:
            self.loop.after(self.dl(1.0 + random.random() * 0.5), self.retry_sync, m, gen, run)
            return
        # The sync registers the pod's secrets/config maps; the volume manager's
        # reconciler (every 100ms) mounts at the end of the current backoff.
        now = time.monotonic()
        last, backoff = run.mount_failures[-1], run.mount_backoff
        while last + self.dl(backoff) < now:
            # attempts made meanwhile failed and grew the backoff
            last = last + self.dl(backoff)
            run.mount_failures.append(last)
            backoff = min(backoff * 2, 122.0)
        mount_at = last + self.dl(backoff)
        run.mount_backoff = backoff
        self.loop.at(mount_at, self.sandbox_after_mount, m, gen, run)

    def sandbox_after_mount(self, m, gen, run):
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        self.timeline.add("pod", run.key, "volumes mounted", node=m.node, attempt=len(run.mount_failures) + 1)
        self.loop.after(self.dl(self.args.sandbox_seconds), self.sandbox_ready, m, gen, run)

    def sandbox_ready(self, m, gen, run):
        """The pod sandbox exists and has its IP (from the VPC CNI: an address
        of the node's subnet; host-network pods use the node's)."""
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        pod = self.pods.get(run.key)
        if pod is None:
            return
        run.sandbox = True
        if (pod.get("spec") or {}).get("hostNetwork"):
            run.ip = m.info.get("private_ip_address")
        else:
            base = (m.info.get("private_ip_address") or "10.0.0.1").rsplit(".", 2)[0]
            h = int(hashlib.md5(run.uid.encode()).hexdigest()[:4], 16)
            run.ip = "%s.%d.%d" % (base, 128 + h % 127, 1 + (h >> 8) % 254)
        run.dirty = True
        self.flush_soon(run)
        self.next_init(m, gen, run, 0)

    def cstatus(self, c, state, run):
        return {"name": c["name"], "image": normalize_image(c.get("image") or ""), "imageID": "",
                "state": state, "lastState": {}, "ready": False, "restartCount": run.restarts.get(c["name"], 0),
                "started": False}

    def next_init(self, m, gen, run, i):
        """Init containers one after another (restartable "sidecar" init
        containers start and keep running), then the regular containers
        together (pkg/kubelet/kuberuntime computeInitContainerActions)."""
        pod = self.pods.get(run.key)
        if pod is None or not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        inits = (pod.get("spec") or {}).get("initContainers") or []
        if i >= len(inits):
            run.initialized = True
            for c in (pod.get("spec") or {}).get("containers") or []:
                self.start_container(m, gen, run, c, pod, init=False)
            run.dirty = True
            self.flush_soon(run)
            return
        c = inits[i]
        sidecar = c.get("restartPolicy") == "Always"

        def started():
            if sidecar:
                self.next_init(m, gen, run, i + 1)
                return
            secs = float((pod["metadata"].get("annotations") or {}).get(INIT_RUN_SECONDS_ANNOTATION, 0) or 0)
            self.loop.after(self.dl(secs), self.init_done, m, gen, run, i, c["name"])
        self.start_container(m, gen, run, c, pod, init=True, then=started)

    def init_done(self, m, gen, run, i, name):
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        st = run.init[name]
        started = ((st.get("state") or {}).get("running") or {}).get("startedAt")
        st["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                      "finishedAt": rfc3339(), "containerID": st.get("containerID")}}
        st["ready"] = False
        st["started"] = False
        run.dirty = True
        self.flush_soon(run)
        self.next_init(m, gen, run, i + 1)

    def start_container(self, m, gen, run, c, pod, init, then=None):
        table = run.init if init else run.containers
        policy = c.get("imagePullPolicy") or "IfNotPresent"

        def pulled(ok, reason):
            if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
                return
            if not ok:
                table[c["name"]]["state"] = {"waiting": {"reason": reason,
                                                         "message": 'Container image "%s" is not present with pull '
                                                                    'policy of Never' % c.get("image")}}
                run.dirty = True
                self.flush_soon(run)
                return
            self.loop.after(self.dl(self.args.container_start_seconds), self.container_running, m, gen, run, c,
                            init, then)
        self.pull(m, c.get("image") or "", policy, pulled)

    def container_running(self, m, gen, run, c, init, then):
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        pod = self.pods.get(run.key)
        if pod is None:
            return
        table = run.init if init else run.containers
        st = table[c["name"]]
        full = normalize_image(c.get("image") or "")
        st["image"] = full
        st["imageID"] = "%s@%s" % (image_repo(full), image_digest(full))
        st["containerID"] = "containerd://" + hashlib.sha256((run.uid + c["name"] + str(time.time())).encode()).hexdigest()
        st["state"] = {"running": {"startedAt": rfc3339()}}
        st["started"] = True
        # A container without a readiness probe is ready once it runs.
        st["ready"] = not c.get("readinessProbe")
        if c.get("readinessProbe"):
            delay = float(c["readinessProbe"].get("initialDelaySeconds", 0) or 0)
            self.loop.after(self.dl(delay), self.container_ready, m, gen, run, c["name"], init)
        run.dirty = True
        self.flush_soon(run)
        if not init:
            secs = (pod["metadata"].get("annotations") or {}).get(RUN_SECONDS_ANNOTATION)
            if secs is not None:
                try:
                    self.loop.after(self.dl(float(secs)), self.container_exit, m, gen, run, c, 0)
                except ValueError:
                    pass
        if then is not None:
            then()

    def container_ready(self, m, gen, run, name, init):
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        (run.init if init else run.containers)[name]["ready"] = True
        run.dirty = True
        self.flush_soon(run)

    def container_exit(self, m, gen, run, c, code):
        """The container's process ends (sim.stratos.sh/run-seconds). With
        restartPolicy Never/OnFailure (exit 0) it stays terminated and the pod
        ends Succeeded once every container has; with Always it is restarted
        after the crash-loop backoff (10s doubling to 5m, pkg/kubelet/kubelet.go
        MaxContainerBackOff)."""
        if not self.alive(m, gen) or self.runs.get(run.uid) is not run:
            return
        pod = self.pods.get(run.key)
        if pod is None:
            return
        st = run.containers[c["name"]]
        started = ((st.get("state") or {}).get("running") or {}).get("startedAt")
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": started,
                "finishedAt": rfc3339(), "containerID": st.get("containerID")}
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        st["ready"] = False
        st["started"] = False
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            n = run.restarts.get(c["name"], 0)
            backoff = min(10.0 * 2 ** n, 300.0)
            run.restarts[c["name"]] = n + 1
            st["lastState"] = {"terminated": term}
            st["restartCount"] = n + 1
            st["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": "back-off %ds restarting failed container=%s pod=%s"
                                                  % (backoff, c["name"], run.key)}}
            self.loop.after(self.dl(backoff), self.container_running, m, gen, run, c, False, None)
        else:
            st["state"] = {"terminated": term}
            if all("terminated" in (s.get("state") or {}) for s in run.containers.values()):
                codes = [s["state"]["terminated"]["exitCode"] for s in run.containers.values()]
                run.phase = "Succeeded" if all(x == 0 for x in codes) else "Failed"
                run.done = True
        run.dirty = True
        self.flush_soon(run)

    def flush_soon(self, run):
        if getattr(run, "flush_queued", False):
            return
        run.flush_queued = True
        self.loop.post(self.flush, run)

    def flush(self, run):
        run.flush_queued = False
        if not run.dirty or self.runs.get(run.uid) is not run:
            return
        run.dirty = False
        pod = self.pods.get(run.key)
        if pod is not None:
            self.write_pod_status(run, pod)

    def write_pod_status(self, run, pod):
        """The status manager's patch of pods/status (pkg/kubelet/status):
        phase, conditions (PodReadyToStartContainers, Initialized,
        ContainersReady, Ready; PodScheduled is the scheduler's), IPs, start
        time and container statuses."""
        spec = pod.get("spec") or {}
        now = rfc3339()
        old = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        conts = list(run.containers.values())
        if not run.done:
            running = [s for s in conts if "running" in (s.get("state") or {})]
            if run.initialized and running and len(running) + sum(
                    1 for s in conts if "terminated" in (s.get("state") or {})) == len(conts):
                run.phase = "Running"
        all_ready = bool(conts) and all(s.get("ready") for s in conts) and run.phase == "Running"

        def cond(ctype, ok, reason=None):
            # reason/message null when absent: the status manager's patch is a
            # two-way merge that removes them (conditions merge by type).
            c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
                 "lastTransitionTime": now, "reason": reason if reason and not ok else None, "message": None}
            p = old.get(ctype)
            if p and p.get("status") == c["status"] and p.get("lastTransitionTime"):
                c["lastTransitionTime"] = p["lastTransitionTime"]
            return c
        not_ready = "PodCompleted" if run.phase in ("Succeeded", "Failed") and run.done else "ContainersNotReady"
        conds = [cond("PodReadyToStartContainers", run.sandbox and run.phase != "Failed"),
                 cond("Initialized", run.initialized or not spec.get("initContainers"),
                      "ContainersNotInitialized"),
                 cond("Ready", all_ready, not_ready), cond("ContainersReady", all_ready, not_ready)]
        if run.reason and run.phase == "Failed" and not run.sandbox:
            conds = []
        status = {"phase": run.phase, "conditions": conds,
                  "hostIP": self.node_ip(spec.get("nodeName")),
                  "hostIPs": [{"ip": self.node_ip(spec.get("nodeName"))}],
                  "startTime": getattr(run, "start_time", None) or now,
                  "qosClass": (pod.get("status") or {}).get("qosClass")}
        if run.reason:
            status["reason"] = run.reason
            status["message"] = run.message
        if run.ip:
            status["podIP"] = run.ip
            status["podIPs"] = [{"ip": run.ip}]
        if run.init:
            status["initContainerStatuses"] = list(run.init.values())
        if run.containers and not (run.reason and not run.sandbox):
            status["containerStatuses"] = conts
        self.write("pod/" + run.key, "PATCH", "/api/v1/namespaces/%s/pods/%s/status" % tuple(run.key.split("/", 1)),
                   {"status": status}, "application/strategic-merge-patch+json")

    def node_ip(self, name):
        m = self.by_node.get(name)
        return (m.info.get("private_ip_address") if m else None) or ""

    # ---------------------------------------------------------------- watch events

    def on_node(self, t, node, old):
        if t == "SYNCED":
            self.synced.add("nodes")
            return
        name = node["metadata"]["name"]
        if t == "DELETED":
            self.nodes.pop(name, None)
            for key in list(self.pods_by_node.get(name, ())):
                self.pod_gc_check(key)
        else:
            self.nodes[name] = node
            if self.ours(name):
                self.noschedule_taint_pass(node)
                self.eviction_check_node(node)
        if old is None or t == "DELETED" or self.ds_relevant(node, old):
            self.ds_all_dirty()

    def on_pod(self, t, pod, old):
        if t == "SYNCED":
            self.synced.add("pods")
            return
        md = pod["metadata"]
        key = "%s/%s" % (md["namespace"], md["name"])
        prev_node = ((old or {}).get("spec") or {}).get("nodeName")
        node = (pod.get("spec") or {}).get("nodeName")
        if prev_node and prev_node != node:
            self.pods_by_node[prev_node].discard(key)
        if t == "DELETED":
            self.pods.pop(key, None)
            if node:
                self.pods_by_node[node].discard(key)
            self.runs.pop(md.get("uid"), None)
            self.evictions.pop(md.get("uid"), None)
            self.gc_due.pop(key, None)
        else:
            prev = self.pods.get(key)
            if prev is not None and prev["metadata"].get("uid") != md.get("uid"):
                self.runs.pop(prev["metadata"].get("uid"), None)
            self.pods[key] = pod
            if node:
                self.pods_by_node[node].add(key)
                if node in self.by_node:
                    self.sync_pod(pod)
                    self.eviction_check_pod(pod)
                self.pod_gc_check(key)
        owner = self.ds_owner(pod)
        if owner:
            if t == "DELETED":
                self.ds_pods[owner].discard(key)
            else:
                self.ds_pods[owner].add(key)
            self.ds_dirty.add(owner)
            self.ds_schedule()

    def on_ds(self, t, ds, old):
        if t == "SYNCED":
            self.synced.add("daemonsets")
            return
        key = "%s/%s" % (ds["metadata"]["namespace"], ds["metadata"]["name"])
        if t == "DELETED":
            self.dss.pop(key, None)
            return
        self.dss[key] = ds
        self.ds_dirty.add(ds["metadata"]["uid"])
        self.ds_schedule()

    def ours(self, name):
        m = self.by_node.get(name)
        return m is not None or self.args.manage_all_nodes

    # ---------------------------------------------------------------- node lifecycle controller

    def noschedule_taint_pass(self, node):
        """doNoScheduleTaintingPass (pkg/controller/nodelifecycle): on every
        Node change, the NoSchedule taints match the conditions
        (nodeConditionToTaintKeyStatusMap) and spec.unschedulable; applied at
        once (an API round trip), not on the 5 s pass."""
        want = set()
        for c in (node.get("status") or {}).get("conditions") or []:
            key = CONDITION_TAINTS.get(c.get("type"), {}).get(c.get("status"))
            if key:
                want.add(key)
        if (node.get("spec") or {}).get("unschedulable"):
            want.add(TAINT_UNSCHEDULABLE)
        have = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []
                if t.get("effect") == "NoSchedule" and t.get("key") in CONTROLLER_NOSCHEDULE_KEYS}
        if want == have:
            return

        def mutate(taints):
            keep = [t for t in taints if not (t.get("effect") == "NoSchedule" and t.get("key") in CONTROLLER_NOSCHEDULE_KEYS
                                              and t.get("key") not in want)]
            present = {t.get("key") for t in keep if t.get("effect") == "NoSchedule"}
            for key in sorted(want - present):
                keep.append({"key": key, "effect": "NoSchedule"})
            return keep
        self.node_taints(node["metadata"]["name"], mutate, "NoSchedule pass")

    def monitor_nodes(self):
        """monitorNodeHealth, every --node-monitor-period (5s): a node whose
        kubelet has not renewed its lease for --node-monitor-grace-period
        (50s; nodeStartupGracePeriod 60s for a node never Ready) gets its
        kubelet conditions set to Unknown and its pods marked not ready
        (controllerutil.MarkPodsNotReady); NoExecute taints follow the Ready
        condition through the zone's rate-limited queue
        (processTaintBaseEviction); zone disruption states gate them
        (handleDisruption)."""
        self.loop.after(self.dl(self.args.node_monitor_period), self.monitor_nodes)
        now = time.monotonic()
        zones = collections.defaultdict(list)
        for name, node in list(self.nodes.items()):
            if not self.ours(name):
                continue
            m = self.by_node.get(name)
            ready = self.cond_status(node, "Ready")
            if m is not None and m.kubelet is None and ready != "Unknown" and m.last_heartbeat is not None:
                grace = self.args.node_monitor_grace_seconds if m.ever_ready else self.args.node_startup_grace_seconds
                if now - m.last_heartbeat > self.dl(grace):
                    self.mark_unknown(node)
                    ready = "Unknown"
            elif m is not None and m.kubelet is None and m.last_heartbeat is None and ready not in ("Unknown", None):
                # known from before kubeletsim started, not running now
                m.last_heartbeat = now
            zones[self.zone_key(node)].append((name, ready))
            self.process_taint_eviction(node, ready)
        self.handle_disruption(zones)

    @staticmethod
    def cond_status(node, ctype):
        for c in (node.get("status") or {}).get("conditions") or []:
            if c.get("type") == ctype:
                return c.get("status")
        return None

    @staticmethod
    def zone_key(node):
        """nodetopology.GetZoneKey: region + zone labels."""
        lab = (node.get("metadata") or {}).get("labels") or {}
        region = lab.get("topology.kubernetes.io/region", lab.get("failure-domain.beta.kubernetes.io/region", ""))
        zone = lab.get("topology.kubernetes.io/zone", lab.get("failure-domain.beta.kubernetes.io/zone", ""))
        return region + ":\x00:" + zone if (region or zone) else ""

    def mark_unknown(self, node):
        name = node["metadata"]["name"]
        now = rfc3339()
        conds = []
        for c in (node.get("status") or {}).get("conditions") or []:
            if c.get("type") in KUBELET_CONDITIONS and c.get("status") != "Unknown":
                c = dict(c, status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                         lastTransitionTime=now)
                conds.append(c)
        if conds:
            self.write("node/" + name, "PATCH", "/api/v1/nodes/%s/status" % name, {"status": {"conditions": conds}},
                       "application/strategic-merge-patch+json")
            # Optimistic local view until the watch confirms it.
            node = json.loads(json.dumps(node))
            byt = {c["type"]: c for c in conds}
            node["status"]["conditions"] = [byt.get(c.get("type"), c) for c in node["status"]["conditions"]]
            self.nodes[name] = node
            self.mark_pods_not_ready(name)

    def mark_pods_not_ready(self, node_name):
        """controllerutil.MarkPodsNotReady: the Ready condition of every pod on
        the node goes False (the phase stays)."""
        now = rfc3339()
        for key in list(self.pods_by_node.get(node_name, ())):
            pod = self.pods.get(key)
            if pod is None:
                continue
            for c in (pod.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready" and c.get("status") != "False":
                    ns, n = key.split("/", 1)
                    self.write("pod/" + key, "PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, n),
                               {"status": {"conditions": [{"type": "Ready", "status": "False", "lastProbeTime": None,
                                                           "lastTransitionTime": now}]}},
                               "application/strategic-merge-patch+json")

    def process_taint_eviction(self, node, ready):
        name = node["metadata"]["name"]
        taints = (node.get("spec") or {}).get("taints") or []
        has = {t.get("key") for t in taints if t.get("effect") == "NoExecute"}
        zone = self.zone_key(node)
        if ready == "True":
            # markNodeAsReachable: NoExecute taints go on this pass.
            self.zone_queue[zone].pop(name, None)
            if has & {TAINT_NOT_READY, TAINT_UNREACHABLE}:
                self.node_taints(name, lambda ts: [t for t in ts if not (
                    t.get("effect") == "NoExecute" and t.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE))],
                    "reachable")
            return
        if ready not in ("False", "Unknown"):
            return
        want = TAINT_NOT_READY if ready == "False" else TAINT_UNREACHABLE
        other = TAINT_UNREACHABLE if ready == "False" else TAINT_NOT_READY
        if other in has:
            # SwapNodeControllerTaint at once.
            self.node_taints(name, lambda ts, w=want, o=other: self.swap_taint(ts, w, o), "swap")
        elif want not in has:
            self.zone_queue[zone].setdefault(name, None)

    @staticmethod
    def swap_taint(ts, want, other):
        out = [t for t in ts if not (t.get("effect") == "NoExecute" and t.get("key") == other)]
        if not any(t.get("effect") == "NoExecute" and t.get("key") == want for t in out):
            out.append({"key": want, "effect": "NoExecute", "timeAdded": rfc3339()})
        return out

    def handle_disruption(self, zones):
        """handleDisruption / ComputeZoneState: a zone with no Ready node is in
        full disruption, one with more than 2 and >= --unhealthy-zone-threshold
        not Ready in partial disruption. When every zone is fully disrupted the
        controller assumes its own connectivity is broken: it stops tainting and
        removes the NoExecute taints (markNodeAsReachable). Partial disruption
        slows tainting to --secondary-node-eviction-rate in zones larger than
        --large-cluster-size-threshold and stops it in smaller ones."""
        states = {}
        for z, items in zones.items():
            ready = sum(1 for _, r in items if r == "True")
            notready = len(items) - ready
            if ready == 0 and notready > 0:
                states[z] = "full"
            elif notready > 2 and notready / float(len(items)) >= self.args.unhealthy_zone_threshold:
                states[z] = "partial"
            else:
                states[z] = "normal"
        all_full = bool(states) and all(s == "full" for s in states.values())
        was_full = bool(self.zone_state) and all(s == "full" for s in self.zone_state.values())
        if all_full and not was_full:
            for z, items in zones.items():
                self.zone_queue[z].clear()
                for name, _ in items:
                    node = self.nodes.get(name)
                    if node and any(t.get("effect") == "NoExecute" and t.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE)
                                    for t in (node.get("spec") or {}).get("taints") or []):
                        self.node_taints(name, lambda ts: [t for t in ts if not (
                            t.get("effect") == "NoExecute" and t.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE))],
                            "full disruption")
        self.zone_state = states
        self.zone_sizes = {z: len(items) for z, items in zones.items()}

    def zone_rate(self, zone):
        st = self.zone_state.get(zone, "normal")
        if all(s == "full" for s in self.zone_state.values()) and self.zone_state:
            return 0.0
        if st == "partial":
            return self.args.secondary_node_eviction_rate if self.zone_sizes.get(zone, 0) > \
                self.args.large_cluster_size_threshold else 0.0
        return self.args.node_eviction_rate

    def taint_queue_pass(self):
        """doNoExecuteTaintingPass, every 100ms: each zone's queue is drained
        through a token bucket of the zone's rate (burst 1)."""
        self.loop.after(max(self.dl(0.1), 0.02), self.taint_queue_pass)
        now = time.monotonic()
        for zone, q in self.zone_queue.items():
            if not q:
                continue
            rate = self.zone_rate(zone) / self.ts.f
            if rate <= 0:
                # SwapLimiter(0): flowcontrol.NewFakeNeverRateLimiter
                self.zone_tokens.pop(zone, None)
                continue
            # A limiter swapped in for a new rate is a fresh token bucket (burst 1, full).
            tokens, last, was = self.zone_tokens.get(zone, (1.0, now, rate))
            if was != rate:
                tokens, last = 1.0, now
            tokens = min(1.0, tokens + (now - last) * rate)
            while q and tokens >= 1.0:
                name, _ = q.popitem(last=False)
                node = self.nodes.get(name)
                if node is None:
                    continue
                ready = self.cond_status(node, "Ready")
                if ready == "True" or ready is None:
                    continue        # "Node was in a taint queue, but it's ready now"
                want = TAINT_NOT_READY if ready == "False" else TAINT_UNREACHABLE
                other = TAINT_UNREACHABLE if ready == "False" else TAINT_NOT_READY
                self.node_taints(name, lambda ts, w=want, o=other: self.swap_taint(ts, w, o), "NoExecute")
                tokens -= 1.0
            self.zone_tokens[zone] = (tokens, now, rate)

    # ---------------------------------------------------------------- cloud controller manager

    def ccm_initialize(self, name):
        """The cloud node controller initializes a new Node and removes
        node.cloudprovider.kubernetes.io/uninitialized
        (k8s.io/cloud-provider/controllers/node/node_controller.go)."""
        self.node_taints(name, lambda ts: [t for t in ts if t.get("key") != TAINT_UNINITIALIZED], "initialized")

    def cloud_monitor(self):
        """The cloud node lifecycle controller, every 5s
        (k8s.io/cloud-provider/controllers/nodelifecycle MonitorNodes): Ready
        nodes lose node.cloudprovider.kubernetes.io/shutdown; a node not Ready
        whose instance is stopped gets it (aws InstanceShutdownByProviderID:
        state "stopped"); one whose instance is terminated or gone is deleted
        (InstanceExistsByProviderID)."""
        self.loop.after(self.dl(self.args.node_monitor_period), self.cloud_monitor)
        if "ec2" not in self.synced:
            return
        for name, node in list(self.nodes.items()):
            m = self.by_node.get(name)
            if m is None:
                continue
            ready = self.cond_status(node, "Ready")
            has = any(t.get("key") == TAINT_SHUTDOWN for t in (node.get("spec") or {}).get("taints") or [])
            if ready == "True":
                if has:
                    self.node_taints(name, lambda ts: [t for t in ts if t.get("key") != TAINT_SHUTDOWN], "running")
                continue
            if m.terminated or m.state in ("terminated", None):
                self.tl_node(m, "cloud controller deletes the Node")
                self.write("node/" + name, "DELETE", "/api/v1/nodes/%s" % name)
                continue
            if m.state == "stopped" and not has:
                self.node_taints(name, lambda ts: ts + [{"key": TAINT_SHUTDOWN, "effect": "NoSchedule"}]
                                 if not any(t.get("key") == TAINT_SHUTDOWN for t in ts) else ts, "shutdown")

    # ---------------------------------------------------------------- taint eviction, pod GC

    def eviction_check_node(self, node):
        for key in list(self.pods_by_node.get(node["metadata"]["name"], ())):
            pod = self.pods.get(key)
            if pod is not None:
                self.eviction_check_pod(pod)

    def eviction_check_pod(self, pod):
        """The taint eviction controller (pkg/controller/tainteviction): a pod
        on a node with NoExecute taints it does not tolerate is deleted at once;
        one that tolerates them for tolerationSeconds is deleted that long after
        the taint was added (the smallest of its matching tolerations)."""
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            return
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        uid = md["uid"]
        if not taints:
            self.evictions.pop(uid, None)
            return
        tols = (pod.get("spec") or {}).get("tolerations") or []
        due = None
        for t in taints:
            match = [tol for tol in tols if tolerates(tol, t)]
            if not match:
                due = 0.0
                break
            secs = [float(tol["tolerationSeconds"]) for tol in match if tol.get("tolerationSeconds") is not None]
            if len(secs) == len(match) and secs:
                added = parse_time(t.get("timeAdded")) or time.time()
                d = added + min(secs) - time.time()
                due = d if due is None else min(due, d)
        if due is None:
            self.evictions.pop(uid, None)
            return
        token = object()
        key = "%s/%s" % (md["namespace"], md["name"])
        self.evictions[uid] = token
        self.loop.after(max(0.0, self.dl(due) if due > 0 else 0.0), self.evict, key, uid, token)

    def evict(self, key, uid, token):
        if self.evictions.get(uid) is not token:
            return
        del self.evictions[uid]
        pod = self.pods.get(key)
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        ns, n = key.split("/", 1)
        self.timeline.add("pod", key, "deleted by the taint eviction controller")
        self.write("pod/" + key, "DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, n),
                   {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}})

    def pod_gc_check(self, key):
        """The pod garbage collector deletes pods bound to a Node that no
        longer exists, after a 40s quarantine (pkg/controller/podgc
        gcOrphaned, quarantineTime). Only for nodes of emulated instances."""
        pod = self.pods.get(key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node in self.nodes or node not in self.by_node or "nodes" not in self.synced:
            self.gc_due.pop(key, None)
            return
        if key in self.gc_due:
            return
        token = object()
        self.gc_due[key] = token
        self.loop.after(self.dl(self.args.pod_gc_quarantine_seconds), self.pod_gc, key, token)

    def pod_gc(self, key, token):
        if self.gc_due.get(key) is not token:
            return
        del self.gc_due[key]
        pod = self.pods.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") in self.nodes:
            return
        ns, n = key.split("/", 1)
        self.write("pod/" + key, "DELETE", "/api/v1/namespaces/%s/pods/%s" % (ns, n),
                   {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})

    # ---------------------------------------------------------------- DaemonSet controller

    @staticmethod
    def ds_owner(pod):
        for r in (pod.get("metadata") or {}).get("ownerReferences") or []:
            if r.get("kind") == "DaemonSet" and r.get("controller"):
                return r.get("uid")
        return None

    @staticmethod
    def ds_relevant(node, old):
        """Node changes that matter to the DaemonSet controller: labels, taints,
        Ready (pkg/controller/daemon: shouldIgnoreNodeUpdate ignores the rest)."""
        for f in (lambda n: (n.get("metadata") or {}).get("labels"), lambda n: (n.get("spec") or {}).get("taints")):
            if f(node) != f(old):
                return True
        return False

    def ds_all_dirty(self):
        for ds in self.dss.values():
            self.ds_dirty.add(ds["metadata"]["uid"])
        self.ds_schedule()

    def ds_schedule(self):
        if not self.ds_scheduled and self.ds_dirty:
            self.ds_scheduled = True
            self.loop.after(0.05, self.ds_sync_dirty)

    def ds_sync_dirty(self):
        self.ds_scheduled = False
        dirty, self.ds_dirty = self.ds_dirty, set()
        if not {"nodes", "pods", "daemonsets"} <= self.synced:
            self.ds_dirty = dirty
            self.loop.after(0.2, self.ds_sync_dirty)
            self.ds_scheduled = True
            return
        by_uid = {ds["metadata"]["uid"]: ds for ds in self.dss.values()}
        for uid in dirty:
            ds = by_uid.get(uid)
            if ds is not None:
                self.ds_sync(ds)

    @staticmethod
    def daemon_tolerations(spec):
        """util.AddOrUpdateDaemonPodTolerations (pkg/controller/daemon/util/daemonset_util.go):
        not-ready and unreachable NoExecute forever; disk-pressure, memory-pressure,
        pid-pressure, unschedulable NoSchedule; network-unavailable NoSchedule for
        host-network pods."""
        tols = [dict(t) for t in spec.get("tolerations") or []]
        adds = [(TAINT_NOT_READY, "NoExecute"), (TAINT_UNREACHABLE, "NoExecute"), (TAINT_DISK_PRESSURE, "NoSchedule"),
                (TAINT_MEMORY_PRESSURE, "NoSchedule"), (TAINT_PID_PRESSURE, "NoSchedule"),
                (TAINT_UNSCHEDULABLE, "NoSchedule")]
        if spec.get("hostNetwork"):
            adds.append((TAINT_NETWORK_UNAVAILABLE, "NoSchedule"))
        for key, eff in adds:
            # AddOrUpdateTolerationInPodSpec: replace a toleration with the same key and effect
            new = {"key": key, "operator": "Exists", "effect": eff}
            tols = [t for t in tols if not (t.get("key") == key and t.get("effect") == eff)] + [new]
        return tols

    def should_run(self, ds, node):
        """NodeShouldRunDaemonPod (pkg/controller/daemon/daemon_controller.go):
        (shouldRun, shouldContinueRunning) from the template's nodeName, node
        affinity/selector and the node's NoSchedule/NoExecute taints (only
        NoExecute ones for pods already there)."""
        tspec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        name = node["metadata"]["name"]
        if tspec.get("nodeName") and tspec["nodeName"] != name:
            return False, False
        labels = node["metadata"].get("labels") or {}
        if not NodeMatcher({"spec": tspec}).match(labels, name):
            return False, False
        tols = self.daemon_tolerations(tspec)
        taints = (node.get("spec") or {}).get("taints") or []
        if untolerated_taint(taints, tols) is not None:
            return False, untolerated_taint(taints, tols, ("NoExecute",)) is None
        return True, True

    @staticmethod
    def ds_target_node(pod):
        """util.GetTargetNodeName: spec.nodeName, else the matchFields term."""
        spec = pod.get("spec") or {}
        if spec.get("nodeName"):
            return spec["nodeName"]
        req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
               .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
        for term in req.get("nodeSelectorTerms") or []:
            for f in term.get("matchFields") or []:
                if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                    return f["values"][0]
        return None

    def ds_sync(self, ds):
        """syncDaemonSet/manage: a pod on each node that should run one, none on
        the others; failed pods are deleted (and replaced on the next sync);
        then the status counts."""
        uid = ds["metadata"]["uid"]
        ns = ds["metadata"]["namespace"]
        pods_by_node = collections.defaultdict(list)
        for key in list(self.ds_pods.get(uid, ())):
            pod = self.pods.get(key)
            if pod is None:
                self.ds_pods[uid].discard(key)
                continue
            tn = self.ds_target_node(pod)
            if tn:
                pods_by_node[tn].append(pod)
        now = time.monotonic()
        desired = current = misscheduled = ready = 0
        for name, node in self.nodes.items():
            run, cont = self.should_run(ds, node)
            pods = [p for p in pods_by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
            if pods:
                self.ds_pending.pop((uid, name), None)
            if run:
                desired += 1
            if pods and run:
                current += 1
            if pods and not run:
                misscheduled += 1
            for p in pods:
                if (p.get("status") or {}).get("phase") == "Failed":
                    self.ds_delete_pod(p)
            live = [p for p in pods if (p.get("status") or {}).get("phase") != "Failed"]
            if run and any(self.cond_status(p, "Ready") == "True" for p in live):
                ready += 1
            if run and not live:
                if self.ds_pending.get((uid, name), 0) < now:
                    self.ds_pending[(uid, name)] = now + 30
                    self.ds_create_pod(ds, name)
            elif not cont and pods:
                for p in pods:
                    self.ds_delete_pod(p)
            elif len(live) > 1:
                for p in sorted(live, key=lambda p: p["metadata"].get("creationTimestamp") or "")[1:]:
                    self.ds_delete_pod(p)
        status = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                  "desiredNumberScheduled": desired, "numberReady": ready, "numberAvailable": ready,
                  "updatedNumberScheduled": current, "numberUnavailable": max(0, desired - ready),
                  "observedGeneration": ds["metadata"].get("generation", 1)}
        cur = {k: v for k, v in (ds.get("status") or {}).items() if k in status}
        if not status.get("numberUnavailable"):
            status.pop("numberUnavailable")
        if {k: v for k, v in cur.items() if v} != {k: v for k, v in status.items() if v}:
            self.write("ds/%s/%s" % (ns, ds["metadata"]["name"]), "PATCH",
                       "/apis/apps/v1/namespaces/%s/daemonsets/%s/status" % (ns, ds["metadata"]["name"]),
                       {"status": status}, "application/merge-patch+json")

    def ds_create_pod(self, ds, node_name):
        """controller.CreatePods with util.CreatePodTemplate: the template plus
        the daemon tolerations, pod-template-generation and
        controller-revision-hash labels, the DaemonSet as controlling owner, and
        a required node affinity replaced by metadata.name In [node]
        (ReplaceDaemonSetPodNodeNameNodeAffinity): the scheduler binds it."""
        tmpl = json.loads(json.dumps(((ds.get("spec") or {}).get("template")) or {}))
        md = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        gen = ds["metadata"].get("generation", 1)
        chash = hashlib.sha256(json.dumps(ds["spec"].get("template"), sort_keys=True).encode()).hexdigest()[:10]
        labels = dict(md.get("labels") or {}, **{"pod-template-generation": str(gen),
                                                 "controller-revision-hash": chash})
        spec["tolerations"] = self.daemon_tolerations(spec)
        aff = spec.setdefault("affinity", {})
        na = aff.setdefault("nodeAffinity", {})
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
        ns = ds["metadata"]["namespace"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": ds["metadata"]["name"] + "-", "namespace": ns, "labels": labels,
                            "annotations": md.get("annotations") or {},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                                 "name": ds["metadata"]["name"], "uid": ds["metadata"]["uid"],
                                                 "controller": True, "blockOwnerDeletion": True}]},
               "spec": spec}
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        self.counters["daemon pods created"] += 1
        self.write("ds/%s/%s" % (ns, ds["metadata"]["name"]), "POST", "/api/v1/namespaces/%s/pods" % ns, pod)

    def ds_delete_pod(self, pod):
        key = "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if pod["metadata"].get("deletionTimestamp"):
            return
        self.write("pod/" + key, "DELETE", "/api/v1/namespaces/%s/pods/%s" % tuple(key.split("/", 1)))

    # ---------------------------------------------------------------- control API

    def call(self, fn, timeout=10):
        """Runs fn on the loop thread and returns its result."""
        box, ev = [], threading.Event()

        def run():
            try:
                box.append((True, fn()))
            except Exception as e:
                box.append((False, e))
            ev.set()
        self.loop.post(run)
        if not ev.wait(timeout):
            raise TimeoutError("loop busy")
        ok, v = box[0]
        if not ok:
            raise v
        return v

    def control(self, method, path, body):
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["_sim"]:
            return 200, {"kubeletsim": True, "control": "/_sim/"}
        parts = parts[1:]
        if parts == ["health"]:
            return 200, self.call(lambda: {"ok": True, "synced": sorted(self.synced), "machines": len(self.machines),
                                           "time_scale": self.ts.f, "writes_idle": self.writer.idle()})
        if parts == ["machines"]:
            return 200, self.call(lambda: {"machines": [m.public() for m in self.machines.values()]})
        if len(parts) == 2 and parts[0] == "machines":
            r = self.call(lambda: self.machines.get(parts[1]) and self.machines[parts[1]].public())
            return (200, r) if r else (404, {"error": "no such instance"})
        if parts == ["config"]:
            keys = ("boot_seconds", "ready_seconds", "cni_seconds", "device_plugin_seconds", "sandbox_seconds",
                    "container_start_seconds", "pull_overhead_seconds", "kubelet_healthz_seconds",
                    "node_monitor_grace_seconds", "node_startup_grace_seconds", "node_eviction_rate",
                    "pod_gc_quarantine_seconds")
            if method == "POST":
                for k, v in (body or {}).items():
                    if k not in keys:
                        return 400, {"error": "unknown setting %r (known: %s)" % (k, ", ".join(keys))}
                    setattr(self.args, k, float(v))
            return 200, {k: getattr(self.args, k) for k in keys}
        if parts == ["images"]:
            if method == "POST":
                for ref, size in ((body or {}).get("sizes") or {}).items():
                    self.images.sizes[ref] = q_value(size)
                if (body or {}).get("default") is not None:
                    self.images.default = q_value(body["default"])
                if (body or {}).get("bandwidth") is not None:
                    self.bandwidth = q_value(body["bandwidth"])
            return 200, {"default": self.images.default, "bandwidth": self.bandwidth,
                         "sizes": dict(sorted(self.images.sizes.items()))}
        if parts == ["counters"]:
            return 200, dict(self.counters, **{"api " + k: v for k, v in self.api.counts.items()})
        return 404, {"error": "no such control endpoint %s" % path}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, method):
        try:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            st, doc = self.server.sim.control(method, self.path.split("?")[0], body)
        except Exception as e:
            st, doc = 500, {"error": str(e)}
        data = json.dumps(doc, indent=1).encode()
        self.send_response(st)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply("GET")

    def do_POST(self):
        self.reply("POST")


def main(argv=None):
    p = argparse.ArgumentParser(description="Kubelet simulator for the emulated EC2 instances (see tests/sim/README.md).")
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every simulated delay by F")
    p.add_argument("--ec2sim-control", default=None, help="ec2sim control URL (default from DIR/ec2sim.env)")
    p.add_argument("--ec2sim-ca", default=None)
    d = p.add_argument_group("delays (simulated seconds)")
    d.add_argument("--boot-seconds", type=float, default=8.0,
                   help="instance running -> kubelet starts (OS boot, containerd, bootstrap.sh)")
    d.add_argument("--ready-seconds", type=float, default=3.0,
                   help="kubelet start -> runtime network ready and Ready True (pods may start)")
    d.add_argument("--cni-seconds", type=float, default=2.0,
                   help="Ready -> NetworkUnavailable False (the CNI agent's report, first boot)")
    d.add_argument("--device-plugin-seconds", type=float, default=5.0,
                   help="kubelet start -> the GPU device plugin registered")
    d.add_argument("--kubelet-healthz-seconds", type=float, default=1.0,
                   help="kubelet start -> localhost:10248/healthz answers (user data waiting for it)")
    d.add_argument("--sandbox-seconds", type=float, default=0.5, help="pod sandbox and IP")
    d.add_argument("--container-start-seconds", type=float, default=0.3, help="image present -> container running")
    d.add_argument("--pull-overhead-seconds", type=float, default=0.5, help="registry round trips of a pull")
    d.add_argument("--pull-bandwidth", default="100Mi", help="bytes per second a node pulls, shared by parallel pulls")
    d.add_argument("--default-image-size", default="100Mi")
    d.add_argument("--image-size", action="append", metavar="IMAGE=SIZE", help="repeatable, e.g. my/llama:70b=40Gi")
    d.add_argument("--node-status-update-seconds", type=float, default=10.0)
    d.add_argument("--node-status-report-seconds", type=float, default=300.0)
    d.add_argument("--lease-duration-seconds", type=float, default=40.0,
                   help="node lease duration; renewed every quarter of it")
    c = p.add_argument_group("control plane")
    c.add_argument("--node-monitor-period", type=float, default=5.0)
    c.add_argument("--node-monitor-grace-seconds", type=float, default=50.0)
    c.add_argument("--node-startup-grace-seconds", type=float, default=60.0)
    c.add_argument("--node-eviction-rate", type=float, default=0.1)
    c.add_argument("--secondary-node-eviction-rate", type=float, default=0.01)
    c.add_argument("--large-cluster-size-threshold", type=int, default=50)
    c.add_argument("--unhealthy-zone-threshold", type=float, default=0.55)
    c.add_argument("--pod-gc-quarantine-seconds", type=float, default=40.0)
    c.add_argument("--ccm-init-seconds", type=float, default=0.5)
    c.add_argument("--no-external-cloud-provider", dest="external_cloud_provider", action="store_false",
                   help="no node.cloudprovider.kubernetes.io/uninitialized taint on new nodes")
    c.add_argument("--manage-all-nodes", action="store_true",
                   help="run the node lifecycle controller on Nodes of no emulated instance too")
    p.add_argument("--kubelet-version", default="v1.32.3-eks-473151a")
    p.add_argument("--writers", type=int, default=4)
    args = p.parse_args(argv)
    if args.time_scale <= 0:
        p.error("--time-scale must be > 0")
    try:
        for s in args.image_size or []:
            ref, size = s.split("=", 1)
            quantity(size)
        quantity(args.pull_bandwidth)
        quantity(args.default_image_size)
    except ValueError as e:
        p.error(str(e))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    sim = KubeletSim(args)
    sim.start()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.sim = sim
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    write_atomic(os.path.join(args.dir, NAME + ".port"), "%d\n" % srv.server_address[1])
    log(NAME, "serving 127.0.0.1:%d (time scale %g)" % (srv.server_address[1], args.time_scale))
    while not stop.wait(0.5):
        pass
    sim.stop.set()
    sim.timeline.flush(1.0)
    srv.shutdown()
    log(NAME, "stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
