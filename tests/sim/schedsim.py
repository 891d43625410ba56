#!/usr/bin/env python3
"""Scheduler simulator: kube-scheduler as a KubeSchedulerConfiguration
(kubescheduler.config.k8s.io/v1) configures it.

    python3 tests/sim/schedsim.py --dir DIR [--scheduler-config FILE ...]
        [--extender-host-map HOST[:PORT]=ADDR:PORT ...] [--path-map OLD=NEW ...]
        [--time-scale F]

Each --scheduler-config file is a scheduler of its own (its profiles, its
extenders, its queue); a built-in default-scheduler without extenders runs
unless a file defines that profile. Writes DIR/schedsim.port (a plain-HTTP
control API, see tests/sim/README.md). Every rule names the upstream code
(kubernetes/kubernetes pkg/scheduler, v1.32) it copies.
"""

import argparse
import collections
import heapq
import http.client
import http.server
import json
import os
import random
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import base64
from urllib.parse import urlsplit, parse_qs

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simkube import (ApiClient, Informer, NodeMatcher, TimeScale, TimelineClient, go_duration, log,  # noqa: E402
                     pod_requests, resource_vector, rfc3339, term_matches, tolerates, write_atomic)

NAME = "schedsim"
MAX_NODE_SCORE = 100
MAX_EXTENDER_PRIORITY = 10
MIN_FEASIBLE_NODES = 100                # schedule_one.go minFeasibleNodesToFind
MIN_FEASIBLE_PERCENTAGE = 5             # minFeasibleNodesPercentageToFind
NOTE_LENGTH_LIMIT = 1024                # validation.NoteLengthLimit (truncateMessage)
EXTENDER = "Extender"                   # framework.ExtenderName

# Status codes (framework.Code)
UNSCHEDULABLE = "Unschedulable"
UNRESOLVABLE = "UnschedulableAndUnresolvable"

# The default plugins of kubescheduler.config.k8s.io/v1 (pkg/scheduler/apis/config/v1/default_plugins.go):
# filters in this order; score weights. Those marked (sim) are what this
# simulator implements; the others are listed in tests/sim/README.md.
FILTERS = ("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodeResourcesFit")
SCORE_WEIGHTS = {"TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1,
                 "NodeResourcesBalancedAllocation": 1, "ImageLocality": 1}
MB = 1024 * 1024


# ---------------------------------------------------------------------------
# Configuration.

class ConfigError(Exception):
    pass


def map_path(p, path_map):
    for old, new in path_map:
        if p == old or p.startswith(old.rstrip("/") + "/"):
            return new.rstrip("/") + p[len(old.rstrip("/")):]
    return p


def load_config(path, path_map):
    """A KubeSchedulerConfiguration file, defaulted like
    pkg/scheduler/apis/config/v1/defaults.go and validated like
    pkg/scheduler/apis/config/validation (the parts this simulator uses)."""
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if len(docs) != 1:
        raise ConfigError("%s: expected one KubeSchedulerConfiguration document, found %d" % (path, len(docs)))
    cfg = docs[0]
    if cfg.get("apiVersion") != "kubescheduler.config.k8s.io/v1" or cfg.get("kind") != "KubeSchedulerConfiguration":
        raise ConfigError("%s: not a kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration" % path)
    out = {"file": path,
           "podInitialBackoffSeconds": int(cfg.get("podInitialBackoffSeconds") or 1),
           "podMaxBackoffSeconds": int(cfg.get("podMaxBackoffSeconds") or 10),
           "percentageOfNodesToScore": cfg.get("percentageOfNodesToScore"),
           "profiles": [], "extenders": []}
    if out["podInitialBackoffSeconds"] <= 0 or out["podMaxBackoffSeconds"] < out["podInitialBackoffSeconds"]:
        raise ConfigError("%s: podInitialBackoffSeconds must be > 0 and <= podMaxBackoffSeconds" % path)
    profiles = cfg.get("profiles") or [{"schedulerName": "default-scheduler"}]
    for p in profiles:
        name = p.get("schedulerName") or "default-scheduler"
        disabled = set()
        plugins = p.get("plugins") or {}
        for point in ("multiPoint", "filter", "score"):
            for d in ((plugins.get(point) or {}).get("disabled") or []):
                disabled.add((point, d.get("name")))
        out["profiles"].append({"schedulerName": name, "percentageOfNodesToScore": p.get("percentageOfNodesToScore"),
                                "disabled": disabled})
    names = [p["schedulerName"] for p in out["profiles"]]
    if len(set(names)) != len(names):
        raise ConfigError("%s: duplicate profile schedulerName" % path)
    binders = 0
    managed = set()
    for i, e in enumerate(cfg.get("extenders") or []):
        if not e.get("urlPrefix"):
            raise ConfigError("%s: extenders[%d].urlPrefix is required" % (path, i))
        w = int(e.get("weight") or 0)
        if e.get("prioritizeVerb") and w <= 0:
            raise ConfigError("%s: extenders[%d].weight must have a positive weight applied to it" % (path, i))
        if e.get("bindVerb"):
            binders += 1
        for r in e.get("managedResources") or []:
            if r.get("name") in managed:
                raise ConfigError("%s: duplicate extender managed resource name %s" % (path, r.get("name")))
            managed.add(r.get("name"))
        tls = dict(e.get("tlsConfig") or {})
        for k in ("caFile", "certFile", "keyFile"):
            if tls.get(k):
                tls[k] = map_path(tls[k], path_map)
        out["extenders"].append({
            "urlPrefix": e["urlPrefix"], "filterVerb": e.get("filterVerb") or "",
            "prioritizeVerb": e.get("prioritizeVerb") or "", "bindVerb": e.get("bindVerb") or "",
            "preemptVerb": e.get("preemptVerb") or "", "weight": w,
            "enableHTTPS": bool(e.get("enableHTTPS")), "tlsConfig": tls,
            "httpTimeout": go_duration(e.get("httpTimeout")) or 5.0,    # extender.go DefaultExtenderTimeout
            "nodeCacheCapable": bool(e.get("nodeCacheCapable")), "ignorable": bool(e.get("ignorable")),
            "managedResources": [r.get("name") for r in e.get("managedResources") or []],
            "ignoredByScheduler": [r.get("name") for r in e.get("managedResources") or []
                                   if r.get("ignoredByScheduler")]})
    if binders > 1:
        raise ConfigError("%s: only one extender can implement bind" % path)
    return out


# ---------------------------------------------------------------------------
# Extenders (pkg/scheduler/extender.go HTTPExtender).

class ExtenderError(Exception):
    pass


def ci_get(d, key):
    """encoding/json decodes field names case-insensitively."""
    if not isinstance(d, dict):
        return None
    if key in d:
        return d[key]
    low = key.lower()
    for k, v in d.items():
        if k.lower() == low:
            return v
    return None


