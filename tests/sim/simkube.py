"""Shared pieces of the kubelet and scheduler simulators (kubeletsim.py,
schedsim.py): a thread-safe client of the fake API server, watch-fed caches
(informers), resource quantities, the pod request arithmetic, taint /
toleration and node-affinity matching, --time-scale and the timeline client.

Each function that imitates Kubernetes names the upstream code it copies.
Standard library only.
"""

import collections
import datetime
import fractions
import http.client
import json
import math
import os
import queue
import re
import ssl
import sys
import threading
import time
import urllib.parse

# ---------------------------------------------------------------------------
# Logging, time.


def log(name, msg):
    sys.stderr.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), name, msg))
    sys.stderr.flush()


def rfc3339(t=None):
    """metav1.Time as the API server writes it (second precision, UTC)."""
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(t=None):
    """metav1.MicroTime (Lease renewTime, events)."""
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(v):
    """time.ParseDuration (metav1.Duration in configuration files): "10s",
    "1m30s", "500ms". A bare number is taken as seconds."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip()
    if re.fullmatch(r"[0-9.]+", s):
        return float(s)
    pos, total = 0, 0.0
    neg = s.startswith("-")
    if s[:1] in "+-":
        pos = 1
    if s[pos:] == "0":
        return 0.0
    for m in _GO_DURATION.finditer(s, pos):
        if m.start() != pos:
            raise ValueError("invalid duration %r" % v)
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError("invalid duration %r" % v)
    return -total if neg else total


class TimeScale:
    """--time-scale F: every simulated delay is multiplied by F (0.1 = ten
    times faster). Never applied to anything of stratosd's own."""

    def __init__(self, factor):
        if factor <= 0:
            raise ValueError("--time-scale must be > 0")
        self.f = float(factor)

    def __call__(self, seconds):
        return seconds * self.f


# ---------------------------------------------------------------------------
# Resource quantities (k8s.io/apimachinery/pkg/api/resource.Quantity).

_Q_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_Q_SUFFIX = {None: 1, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
             "n": fractions.Fraction(1, 10 ** 9), "u": fractions.Fraction(1, 10 ** 6),
             "m": fractions.Fraction(1, 1000), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
             "P": 10 ** 15, "E": 10 ** 18}
_q_cache = {}


def quantity(v):
    """Exact value of a Quantity string (or number) as a Fraction."""
    if isinstance(v, (int, float)):
        return fractions.Fraction(v)
    r = _q_cache.get(v)
    if r is not None:
        return r
    m = _Q_RE.match(str(v).strip())
    if not m:
        raise ValueError("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': %r" % v)
    num = fractions.Fraction(m.group(1))
    if m.group(2):
        num *= fractions.Fraction(10) ** int(m.group(2)[1:])
    else:
        num *= _Q_SUFFIX[m.group(3)]
    if len(_q_cache) < 100000:
        _q_cache[v] = num
    return num


def q_value(v):
    """Quantity.Value(): rounded up to an integer."""
    return math.ceil(quantity(v))


def q_milli(v):
    """Quantity.MilliValue(): thousandths, rounded up."""
    return math.ceil(quantity(v) * 1000)