class Extender:
    def __init__(self, cfg, host_map, tmpdir):
        self.cfg = cfg
        self.url = cfg["urlPrefix"].rstrip("/")
        u = urlsplit(self.url)
        self.scheme = u.scheme
        self.host = u.hostname
        self.netloc = u.netloc          # the Host header, as written in urlPrefix
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.base_path = u.path
        self.addr = host_map.get("%s:%d" % (self.host, self.port)) or host_map.get(self.host) or (self.host, self.port)
        self.weight = cfg["weight"]
        self.managed = set(cfg["managedResources"])
        self.ignorable = cfg["ignorable"]
        self.cache_capable = cfg["nodeCacheCapable"]
        self.timeout = cfg["httpTimeout"]
        self.ctx = self.make_tls(cfg, tmpdir) if self.scheme == "https" else None
        tls = cfg.get("tlsConfig") or {}
        self.server_name = tls.get("serverName") or self.host
        self.conn = None
        self.lock = threading.Lock()

    @staticmethod
    def make_tls(cfg, tmpdir):
        """makeTransport: restclient TLS from tlsConfig (CA, client certificate,
        by file or base64 data, serverName, insecure); enableHTTPS without a CA
        means insecure."""
        tls = cfg.get("tlsConfig") or {}

        def data_file(name, data):
            path = os.path.join(tmpdir, "%s-%d" % (name, id(cfg)))
            with open(path, "wb") as f:
                f.write(base64.b64decode(data))
            return path
        ca = tls.get("caFile") or (data_file("ca", tls["caData"]) if tls.get("caData") else None)
        insecure = bool(tls.get("insecure")) or (cfg["enableHTTPS"] and not ca)
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        cert = tls.get("certFile") or (data_file("cert", tls["certData"]) if tls.get("certData") else None)
        key = tls.get("keyFile") or (data_file("key", tls["keyData"]) if tls.get("keyData") else None)
        if cert:
            ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def name(self):
        return self.cfg["urlPrefix"]

    def is_interested(self, pod):
        """IsInterested: every pod when managedResources is empty, else only
        pods whose containers or init containers request or limit one."""
        if not self.managed:
            return True
        spec = pod.get("spec") or {}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            res = c.get("resources") or {}
            for r in list((res.get("requests") or {})) + list((res.get("limits") or {})):
                if r in self.managed:
                    return True
        return False

    def _connect(self, deadline):
        t = max(0.001, deadline - time.monotonic())
        sock = socket.create_connection(self.addr, timeout=t)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ctx is not None:
            sock = self.ctx.wrap_socket(sock, server_hostname=self.server_name)
        c = http.client.HTTPConnection(self.host, self.port, timeout=t)
        c.sock = sock
        return c

    def send(self, verb, args):
        """send(): POST urlPrefix/verb, JSON, keep-alive; the whole exchange
        within httpTimeout (http.Client.Timeout); anything but 200 is an error.
        Returns (decoded result, seconds)."""
        body = json.dumps(args, separators=(",", ":")).encode()
        url = self.url + "/" + verb
        path = self.base_path.rstrip("/") + "/" + verb
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        with self.lock:
            for attempt in (0, 1):
                reused = self.conn is not None
                try:
                    if self.conn is None:
                        self.conn = self._connect(deadline)
                    self.conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
                    self.conn.request("POST", path, body=body, headers={
                        "Content-Type": "application/json", "Host": self.netloc,
                        "User-Agent": "kube-scheduler/v1.32.4 (linux/amd64) schedsim"})
                    resp = self.conn.getresponse()
                    raw = resp.read()
                    break
                except (socket.timeout, TimeoutError):
                    self.close()
                    raise ExtenderError('Post "%s": context deadline exceeded (Client.Timeout exceeded while '
                                        'awaiting headers)' % url)
                except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as e:
                    self.close()
                    # net/http retries a request on a reused connection that died before any answer.
                    if reused and attempt == 0 and time.monotonic() < deadline:
                        continue
                    raise ExtenderError('Post "%s": %s' % (url, e))
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        dt = time.monotonic() - t0
        if resp.status != 200:
            raise ExtenderError("failed %s with extender at URL %s, code %d" % (verb, url, resp.status))
        try:
            return json.loads(raw), dt
        except ValueError as e:
            raise ExtenderError("decoding the %s reply of %s: %s" % (verb, url, e))

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


# ---------------------------------------------------------------------------
# The scheduler cache (pkg/scheduler/backend/cache) with NodeInfo aggregates.

class NodeInfo:
    __slots__ = ("name", "node", "labels", "taints", "prefer_taints", "unschedulable", "alloc", "requested",
                 "nonzero", "pods", "images", "allowed_pods")

    def __init__(self, name):
        self.name = name
        self.node = None
        self.labels = {}
        self.taints = []
        self.prefer_taints = []
        self.unschedulable = False
        self.alloc = {}
        self.allowed_pods = 0
        self.requested = {}
        self.nonzero = [0, 0]
        self.pods = {}          # uid -> (reqs, nonzero cpu, nonzero mem)
        self.images = {}        # image name -> size

    def set_node(self, node):
        self.node = node
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        taints = (node.get("spec") or {}).get("taints") or []
        self.taints = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")]
        self.prefer_taints = [t for t in taints if t.get("effect") == "PreferNoSchedule"]
        self.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        st = node.get("status") or {}
        self.alloc = resource_vector(st.get("allocatable"))
        self.allowed_pods = self.alloc.get("pods", 0)
        self.images = {}
        for img in st.get("images") or []:
            for n in img.get("names") or []:
                self.images[n] = img.get("sizeBytes", 0)

    def add_pod(self, uid, pod):
        reqs = pod_requests(pod)
        nz = pod_requests(pod, non_zero=True)
        self.pods[uid] = (reqs, nz.get("cpu", 0), nz.get("memory", 0))
        for k, v in reqs.items():
            self.requested[k] = self.requested.get(k, 0) + v
        self.nonzero[0] += nz.get("cpu", 0)
        self.nonzero[1] += nz.get("memory", 0)

    def remove_pod(self, uid):
        e = self.pods.pop(uid, None)
        if e is None:
            return False
        reqs, c, m = e
        for k, v in reqs.items():
            self.requested[k] = self.requested.get(k, 0) - v
        self.nonzero[0] -= c
        self.nonzero[1] -= m
        return True


class Cache:
    """Nodes and the pods assigned to them (bound or assumed). Pods in phase
    Succeeded/Failed are not in it: the scheduler's pod informer lists with
    the field selector status.phase!=Succeeded,status.phase!=Failed
    (pkg/scheduler/scheduler.go newPodInformer)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.nodes = {}             # name -> NodeInfo (also for pods on unknown nodes)
        self.node_list = []         # NodeInfo of existing nodes, stable order
        self.pod_node = {}          # uid -> node name
        self.assumed = set()
        self.image_nodes = collections.Counter()    # image name -> nodes having it

    def info(self, name):
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    def set_node(self, node):
        name = node["metadata"]["name"]
        ni = self.info(name)
        new = ni.node is None
        for n in ni.images:
            self.image_nodes[n] -= 1
        ni.set_node(node)
        for n in ni.images:
            self.image_nodes[n] += 1
        if new:
            self.node_list.append(ni)
        return ni

    def remove_node(self, name):
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            return
        for n in ni.images:
            self.image_nodes[n] -= 1
        ni.node = None
        self.node_list = [x for x in self.node_list if x is not ni]
        if not ni.pods:
            del self.nodes[name]

    def add_pod(self, uid, node, pod):
        old = self.pod_node.get(uid)
        if old is not None:
            if old == node:
                if uid in self.assumed:
                    self.assumed.discard(uid)     # confirmed by the informer
                    return
                self.nodes[old].remove_pod(uid)
            else:
                self.nodes[old].remove_pod(uid)
                self.assumed.discard(uid)
        self.info(node).add_pod(uid, pod)
        self.pod_node[uid] = node

    def remove_pod(self, uid):
        node = self.pod_node.pop(uid, None)
        self.assumed.discard(uid)
        if node is not None and node in self.nodes:
            ni = self.nodes[node]
            ni.remove_pod(uid)
            if ni.node is None and not ni.pods:
                del self.nodes[node]
        return node


# ---------------------------------------------------------------------------
# The scheduling queue (pkg/scheduler/backend/queue/scheduling_queue.go;
# pkg/scheduler/internal/queue before v1.32).

class QueuedPod:
    __slots__ = ("key", "uid", "pod", "attempts", "timestamp", "initial", "rejectors", "where", "seq", "popped_at_event")

    def __init__(self, pod, now):
        self.key = "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.attempts = 0
        self.timestamp = now            # when it was last added to the queue
        self.initial = None
        self.rejectors = set()
        self.where = None               # "active", "backoff", "unschedulable", "inflight", "gated"
        self.seq = 0
        self.popped_at_event = 0


def pod_priority(pod):
    return int((pod.get("spec") or {}).get("priority") or 0)


class SchedulingQueue:
    """activeQ (PrioritySort: priority, then the time the pod entered the
    queue), backoffQ (flushed every second), unschedulablePods (moved back on a
    cluster event whose queueing hints say it may help, or after
    podMaxInUnschedulablePodsDuration = 5 min by a flush every 30 s).
    Backoff = podInitialBackoffSeconds x 2^(attempts-1), capped at
    podMaxBackoffSeconds, from the last failure (calculateBackoffDuration)."""

    def __init__(self, sched, initial, maximum, ts):
        self.sched = sched
        self.initial = ts(initial)
        self.maximum = ts(maximum)
        self.ts = ts
        self.cond = threading.Condition()
        self.pods = {}              # key -> QueuedPod
        self.active = []            # heap of (-priority, timestamp, seq, key)
        self.backoff = []           # heap of (expiry, seq, key)
        self.seq = 0
        self.events = collections.deque(maxlen=10000)   # (n, event) received while pods are in flight
        self.event_n = 0
        self.inflight = 0
        self.closed = False

    def _push_active(self, qp):
        self.seq += 1
        qp.seq = self.seq
        qp.where = "active"
        heapq.heappush(self.active, (-pod_priority(qp.pod), qp.timestamp, self.seq, qp.key))
        self.cond.notify()

    def backoff_duration(self, qp):
        if qp.attempts == 0:
            return 0.0
        d = self.initial
        for _ in range(1, qp.attempts):
            if d > self.maximum - d:
                return self.maximum
            d += d
        return d

    def backing_off(self, qp, now):
        return qp.timestamp + self.backoff_duration(qp) > now

    def _push_backoff(self, qp):
        self.seq += 1
        qp.seq = self.seq
        qp.where = "backoff"
        heapq.heappush(self.backoff, (qp.timestamp + self.backoff_duration(qp), self.seq, qp.key))

    def add(self, pod):
        """A new unscheduled pod (Add), or an update of one already queued (Update)."""
        now = time.monotonic()
        key = "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])
        gated = bool((pod.get("spec") or {}).get("schedulingGates"))
        with self.cond:
            qp = self.pods.get(key)
            if qp is not None and qp.uid != pod["metadata"]["uid"]:
                self.pods.pop(key)
                qp = None
            if qp is None:
                qp = self.pods[key] = QueuedPod(pod, now)
                if gated:
                    qp.where = "gated"          # SchedulingGates PreEnqueue
                else:
                    self._push_active(qp)
                return
            old = qp.pod
            qp.pod = pod
            if qp.where == "gated" and not gated:
                self._push_active(qp)
            elif qp.where == "unschedulable" and self.spec_changed(old, pod):
                # Update(): an unschedulable pod whose spec/labels changed is tried again.
                if self.backing_off(qp, now):
                    self._push_backoff(qp)
                else:
                    self._push_active(qp)

    @staticmethod
    def spec_changed(old, new):
        strip = lambda p: (p.get("spec"), (p.get("metadata") or {}).get("labels"),
                           (p.get("metadata") or {}).get("annotations"))
        return strip(old) != strip(new)

    def delete(self, key):
        with self.cond:
            qp = self.pods.pop(key, None)
            if qp is not None and qp.where == "inflight":
                self.pods[key] = qp         # its cycle ends it
                qp.where = "deleted"

    def pop(self, stop):
        """Blocks until a pod is active; returns its QueuedPod (attempts
        incremented, as Pop does)."""
        with self.cond:
            while True:
                if stop.is_set():
                    return None
                while self.active:
                    _, _, seq, key = heapq.heappop(self.active)
                    qp = self.pods.get(key)
                    if qp is None or qp.where != "active" or qp.seq != seq:
                        continue
                    qp.where = "inflight"
                    qp.attempts += 1
                    if qp.initial is None:
                        qp.initial = time.monotonic()
                    qp.popped_at_event = self.event_n
                    self.inflight += 1
                    return qp
                self.cond.wait(0.5)

    def done(self, qp, bound):
        with self.cond:
            self.inflight -= 1
            if bound or qp.where == "deleted":
                if self.pods.get(qp.key) is qp:
                    del self.pods[qp.key]

    def add_unschedulable(self, qp, rejectors):
        """AddUnschedulableIfNotPresent: the timestamp is refreshed; a pod that
        failed with an error (no rejector plugin) goes to backoffQ; an
        unschedulable one too if an event received during its cycle may have
        made it schedulable (the in-flight events and queueing hints), else to
        unschedulablePods."""
        now = time.monotonic()
        with self.cond:
            self.inflight -= 1
            if qp.where == "deleted" or self.pods.get(qp.key) is not qp:
                return
            qp.timestamp = now
            qp.rejectors = set(rejectors)
            queue_it = not rejectors
            if not queue_it:
                for n, ev in self.events:
                    if n > qp.popped_at_event and self.sched.worth_requeuing(qp, ev):
                        queue_it = True
                        break
            if queue_it:
                self._push_backoff(qp)      # just failed: always still backing off
            else:
                qp.where = "unschedulable"
            if not self.inflight:
                self.events.clear()

    def move_all(self, ev):
        """MoveAllToActiveOrBackoffQueue / movePodsToActiveOrBackoffQueue."""
        now = time.monotonic()
        with self.cond:
            self.event_n += 1
            if self.inflight:
                self.events.append((self.event_n, ev))
            for qp in list(self.pods.values()):
                if qp.where != "unschedulable":
                    continue
                if ev[0] != "UnschedulableTimeout" and not self.sched.worth_requeuing(qp, ev):
                    continue
                if self.backing_off(qp, now):
                    self._push_backoff(qp)
                else:
                    self._push_active(qp)

    def flush_backoff(self):
        """flushBackoffQCompleted, every second."""
        now = time.monotonic()
        with self.cond:
            while self.backoff and self.backoff[0][0] <= now:
                _, seq, key = heapq.heappop(self.backoff)
                qp = self.pods.get(key)
                if qp is None or qp.where != "backoff" or qp.seq != seq:
                    continue
                self._push_active(qp)

    def flush_unschedulable(self, max_age):
        """flushUnschedulablePodsLeftover, every 30 s: pods unschedulable for
        longer than podMaxInUnschedulablePodsDuration."""
        now = time.monotonic()
        with self.cond:
            for qp in list(self.pods.values()):
                if qp.where == "unschedulable" and now - qp.timestamp > max_age:
                    if self.backing_off(qp, now):
                        self._push_backoff(qp)
                    else:
                        self._push_active(qp)

    def snapshot(self):
        now = time.monotonic()
        with self.cond:
            out = []
            for qp in self.pods.values():
                d = {"pod": qp.key, "queue": qp.where, "attempts": qp.attempts,
                     "rejectors": sorted(qp.rejectors)}
                if qp.where in ("backoff", "unschedulable"):
                    d["backoffRemaining"] = max(0.0, qp.timestamp + self.backoff_duration(qp) - now)
                out.append(d)
            return out


# ---------------------------------------------------------------------------
# One scheduler (one configuration file).

class Scheduler:
    def __init__(self, sim, cfg, name):
        self.sim = sim
        self.cfg = cfg
        self.name = name
        self.ts = sim.ts
        self.profiles = {p["schedulerName"]: p for p in cfg["profiles"]}
        self.extenders = [Extender(e, sim.host_map, sim.tmpdir) for e in cfg["extenders"]]
        self.ignored_resources = set(r for e in cfg["extenders"] for r in e["ignoredByScheduler"])
        self.queue = SchedulingQueue(self, cfg["podInitialBackoffSeconds"], cfg["podMaxBackoffSeconds"], sim.ts)
        self.next_start = 0
        self.percentage = cfg.get("percentageOfNodesToScore")
        self.stats = collections.Counter()
        self.cycle_seconds = 0.0

    # ---- queueing hints (EventsToRegister / QueueingHintFn of each plugin, v1.32)

    def worth_requeuing(self, qp, ev):
        """isPodWorthRequeuing: any rejector plugin whose hint for this event
        says Queue. Pods rejected by an extender are requeued by any event
        (schedule_one.go findNodesThatFitPod: "Extender doesn't support any kind
        of requeueing feature like EnqueueExtensions"; kubernetes#122019)."""
        kind = ev[0]
        pod = qp.pod
        for plugin in qp.rejectors:
            if plugin == EXTENDER:
                return True
            if kind == "NodeAdd":
                node = ev[1]
                if self.hint_node(plugin, pod, None, node):
                    return True
            elif kind == "NodeUpdate":
                if self.hint_node(plugin, pod, ev[1], ev[2], ev[3]):
                    return True
            elif kind == "AssignedPodDelete":
                if plugin == "NodeResourcesFit":     # isSchedulableAfterPodEvent
                    return True
        return False

    def hint_node(self, plugin, pod, old, new, changes=None):
        labels = (new.get("metadata") or {}).get("labels") or {}
        name = new["metadata"]["name"]
        if plugin == "NodeName":
            return old is None and (pod.get("spec") or {}).get("nodeName") == name
        if plugin == "NodeUnschedulable":
            if changes is not None and not changes & {"unschedulable", "taints"}:
                return False
            return not (new.get("spec") or {}).get("unschedulable") or self.tolerates_unschedulable(pod)
        if plugin == "TaintToleration":
            if changes is not None and "taints" not in changes:
                return False
            tols = (pod.get("spec") or {}).get("tolerations") or []
            now_ok = untolerated((new.get("spec") or {}).get("taints"), tols) is None
            was_ok = old is not None and untolerated((old.get("spec") or {}).get("taints"), tols) is None
            return now_ok and not was_ok
        if plugin == "NodeAffinity":
            if changes is not None and "labels" not in changes:
                return False
            m = NodeMatcher(pod)
            now_ok = m.match(labels, name)
            was_ok = old is not None and m.match((old.get("metadata") or {}).get("labels") or {}, name)
            return now_ok and not was_ok
        if plugin == "NodeResourcesFit":
            if changes is not None and "allocatable" not in changes:
                return False
            alloc = resource_vector((new.get("status") or {}).get("allocatable"))
            req = pod_requests(pod)
            return all(v <= alloc.get(r, 0) for r, v in req.items() if v > 0 and r not in self.ignored_resources
                       and (r in ("cpu", "memory", "ephemeral-storage") or "/" in r))
        return False

    @staticmethod
    def tolerates_unschedulable(pod):
        t = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        return any(tolerates(tol, t) for tol in (pod.get("spec") or {}).get("tolerations") or [])

    # ---- the loop

    def run(self):
        stop = self.sim.stop
        while not stop.is_set():
            qp = self.queue.pop(stop)
            if qp is None:
                return
            try:
                self.schedule_one(qp)
            except Exception:
                log(NAME, "scheduling %s: %s" % (qp.key, traceback.format_exc()))
                self.queue.add_unschedulable(qp, set())

    def flusher(self):
        """The queue's periodic flushes (Run: wait.Until 1 s and 30 s)."""
        stop = self.sim.stop
        last_leftover = time.monotonic()
        period = max(0.01, self.ts(1.0))
        while not stop.wait(period):
            self.queue.flush_backoff()
            if time.monotonic() - last_leftover >= self.ts(30.0):
                last_leftover = time.monotonic()
                self.queue.flush_unschedulable(self.ts(300.0))

    def num_feasible_to_find(self, profile, n):
        """numFeasibleNodesToFind (percentageOfNodesToScore, adaptive when 0)."""
        if n < MIN_FEASIBLE_NODES:
            return n
        pct = profile.get("percentageOfNodesToScore")
        if pct is None:
            pct = self.percentage
        pct = int(pct or 0)
        if pct == 0:
            pct = max(50 - n // 125, MIN_FEASIBLE_PERCENTAGE)
        k = n * pct // 100
        return max(k, MIN_FEASIBLE_NODES)

    def schedule_one(self, qp):
        sim = self.sim
        t0 = time.monotonic()
        wall0 = time.time()
        pod = sim.latest_pod(qp.key, qp.uid)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            # skipPodSchedule (being deleted) or already bound meanwhile.
            self.queue.done(qp, True)
            return
        qp.pod = pod
        profile = self.profiles.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
        self.stats["cycles"] += 1
        attempt = {"attempt": qp.attempts, "scheduler": profile["schedulerName"], "extenders": []}
        result = self.find_host(pod, profile, attempt)
        dt = time.monotonic() - t0
        self.cycle_seconds += dt
        attempt["ms"] = round(dt * 1000, 3)
        if result[0] == "host":
            host = result[1]
            with sim.cache.lock:
                sim.cache.add_pod(qp.uid, host, dict(pod, spec=dict(pod["spec"], nodeName=host)))
                sim.cache.assumed.add(qp.uid)
            attempt["result"] = "assumed on %s" % host
            attempt.update(result[2])
            self.stats["scheduled"] += 1
            sim.record_attempt(qp.key, wall0, attempt)
            sim.bind(self, qp, pod, host)
            return
        kind, message, rejectors = result
        reason = "Unschedulable" if kind == "unschedulable" else "SchedulerError"
        self.stats[kind] += 1
        attempt["result"] = reason
        attempt["message"] = message
        sim.record_attempt(qp.key, wall0, attempt)
        self.failed(qp, pod, reason, message, rejectors)

    def failed(self, qp, pod, reason, message, rejectors):
        """handleSchedulingFailure: the pod goes back to the queue and its
        PodScheduled condition says why (updatePod patches pods/status only
        when the condition changed)."""
        sim = self.sim
        cur = sim.latest_pod(qp.key, qp.uid)
        if cur is None or (cur.get("spec") or {}).get("nodeName"):
            self.queue.done(qp, True)
            return
        self.queue.add_unschedulable(qp, rejectors)
        msg = message if len(message) <= NOTE_LENGTH_LIMIT else message[:NOTE_LENGTH_LIMIT - 4] + " ..."
        old = next((c for c in (cur.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        if old.get("status") == "False" and old.get("reason") == reason and old.get("message") == msg:
            return
        ns, name = qp.key.split("/", 1)
        cond = {"type": "PodScheduled", "status": "False", "reason": reason, "message": msg,
                "lastProbeTime": None,
                "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == "False" else rfc3339()}
        sim.write(qp.key, "PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, name),
                  {"status": {"conditions": [cond]}}, "application/strategic-merge-patch+json")

    # ---- filters (framework/plugins/*, Filter)

    def find_host(self, pod, profile, attempt):
        """schedulePod: filters, extenders, scores, selectHost. Returns
        ("host", name, details) or (kind, message, rejector plugins)."""
        sim = self.sim
        spec = pod.get("spec") or {}
        disabled = {n for (_, n) in profile["disabled"]}
        all_disabled = "*" in disabled
        with sim.cache.lock:
            nodes = sim.cache.node_list
            n_all = len(nodes)
            if n_all == 0:
                # ErrNoNodesAvailable
                return "unschedulable", "no nodes available to schedule pods", set()
            # PreFilter: what every node is checked against.
            reqs = {r: v for r, v in pod_requests(pod).items() if v}
            cpu, mem, eph = reqs.pop("cpu", 0), reqs.pop("memory", 0), reqs.pop("ephemeral-storage", 0)
            reqs.pop("pods", None)
            scalars = [(r, v) for r, v in reqs.items() if r not in self.ignored_resources]
            tols = spec.get("tolerations") or []
            node_name = spec.get("nodeName") or ""
            matcher = NodeMatcher(pod)
            tol_unsched = self.tolerates_unschedulable(pod)
            taint_ok = {}

            def taint_tolerated(t):
                k = (t.get("key"), t.get("value"), t.get("effect"))
                r = taint_ok.get(k)
                if r is None:
                    r = taint_ok[k] = any(tolerates(tol, t) for tol in tols)
                return r

            use = {f: not (all_disabled or f in disabled) for f in FILTERS}
            feasible, statuses = [], {}
            absent = None
            names = self.prefilter_node_names(pod) if use["NodeAffinity"] else None
            if names is not None:
                # A PreFilterResult: only these nodes are evaluated; the others
                # are "node(s) didn't satisfy plugin(s) [NodeAffinity]"
                # (findNodesThatFitPod, SetAbsentNodesStatus).
                if not names:
                    # errReasonConflict, a PreFilter rejection for every node
                    return ("unschedulable", "0/%d nodes are available: pod affinity terms conflict. %s"
                            % (n_all, self.preemption_message(pod, n_all, {})), {"NodeAffinity"})
                nodes = [sim.cache.nodes[n] for n in sorted(names)
                         if n in sim.cache.nodes and sim.cache.nodes[n].node is not None]
                absent = ("NodeAffinity", UNRESOLVABLE, ["node(s) didn't satisfy plugin(s) [NodeAffinity]"])
            n_eval = len(nodes)
            to_find = self.num_feasible_to_find(profile, n_eval)
            start = self.next_start % n_all
            processed = 0
            for i in range(n_eval):
                ni = nodes[(start + i) % n_eval]
                processed += 1
                st = None
                if use["NodeUnschedulable"] and ni.unschedulable and not tol_unsched:
                    st = ("NodeUnschedulable", UNRESOLVABLE, ["node(s) were unschedulable"])
                elif use["NodeName"] and node_name and node_name != ni.name:
                    st = ("NodeName", UNRESOLVABLE, ["node(s) didn't match the requested node name"])
                else:
                    if use["TaintToleration"]:
                        for t in ni.taints:
                            if not taint_tolerated(t):
                                st = ("TaintToleration", UNRESOLVABLE,
                                      ["node(s) had untolerated taint {%s: %s}" % (t.get("key"), t.get("value") or "")])
                                break
                    if st is None and use["NodeAffinity"] and not matcher.match(ni.labels, ni.name):
                        st = ("NodeAffinity", UNRESOLVABLE, ["node(s) didn't match Pod's node affinity/selector"])
                    if st is None and use["NodeResourcesFit"]:
                        reasons = self.fits(ni, cpu, mem, eph, scalars)
                        if reasons:
                            st = ("NodeResourcesFit", UNSCHEDULABLE, reasons)
                if st is None:
                    feasible.append(ni)
                    if len(feasible) >= to_find:
                        break
                else:
                    statuses[ni.name] = st
            self.next_start = (self.next_start + processed) % n_all
            rejectors = {s[0] for s in statuses.values()}
            evaluated = len(feasible) + len(statuses)
            if absent is not None:
                rejectors.add("NodeAffinity")
        attempt["evaluated"] = evaluated
        attempt["feasibleInTree"] = len(feasible)
        # Extenders, called only with nodes that passed the filters, in order
        # (findNodesThatPassExtenders).
        before = len(feasible)
        for ext in self.extenders:
            if not feasible:
                break
            if not ext.is_interested(pod) or not ext.cfg["filterVerb"]:
                continue
            call = {"verb": ext.cfg["filterVerb"], "url": ext.name(), "sent": len(feasible),
                    "mode": "NodeNames" if ext.cache_capable else "Nodes"}
            attempt["extenders"].append(call)
            try:
                feasible, failed, unresolvable = self.extender_filter(ext, pod, feasible, call)
            except ExtenderError as e:
                call["error"] = str(e)
                if ext.ignorable:
                    call["ignored"] = True
                    continue
                return "error", str(e), set()
            call["returned"] = len(feasible)
            for n, msg in (unresolvable or {}).items():
                statuses[n] = ("", UNRESOLVABLE, [msg])
            for n, msg in (failed or {}).items():
                if n not in (unresolvable or {}):
                    statuses[n] = ("", UNSCHEDULABLE, [msg])
        if len(feasible) != before:
            rejectors.add(EXTENDER)
        attempt["feasible"] = len(feasible)
        if not feasible:
            return "unschedulable", self.fit_error(pod, n_all, statuses, absent), rejectors
        if len(feasible) == 1:
            return "host", feasible[0].name, {"evaluated": evaluated}
        scores = self.prioritize(pod, profile, feasible, attempt)
        best = max(scores.values())
        top = [n for n, s in scores.items() if s == best]
        host = random.choice(top)           # nodeScoreHeap: ties broken by a random Randomizer
        return "host", host, {"score": best}

    @staticmethod
    def prefilter_node_names(pod):
        """NodeAffinity.PreFilter: when every required term names nodes with
        matchFields metadata.name In [...] (as DaemonSet pods do), the union of
        those names; None when any term does not."""
        req = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
               .get("requiredDuringSchedulingIgnoredDuringExecution"))
        if not req:
            return None
        names = None
        for t in req.get("nodeSelectorTerms") or []:
            term = None
            for r in t.get("matchFields") or []:
                if r.get("key") == "metadata.name" and r.get("operator") == "In":
                    v = set(r.get("values") or [])
                    term = v if term is None else term & v
            if term is None:
                return None
            names = term if names is None else names | term
        return names

    def fits(self, ni, cpu, mem, eph, scalars):
        """fitsRequest (noderesources/fit.go): one more pod, then each requested
        resource against allocatable minus what the node's pods request;
        extended resources marked ignoredByScheduler are not counted."""
        reasons = []
        if len(ni.pods) + 1 > ni.allowed_pods:
            reasons.append("Too many pods")
        a, r = ni.alloc, ni.requested
        if cpu and cpu > a.get("cpu", 0) - r.get("cpu", 0):
            reasons.append("Insufficient cpu")
        if mem and mem > a.get("memory", 0) - r.get("memory", 0):
            reasons.append("Insufficient memory")
        if eph and eph > a.get("ephemeral-storage", 0) - r.get("ephemeral-storage", 0):
            reasons.append("Insufficient ephemeral-storage")
        for name, v in scalars:
            if v > a.get(name, 0) - r.get(name, 0):
                reasons.append("Insufficient %s" % name)
        return reasons

    def extender_filter(self, ext, pod, feasible, call):
        """HTTPExtender.Filter: NodeNames (nodeCacheCapable) or full Node
        objects; the reply's names must all be among those sent; Error is an
        error; both lists null means no node passes."""
        by_name = {ni.name: ni for ni in feasible}
        pod_obj = strip_type(pod)
        if ext.cache_capable:
            args = {"Pod": pod_obj, "Nodes": None, "NodeNames": [ni.name for ni in feasible]}
        else:
            args = {"Pod": pod_obj, "Nodes": {"metadata": {}, "items": [strip_type(ni.node) for ni in feasible]},
                    "NodeNames": None}
        result, dt = ext.send(ext.cfg["filterVerb"], args)
        call["ms"] = round(dt * 1000, 3)
        if ci_get(result, "Error"):
            raise ExtenderError(ci_get(result, "Error"))
        names = ci_get(result, "NodeNames")
        nodes = ci_get(result, "Nodes")
        out = []
        if ext.cache_capable and names is not None:
            for n in names:
                if n not in by_name:
                    raise ExtenderError("extender %r claims a filtered node %r which is not found in the input node "
                                        "list" % (ext.name(), n))
                out.append(by_name[n])
        elif nodes is not None:
            # Not cache-capable: the returned Node objects are used as they are
            # (extender.go builds NodeInfos from them).
            for item in ci_get(nodes, "items") or []:
                name = (item.get("metadata") or {}).get("name")
                ni = by_name.get(name)
                if ni is None:
                    ni = NodeInfo(name)
                    ni.set_node(item)
                out.append(ni)
        return out, ci_get(result, "FailedNodes"), ci_get(result, "FailedAndUnresolvableNodes")

    def fit_error(self, pod, n_all, statuses, absent=None):
        """FitError.Error (framework/types.go): "0/N nodes are available: " the
        sorted histogram of reasons, then the PostFilter (DefaultPreemption)
        message. Nodes an extender dropped without a reason add none; nodes a
        PreFilter excluded count with its reason."""
        hist = collections.Counter()
        for _, _, reasons in statuses.values():
            for r in reasons:
                hist[r] += 1
        if absent is not None and n_all > len(statuses):
            for r in absent[2]:
                hist[r] += n_all - len(statuses)
        msg = "0/%d nodes are available:" % n_all
        parts = sorted("%d %s" % (v, k) for k, v in hist.items())
        if parts:
            msg += " %s." % ", ".join(parts)
        post = self.preemption_message(pod, n_all, statuses)
        if post:
            msg += " " + post
        return msg

    @staticmethod
    def preemption_message(pod, n_all, statuses):
        """DefaultPreemption PostFilter, as it ends when no pod can be preempted
        (this simulator never evicts): nodes whose status is Unschedulable say
        "No preemption victims found for incoming pod", the others "Preemption
        is not helpful for scheduling" (preemption.go Preempt/findCandidates)."""
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return "preemption: not eligible due to preemptionPolicy=Never."
        potential = sum(1 for s in statuses.values() if s[1] == UNSCHEDULABLE)
        hist = []
        if potential:
            hist.append("%d No preemption victims found for incoming pod" % potential)
        if n_all - potential:
            hist.append("%d Preemption is not helpful for scheduling" % (n_all - potential))
        return "preemption: 0/%d nodes are available: %s." % (n_all, ", ".join(sorted(hist)))

    # ---- scores (framework/plugins/*, Score + NormalizeScore; prioritizeNodes)

    def prioritize(self, pod, profile, feasible, attempt):
        disabled = {n for (_, n) in profile["disabled"]}
        weights = {p: w for p, w in SCORE_WEIGHTS.items() if p not in disabled and "*" not in disabled}
        spec = pod.get("spec") or {}
        total = {ni.name: 0 for ni in feasible}
        with self.sim.cache.lock:
            if "TaintToleration" in weights:
                tols = [t for t in spec.get("tolerations") or [] if t.get("effect") in (None, "", "PreferNoSchedule")]
                raw = {ni.name: sum(1 for t in ni.prefer_taints if not any(tolerates(x, t) for x in tols))
                       for ni in feasible}
                for n, s in normalize(raw, reverse=True).items():
                    total[n] += s * weights["TaintToleration"]
            if "NodeAffinity" in weights:
                pref = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                        .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
                if pref:
                    raw = {ni.name: sum(int(p.get("weight", 0)) for p in pref
                                        if term_matches(p.get("preference") or {}, ni.labels, ni.name))
                           for ni in feasible}
                    for n, s in normalize(raw, reverse=False).items():
                        total[n] += s * weights["NodeAffinity"]
            nz = pod_requests(pod, non_zero=True)
            rq = pod_requests(pod)
            for ni in feasible:
                if "NodeResourcesFit" in weights:
                    # LeastAllocated, cpu and memory weight 1 (noderesources/least_allocated.go)
                    sc, ws = 0, 0
                    for i, r in ((0, "cpu"), (1, "memory")):
                        cap = ni.alloc.get(r, 0)
                        if cap == 0:
                            continue
                        req = ni.nonzero[i] + nz.get(r, 0)
                        sc += 0 if req > cap else (cap - req) * MAX_NODE_SCORE // cap
                        ws += 1
                    total[ni.name] += (sc // ws if ws else 0) * weights["NodeResourcesFit"]
                if "NodeResourcesBalancedAllocation" in weights:
                    # balanced_allocation.go balancedResourceScorer
                    fr = []
                    for r in ("cpu", "memory"):
                        cap = ni.alloc.get(r, 0)
                        if cap:
                            fr.append(min(1.0, (ni.requested.get(r, 0) + rq.get(r, 0)) / float(cap)))
                    std = abs(fr[0] - fr[1]) / 2 if len(fr) == 2 else 0.0
                    total[ni.name] += int((1 - std) * MAX_NODE_SCORE) * weights["NodeResourcesBalancedAllocation"]
                if "ImageLocality" in weights:
                    total[ni.name] += self.image_score(ni, spec) * weights["ImageLocality"]
        # Extenders' Prioritize: score x weight x (MaxNodeScore / MaxExtenderPriority);
        # errors are ignored (prioritizeNodes).
        for ext in self.extenders:
            if not ext.is_interested(pod) or not ext.cfg["prioritizeVerb"]:
                continue
            call = {"verb": ext.cfg["prioritizeVerb"], "url": ext.name(), "sent": len(feasible)}
            attempt["extenders"].append(call)
            pod_obj = strip_type(pod)
            if ext.cache_capable:
                args = {"Pod": pod_obj, "Nodes": None, "NodeNames": [ni.name for ni in feasible]}
            else:
                args = {"Pod": pod_obj, "Nodes": {"metadata": {}, "items": [strip_type(ni.node) for ni in feasible]},
                        "NodeNames": None}
            try:
                result, dt = ext.send(ext.cfg["prioritizeVerb"], args)
                call["ms"] = round(dt * 1000, 3)
            except ExtenderError as e:
                call["error"] = str(e)
                continue
            for hp in result or []:
                host, score = ci_get(hp, "Host"), ci_get(hp, "Score")
                if host in total and isinstance(score, int):
                    total[host] += score * ext.weight * (MAX_NODE_SCORE // MAX_EXTENDER_PRIORITY)
        return total

    def image_score(self, ni, spec):
        """ImageLocality (imagelocality/image_locality.go): the sizes of the
        pod's images present on the node, each scaled by the share of nodes
        that have it, mapped from [23MB, 1000MB x containers] to 0-100."""
        conts = (spec.get("initContainers") or []) + (spec.get("containers") or [])
        if not conts:
            return 0
        total_nodes = len(self.sim.cache.node_list) or 1
        s = 0
        for c in conts:
            name = c.get("image") or ""
            if name.rfind(":") <= name.rfind("/"):
                name += ":latest"
            size = ni.images.get(name)
            if size:
                s += int(size * (self.sim.cache.image_nodes.get(name, 0) / float(total_nodes)))
        lo, hi = 23 * MB, 1000 * MB * len(conts)
        s = min(max(s, lo), hi)
        return MAX_NODE_SCORE * (s - lo) // (hi - lo)


def normalize(raw, reverse):
    """helper.DefaultNormalizeScore."""
    mx = max(raw.values()) if raw else 0
    if mx == 0:
        return {n: (MAX_NODE_SCORE if reverse else 0) for n in raw}
    out = {}
    for n, s in raw.items():
        v = MAX_NODE_SCORE * s // mx
        out[n] = MAX_NODE_SCORE - v if reverse else v
    return out


def untolerated(taints, tols):
    for t in taints or []:
        if t.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(x, t) for x in tols):
            return t
    return None


def strip_type(obj):
    """Objects from the informer: Go marshals them without apiVersion/kind."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}


NODE_FIELDS = (("unschedulable", lambda n: bool((n.get("spec") or {}).get("unschedulable"))),
               ("allocatable", lambda n: (n.get("status") or {}).get("allocatable")),
               ("labels", lambda n: (n.get("metadata") or {}).get("labels") or {}),
               ("taints", lambda n: (n.get("spec") or {}).get("taints") or []),
               ("conditions", lambda n: {c.get("type"): c.get("status") for c in (n.get("status") or {})
                                         .get("conditions") or []}),
               ("annotations", lambda n: (n.get("metadata") or {}).get("annotations") or {}))


def node_changes(old, new):
    """framework.NodeSchedulingPropertiesChange (pkg/scheduler/framework/events.go):
    only these changes of a Node are cluster events (heartbeats are not)."""
    return {name for name, f in NODE_FIELDS if f(old) != f(new)}


# ---------------------------------------------------------------------------
# The process: informers feeding the cache and every scheduler's queue.

class SchedSim:
    def __init__(self, args, configs):
        self.args = args
        self.ts = TimeScale(args.time_scale)
        self.api = ApiClient(args.dir)
        self.timeline = TimelineClient(self.api, NAME)
        self.stop = threading.Event()
        self.cache = Cache()
        self.tmpdir = tempfile.mkdtemp(prefix="schedsim-")
        self.host_map = {}
        for m in args.extender_host_map or []:
            src, _, dst = m.partition("=")
            h, _, p = dst.rpartition(":")
            self.host_map[src.lower()] = (h, int(p))
        self.schedulers = []
        for i, c in enumerate(configs):
            self.schedulers.append(Scheduler(self, c, os.path.basename(c["file"]) if c.get("file") else "built-in"))
        self.by_profile = {}
        for s in self.schedulers:
            for p in s.profiles:
                if p in self.by_profile:
                    raise ConfigError("profile %s is defined by two scheduler configurations" % p)
                self.by_profile[p] = s
        self.pods = {}              # key -> latest pod (unassigned ones and assigned ones)
        self.pods_lock = threading.Lock()
        self.bind_q = collections.deque()
        self.bind_cond = threading.Condition()
        self.attempts = collections.deque(maxlen=20000)
        self.synced = set()
        self.stats = collections.Counter()

    def write(self, key, method, path, body, ctype):
        def fn():
            try:
                st, resp = self.api.request(method, path, body, ctype)
                if st >= 300 and st != 404 and not self.stop.is_set():
                    log(NAME, "%s %s: %s %s" % (method, path, st, str(resp)[:200]))
            except Exception as e:
                log(NAME, "%s %s: %s" % (method, path, e))
        with self.bind_cond:
            self.bind_q.append(fn)
            self.bind_cond.notify()

    def latest_pod(self, key, uid):
        with self.pods_lock:
            p = self.pods.get(key)
        if p is None or p["metadata"].get("uid") != uid:
            return None
        return p

    def record_attempt(self, key, wall, attempt):
        a = dict(attempt, pod=key, time=wall)
        self.attempts.append(a)
        detail = {k: v for k, v in attempt.items() if k != "attempt"}
        self.timeline.add("pod", key, "scheduling attempt %d" % attempt["attempt"], wall, **detail)

    # ---- binding (DefaultBinder, asynchronously as bindingCycle does)

    def bind(self, sched, qp, pod, host):
        def fn():
            ns, name = qp.key.split("/", 1)
            body = {"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": qp.uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": host}}
            try:
                st, resp = self.api.post("/api/v1/namespaces/%s/pods/%s/binding" % (ns, name), body)
            except Exception as e:
                st, resp = 0, str(e)
            if st in (200, 201):
                sched.stats["bound"] += 1
                sched.queue.done(qp, True)
                return
            # handleBindingCycleError: forget the assumed pod, tell the queue
            # (AssignedPodDelete), and retry the pod after its backoff.
            log(NAME, "binding %s to %s: %s %s" % (qp.key, host, st, str(resp)[:200]))
            with self.cache.lock:
                if qp.uid in self.cache.assumed:
                    self.cache.remove_pod(qp.uid)
            sched.stats["bind errors"] += 1
            sched.queue.add_unschedulable(qp, set())
            for s in self.schedulers:
                s.queue.move_all(("AssignedPodDelete", pod))
        with self.bind_cond:
            self.bind_q.append(fn)
            self.bind_cond.notify()

    def binder(self):
        while not self.stop.is_set():
            with self.bind_cond:
                while not self.bind_q and not self.stop.is_set():
                    self.bind_cond.wait(0.5)
                if not self.bind_q:
                    continue
                fn = self.bind_q.popleft()
            fn()

    # ---- events

    def on_node(self, t, node, old):
        if t == "SYNCED":
            self.synced.add("nodes")
            return
        name = node["metadata"]["name"]
        with self.cache.lock:
            if t == "DELETED":
                self.cache.remove_node(name)
                return
            self.cache.set_node(node)
        if t == "ADDED" or old is None:
            ev = ("NodeAdd", node)
        else:
            ch = node_changes(old, node)
            if not ch:
                return
            ev = ("NodeUpdate", old, node, ch)
        for s in self.schedulers:
            s.queue.move_all(ev)

    def on_pod(self, t, pod, old):
        if t == "SYNCED":
            self.synced.add("pods")
            return
        md = pod["metadata"]
        key = "%s/%s" % (md["namespace"], md["name"])
        uid = md["uid"]
        node = (pod.get("spec") or {}).get("nodeName")
        sched = self.by_profile.get((pod.get("spec") or {}).get("schedulerName") or "default-scheduler")
        if t == "DELETED":
            with self.pods_lock:
                cur = self.pods.get(key)
                if cur is not None and cur["metadata"].get("uid") == uid:
                    del self.pods[key]
            with self.cache.lock:
                was = self.cache.remove_pod(uid)
            if sched is not None:
                sched.queue.delete(key)
            if was is not None:
                # An assigned pod went away (deleted or finished): AssignedPodDelete.
                for s in self.schedulers:
                    s.queue.move_all(("AssignedPodDelete", pod))
            return
        with self.pods_lock:
            self.pods[key] = pod
        if node:
            with self.cache.lock:
                self.cache.add_pod(uid, node, pod)
            if sched is not None:
                sched.queue.delete(key)
            return
        if sched is not None and not md.get("deletionTimestamp"):
            sched.queue.add(pod)

    # ---- control API

    def control(self, method, path, q):
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["_sim"]:
            return 200, {"schedsim": True, "control": "/_sim/"}
        parts = parts[1:]
        if parts == ["health"]:
            return 200, {"ok": True, "synced": sorted(self.synced), "time_scale": self.ts.f,
                         "schedulers": [{"name": s.name, "profiles": sorted(s.profiles),
                                         "extenders": [e.name() for e in s.extenders]} for s in self.schedulers]}
        if parts == ["stats"]:
            return 200, {"schedulers": [dict(s.stats, name=s.name, profiles=sorted(s.profiles),
                                             cycleSeconds=round(s.cycle_seconds, 6),
                                             queued=len(s.queue.pods)) for s in self.schedulers],
                         "nodes": len(self.cache.node_list)}
        if parts == ["queue"]:
            return 200, {"schedulers": [{"name": s.name, "pods": s.queue.snapshot()} for s in self.schedulers]}
        if parts == ["attempts"]:
            pod = q.get("pod")
            since = float(q.get("since") or 0)
            out = [a for a in list(self.attempts) if (not pod or a["pod"] == pod) and a["time"] >= since]
            return 200, {"attempts": out}
        return 404, {"error": "no such control endpoint %s" % path}

    def start(self):
        for s in self.schedulers:
            threading.Thread(target=s.flusher, name="flush-" + s.name, daemon=True).start()
        for i in range(self.args.bind_workers):
            threading.Thread(target=self.binder, name="bind-%d" % i, daemon=True).start()
        Informer(self.api, "/api/v1/nodes", self.on_node, name="watch-nodes", stop=self.stop).start()
        Informer(self.api, "/api/v1/pods", self.on_pod, name="watch-pods", stop=self.stop,
                 params="fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed").start()

        def go():
            while not self.stop.is_set() and not {"nodes", "pods"} <= self.synced:
                time.sleep(0.05)
            for s in self.schedulers:
                threading.Thread(target=s.run, name="sched-" + s.name, daemon=True).start()
        threading.Thread(target=go, daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        try:
            st, doc = self.server.sim.control("GET", u.path, q)
        except Exception as e:
            st, doc = 500, {"error": str(e)}
        data = json.dumps(doc, indent=1).encode()
        self.send_response(st)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv=None):
    p = argparse.ArgumentParser(description="kube-scheduler simulator (see tests/sim/README.md).")
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply the queue's backoffs and flush periods by F (not extender timeouts)")
    p.add_argument("--scheduler-config", action="append", metavar="FILE",
                   help="a KubeSchedulerConfiguration (repeatable; each one a scheduler)")
    p.add_argument("--extender-host-map", action="append", metavar="HOST[:PORT]=ADDR:PORT",
                   help="connect to ADDR:PORT for extender URLs naming HOST, still verifying TLS for HOST "
                        "(or tlsConfig.serverName), e.g. stratos-webhook.stratos-system.svc:443=127.0.0.1:8443")
    p.add_argument("--path-map", action="append", metavar="OLD=NEW",
                   help="read the configuration's certificate files under NEW instead of OLD "
                        "(a path prefix), e.g. /etc/stratos-scheduler/tls=/tmp/x/tls")
    p.add_argument("--no-default-scheduler", action="store_true",
                   help="no built-in default-scheduler (only the configuration files' profiles)")
    p.add_argument("--bind-workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    if args.time_scale <= 0:
        p.error("--time-scale must be > 0")
    if args.seed is not None:
        random.seed(args.seed)
    path_map = [tuple(x.split("=", 1)) for x in args.path_map or [] if "=" in x]
    for x in (args.extender_host_map or []):
        if "=" not in x or ":" not in x.split("=", 1)[1]:
            p.error("--extender-host-map %r: expected HOST[:PORT]=ADDR:PORT" % x)
    try:
        configs = [load_config(f, path_map) for f in args.scheduler_config or []]
        if not args.no_default_scheduler and not any(pr["schedulerName"] == "default-scheduler"
                                                     for c in configs for pr in c["profiles"]):
            configs.append({"file": None, "podInitialBackoffSeconds": 1, "podMaxBackoffSeconds": 10,
                            "percentageOfNodesToScore": None, "extenders": [],
                            "profiles": [{"schedulerName": "default-scheduler", "percentageOfNodesToScore": None,
                                          "disabled": set()}]})
        sim = SchedSim(args, configs)
    except (ConfigError, OSError, ssl.SSLError, ValueError) as e:
        sys.stderr.write("schedsim: %s\n" % e)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    sim.start()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.sim = sim
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    write_atomic(os.path.join(args.dir, NAME + ".port"), "%d\n" % srv.server_address[1])
    log(NAME, "serving 127.0.0.1:%d; schedulers: %s" % (srv.server_address[1], "; ".join(
        "%s (%s%s)" % (s.name, ", ".join(sorted(s.profiles)),
                       "; extenders " + ", ".join(e.name() for e in s.extenders) if s.extenders else "")
        for s in sim.schedulers)))
    while not stop.wait(0.5):
        pass
    sim.stop.set()
    sim.timeline.flush(1.0)
    srv.shutdown()
    log(NAME, "stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