def fmt_milli(m):
    """A CPU quantity in canonical form ("1930m", "2")."""
    return "%d" % (m // 1000) if m % 1000 == 0 else "%dm" % m


def fmt_bytes(b):
    """A byte quantity in binary-suffix canonical form when exact ("7244284Ki")."""
    for suf, mul in (("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10)):
        if b % mul == 0 and b >= mul:
            return "%d%s" % (b // mul, suf)
    return "%d" % b


def is_extended(name):
    """v1helper.IsExtendedResourceName: a fully-qualified name outside the
    kubernetes.io/ namespace, not requests.* (pkg/apis/core/v1/helper)."""
    return "/" in name and not name.startswith("requests.") and \
        not (name.split("/", 1)[0] == "kubernetes.io" or name.split("/", 1)[0].endswith(".kubernetes.io"))


def resource_vector(rl):
    """A ResourceList as {name: int}: cpu in millicores (MilliValue), every
    other resource in units (Value), as the scheduler's framework.Resource
    does (pkg/scheduler/framework/types.go, Resource.Add)."""
    out = {}
    for k, v in (rl or {}).items():
        try:
            out[k] = q_milli(v) if k == "cpu" else q_value(v)
        except ValueError:
            continue
    return out


def _add(dst, src):
    for k, v in src.items():
        dst[k] = dst.get(k, 0) + v


def _max(dst, src):
    for k, v in src.items():
        if v > dst.get(k, 0):
            dst[k] = v


def pod_requests(pod, non_zero=False):
    """resourcehelper.PodRequests (k8s.io/component-helpers/resource): the sum
    of the regular containers, then for each init container in order its own
    requests plus those of the restartable (sidecar, restartPolicy Always) init
    containers before it, the pod's request being the max of the two; sidecars
    also add to the sum; then spec.overhead is added.

    non_zero: schedutil.GetNonzeroRequests for scoring (a container without a
    cpu or memory request counts 100m / 200Mi; pkg/scheduler/util/pod_resources.go).
    """
    spec = pod.get("spec") or {}

    def creqs(c):
        r = resource_vector(((c.get("resources") or {}).get("requests")))
        if non_zero:
            r.setdefault("cpu", 100)
            r.setdefault("memory", 200 * 1024 * 1024)
        return r

    reqs = {}
    for c in spec.get("containers") or []:
        _add(reqs, creqs(c))
    restartable, init_max = {}, {}
    for c in spec.get("initContainers") or []:
        r = creqs(c)
        if c.get("restartPolicy") == "Always":
            _add(reqs, r)
            _add(restartable, r)
            r = dict(restartable)
        else:
            tmp = dict(r)
            _add(tmp, restartable)
            r = tmp
        _max(init_max, r)
    _max(reqs, init_max)
    if spec.get("overhead"):
        _add(reqs, resource_vector(spec["overhead"]))
    return reqs


# ---------------------------------------------------------------------------
# Taints, tolerations, node selectors (pkg/apis/core/v1/helper,
# k8s.io/component-helpers/scheduling/corev1/nodeaffinity).

def tolerates(tol, taint):
    """v1.Toleration.ToleratesTaint (k8s.io/api/core/v1/toleration.go)."""
    eff = tol.get("effect") or ""
    if eff and eff != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Equal":
        return (tol.get("value") or "") == (taint.get("value") or "")
    return op == "Exists"


def untolerated_taint(taints, tolerations, effects=("NoSchedule", "NoExecute")):
    """v1helper.FindMatchingUntoleratedTaint: the first taint (in the node's
    order) with one of `effects` that no toleration tolerates, or None."""
    for t in taints or ():
        if t.get("effect") not in effects:
            continue
        if not any(tolerates(tol, t) for tol in tolerations or ()):
            return t
    return None


def _req_match(req, value, present):
    op = req.get("operator")
    vals = req.get("values") or []
    if op == "In":
        return present and value in vals
    if op == "NotIn":
        return not present or value not in vals
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(vals) != 1:
            return False
        try:
            a, b = int(value), int(vals[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term, labels, name):
    """nodeaffinity.nodeSelectorTerm: every matchExpression on the labels and
    every matchField (metadata.name, In/NotIn) on the name; a term with neither
    matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    for r in exprs:
        k = r.get("key")
        if not _req_match(r, labels.get(k), k in labels):
            return False
    for r in fields:
        if r.get("key") != "metadata.name" or r.get("operator") not in ("In", "NotIn"):
            return False
        if not _req_match(r, name, True):
            return False
    return True


class NodeMatcher:
    """nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): spec.nodeSelector
    (every pair) AND any of the required node affinity terms."""

    __slots__ = ("selector", "terms")

    def __init__(self, pod):
        spec = pod.get("spec") or {}
        self.selector = list((spec.get("nodeSelector") or {}).items())
        req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
               .get("requiredDuringSchedulingIgnoredDuringExecution"))
        self.terms = None if req is None else (req.get("nodeSelectorTerms") or [])

    def match(self, labels, name):
        for k, v in self.selector:
            if labels.get(k) != v:
                return False
        if self.terms is None:
            return True
        return any(term_matches(t, labels, name) for t in self.terms)


# ---------------------------------------------------------------------------
# API client.

class ApiClient:
    """HTTPS client of the fake API server in DIR; one keep-alive connection
    per thread. Methods return (status, decoded JSON or text)."""

    def __init__(self, d, timeout=60):
        self.dir = d
        with open(os.path.join(d, "apiserver.port")) as f:
            self.port = int(f.read().strip())
        with open(os.path.join(d, "apiserver.token")) as f:
            self.token = f.read().strip()
        self.ctx = ssl.create_default_context(cafile=os.path.join(d, "apiserver-ca.crt"))
        self.timeout = timeout
        self.local = threading.local()
        self.lock = threading.Lock()
        self.counts = collections.Counter()

    def connect(self, timeout=None):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                           timeout=self.timeout if timeout is None else timeout)

    def headers(self):
        return {"Authorization": "Bearer " + self.token, "Accept": "application/json"}

    def request(self, method, path, body=None, ctype="application/json"):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        h = self.headers()
        if data is not None:
            h["Content-Type"] = ctype
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connect()
            try:
                conn.request(method, path, body=data, headers=h)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
        with self.lock:
            self.counts["%s %d" % (method, resp.status // 100)] += 1
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def patch(self, path, body, ctype="application/merge-patch+json"):
        return self.request("PATCH", path, body, ctype)

    def delete(self, path, body=None):
        return self.request("DELETE", path, body)


def obj_key(o):
    md = o.get("metadata") or {}
    ns = md.get("namespace")
    return "%s/%s" % (ns, md.get("name")) if ns else md.get("name")


class Informer:
    """A reflector + store (client-go tools/cache): LIST in pages, then WATCH
    from the list's resourceVersion with bookmarks, resuming from the last seen
    version and relisting on 410 Gone. `handler(type, obj, old)` runs in the
    informer's thread for ADDED / MODIFIED / DELETED; after the first list it is
    called once with ("SYNCED", None, None)."""

    def __init__(self, api, path, handler, params="", name="informer", stop=None):
        self.api = api
        self.path = path
        self.params = params
        self.handler = handler
        self.name = name
        self.store = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.stop = stop or threading.Event()
        self.rv = None
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _url(self, extra):
        q = "&".join(p for p in (self.params, extra) if p)
        return self.path + ("?" + q if q else "")

    def list(self):
        items, cont, rv = [], None, None
        while True:
            q = "limit=500" + ("&continue=" + urllib.parse.quote(cont) if cont else "")
            st, body = self.api.get(self._url(q))
            if st != 200:
                raise RuntimeError("list %s: %s %s" % (self.path, st, str(body)[:200]))
            items.extend(body.get("items") or [])
            if rv is None:
                rv = body["metadata"]["resourceVersion"]
            cont = body["metadata"].get("continue")
            if not cont:
                return items, rv

    def replace(self, items, rv):
        new = {obj_key(o): o for o in items}
        with self.lock:
            old = self.store
            self.store = new
            self.rv = rv
        for k, o in new.items():
            prev = old.get(k)
            if prev is None:
                self.handler("ADDED", o, None)
            elif (prev.get("metadata") or {}).get("resourceVersion") != (o.get("metadata") or {}).get("resourceVersion"):
                self.handler("MODIFIED", o, prev)
        for k, o in old.items():
            if k not in new:
                self.handler("DELETED", o, o)

    def run(self):
        backoff = 0.2
        need_list = True
        while not self.stop.is_set():
            try:
                if need_list:
                    items, rv = self.list()
                    self.replace(items, rv)
                    need_list = False
                    if not self.synced.is_set():
                        self.synced.set()
                        self.handler("SYNCED", None, None)
                need_list = self.watch()
                backoff = 0.2
            except Exception as e:  # the API server restarting, a test tearing down
                if self.stop.is_set():
                    return
                log(self.name, "watch %s: %s; retrying" % (self.path, e))
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def watch(self):
        """Returns True when a relist is needed (410)."""
        conn = self.api.connect(timeout=90)
        try:
            conn.request("GET", self._url("watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion=%s"
                                          % self.rv), headers=self.api.headers())
            resp = conn.getresponse()
            if resp.status == 410:
                resp.read()
                return True
            if resp.status != 200:
                raise RuntimeError("watch %s: HTTP %d %s" % (self.path, resp.status, resp.read()[:200]))
            while not self.stop.is_set():
                line = resp.readline()
                if not line:
                    return False
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                t, o = ev.get("type"), ev.get("object") or {}
                if t == "ERROR":
                    return True         # 410 Expired (or anything else): list again
                rv = (o.get("metadata") or {}).get("resourceVersion")
                if t == "BOOKMARK":
                    self.rv = rv
                    continue
                k = obj_key(o)
                with self.lock:
                    prev = self.store.get(k)
                    if t == "DELETED":
                        self.store.pop(k, None)
                    else:
                        self.store[k] = o
                    self.rv = rv
                self.handler(t, o, prev)
            return False
        finally:
            conn.close()

    def get(self, key):
        with self.lock:
            return self.store.get(key)

    def items(self):
        with self.lock:
            return list(self.store.values())


# ---------------------------------------------------------------------------
# Timeline: entries the simulators add to the API server's /_sim/timeline.

class TimelineClient:
    """Posts timeline entries in batches from a background thread (bounded:
    when the API server is away, the oldest entries are dropped)."""

    def __init__(self, api, source, limit=50000):
        self.api = api
        self.source = source
        self.q = collections.deque(maxlen=limit)
        self.cond = threading.Condition()
        self.stopped = False
        self.enabled = True
        threading.Thread(target=self.run, name="timeline", daemon=True).start()

    def add(self, kind, key, event, t=None, **detail):
        if not self.enabled:
            return
        e = {"kind": kind, "key": key, "event": event, "time": time.time() if t is None else t,
             "source": self.source}
        if detail:
            e["detail"] = detail
        with self.cond:
            self.q.append(e)
            self.cond.notify()

    def run(self):
        while True:
            with self.cond:
                while not self.q and not self.stopped:
                    self.cond.wait()
                if self.stopped and not self.q:
                    return
            time.sleep(0.05)        # let a burst gather into one request
            with self.cond:
                batch = list(self.q)
                self.q.clear()
            try:
                st, body = self.api.post("/_sim/timeline", {"entries": batch})
                if st == 404:
                    self.enabled = False        # an API server without a timeline
            except Exception:
                pass

    def flush(self, timeout=5.0):
        deadline = time.time() + timeout
        while self.q and time.time() < deadline:
            time.sleep(0.02)


# ---------------------------------------------------------------------------
# Timed work on one thread.

class Loop:
    """A single thread that runs callables: posted ones in order, timed ones
    when due. Simulated components keep their state on this thread, so they
    need no locks of their own."""

    def __init__(self, name):
        self.name = name
        self.q = queue.SimpleQueue()
        self.timers = []
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def post(self, fn, *args):
        self.q.put((fn, args))

    def at(self, when, fn, *args):
        """Runs fn(*args) at monotonic time `when` (from the loop's thread only)."""
        import heapq
        self.seq += 1
        heapq.heappush(self.timers, (when, self.seq, fn, args))

    def after(self, delay, fn, *args):
        self.at(time.monotonic() + max(0.0, delay), fn, *args)

    def run(self):
        import heapq
        while not self.stop.is_set():
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, fn, args = heapq.heappop(self.timers)
                self._call(fn, args)
                now = time.monotonic()
            wait = min(self.timers[0][0] - now, 0.5) if self.timers else 0.5
            try:
                fn, args = self.q.get(timeout=max(0.0, wait))
            except queue.Empty:
                continue
            self._call(fn, args)
            # Drain what is queued before looking at timers again.
            for _ in range(1000):
                try:
                    fn, args = self.q.get_nowait()
                except queue.Empty:
                    break
                self._call(fn, args)

    def _call(self, fn, args):
        try:
            fn(*args)
        except Exception:
            import traceback
            log(self.name, "error in %s:\n%s" % (getattr(fn, "__name__", fn), traceback.format_exc()))

    def start(self):
        self.thread.start()
        return self


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
