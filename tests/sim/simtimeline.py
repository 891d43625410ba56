"""The simulated cluster's timeline (GET/POST/DELETE /_sim/timeline on the fake
API server): when each step of a pod's and a node's life happened.

The API server records what it can see in its own commits (a pod created,
bound, its containers started, Running, Ready; a Node registered, its Ready
and NetworkUnavailable conditions, each taint added or removed, its
stratos.sh/state label); the simulators POST what only they see (schedsim:
each scheduling attempt with its extender calls and their durations;
kubeletsim: StartInstances/StopInstances seen, instance running/stopped,
kubelet started, image pulls). Bounded: at most MAX_OBJECTS records (least
recently updated dropped first), each keeping its first KEEP_FIRST and last
events up to MAX_EVENTS.
"""

import collections
import datetime
import threading
import time

MAX_OBJECTS = 60000
MAX_EVENTS = 200
KEEP_FIRST = 20
MAX_POST_ENTRIES = 20000


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return c.get("status")
    return None


def _taints(obj):
    out = []
    for t in ((obj or {}).get("spec") or {}).get("taints") or ():
        out.append("%s%s:%s" % (t.get("key"), "=" + t["value"] if t.get("value") else "", t.get("effect")))
    return out


def _running(obj):
    """{container name: (restartCount, startedAt)} of the running containers."""
    out = {}
    for cs in ((obj or {}).get("status") or {}).get("containerStatuses") or ():
        run = (cs.get("state") or {}).get("running")
        if run is not None:
            out[cs.get("name")] = (cs.get("restartCount", 0), run.get("startedAt"))
    return out


class Timeline:
    def __init__(self):
        self.lock = threading.Lock()
        self.records = collections.OrderedDict()    # (kind, key) -> record

    def _record(self, kind, key, uid=None):
        k = (kind, key)
        r = self.records.get(k)
        if r is None or (uid and r.get("uid") and r["uid"] != uid):
            r = {"kind": kind, "key": key, "uid": uid, "events": []}
            self.records[k] = r
            while len(self.records) > MAX_OBJECTS:
                self.records.popitem(last=False)
        else:
            self.records.move_to_end(k)
            if uid and not r.get("uid"):
                r["uid"] = uid
        return r

    @staticmethod
    def _append(r, t, event, source, detail):
        e = {"t": t, "event": event, "source": source}
        if detail:
            e["detail"] = detail
        ev = r["events"]
        ev.append(e)
        if len(ev) > MAX_EVENTS:
            del ev[KEEP_FIRST]

    # ---- what the API server sees (called from Cluster._commit, under its lock)

    def observe(self, kind, etype, obj, prev):
        t = time.time()
        md = obj.get("metadata") or {}
        ns = md.get("namespace")
        key = "%s/%s" % (ns, md.get("name")) if ns else md.get("name")
        uid = md.get("uid")
        with self.lock:
            if kind == "Pod":
                self._pod(t, key, uid, etype, obj, prev)
            elif kind == "Node":
                self._node(t, key, uid, etype, obj, prev)

    def _pod(self, t, key, uid, etype, obj, prev):
        ev = []
        spec = obj.get("spec") or {}
        if etype == "ADDED":
            d = {"schedulerName": spec.get("schedulerName")}
            if spec.get("nodeName"):
                d["nodeName"] = spec["nodeName"]
            ev.append(("created", d))
            prev = None
        elif etype == "DELETED":
            ev.append(("deleted", None))
        if etype != "DELETED":
            pspec = (prev or {}).get("spec") or {}
            if spec.get("nodeName") and not pspec.get("nodeName") and prev is not None:
                ev.append(("bound", {"node": spec["nodeName"]}))
            now_run, was_run = _running(obj), _running(prev)
            for name, v in now_run.items():
                if was_run.get(name) != v:
                    ev.append(("container started", {"container": name, "restartCount": v[0]}))
            phase = (obj.get("status") or {}).get("phase")
            pphase = ((prev or {}).get("status") or {}).get("phase")
            if phase != pphase and prev is not None and phase:
                ev.append((phase, None))
            rd, prd = _cond(obj, "Ready"), _cond(prev, "Ready")
            if rd != prd and prev is not None and rd is not None:
                ev.append(("Ready" if rd == "True" else "not Ready", None))
            if (obj.get("metadata") or {}).get("deletionTimestamp") and \
                    not ((prev or {}).get("metadata") or {}).get("deletionTimestamp"):
                ev.append(("deleting", None))
        if not ev:
            return
        r = self._record("pod", key, uid)
        if spec.get("nodeName"):
            r["node"] = spec["nodeName"]
        for name, d in ev:
            self._append(r, t, name, "apiserver", d)

    def _node(self, t, key, uid, etype, obj, prev):
        ev = []
        if etype == "ADDED":
            ev.append(("registered", {"providerID": (obj.get("spec") or {}).get("providerID")}))
            prev = None
        elif etype == "DELETED":
            ev.append(("deleted", None))
        else:
            for ctype in ("Ready", "NetworkUnavailable"):
                a, b = _cond(prev, ctype), _cond(obj, ctype)
                if a != b and b is not None:
                    ev.append(("%s=%s" % (ctype, b), None))
            pl = ((prev or {}).get("metadata") or {}).get("labels") or {}
            nl = (obj.get("metadata") or {}).get("labels") or {}
            if pl.get("stratos.sh/state") != nl.get("stratos.sh/state"):
                ev.append(("state %s" % nl.get("stratos.sh/state"), None))
            pu = bool(((prev or {}).get("spec") or {}).get("unschedulable"))
            nu = bool((obj.get("spec") or {}).get("unschedulable"))
            if pu != nu:
                ev.append(("cordoned" if nu else "uncordoned", None))
        if etype != "DELETED":
            if etype == "ADDED":
                for ctype in ("Ready", "NetworkUnavailable"):
                    b = _cond(obj, ctype)
                    if b is not None:
                        ev.append(("%s=%s" % (ctype, b), None))
            old, new = _taints(prev), _taints(obj)
            for x in new:
                if x not in old:
                    ev.append(("taint added %s" % x, None))
            for x in old:
                if x not in new:
                    ev.append(("taint removed %s" % x, None))
        if not ev:
            return
        r = self._record("node", key, uid)
        pid = (obj.get("spec") or {}).get("providerID") or ""
        if pid.startswith("aws:///"):
            r["instance"] = pid.rsplit("/", 1)[-1]
        for name, d in ev:
            self._append(r, t, name, "apiserver", d)

    # ---- what the simulators post

    def add(self, entries):
        n = 0
        with self.lock:
            for e in entries[:MAX_POST_ENTRIES]:
                if not isinstance(e, dict) or e.get("kind") not in ("pod", "node") or not e.get("key") \
                        or not e.get("event"):
                    continue
                try:
                    t = float(e.get("time") or time.time())
                except (TypeError, ValueError):
                    t = time.time()
                r = self._record(e["kind"], str(e["key"]), e.get("uid"))
                d = e.get("detail") if isinstance(e.get("detail"), dict) else None
                if e["kind"] == "node" and d and d.get("instance"):
                    r["instance"] = d["instance"]
                self._append(r, t, str(e["event"]), str(e.get("source") or "client"), d)
                n += 1
        return n

    def query(self, q):
        kind = q.get("kind")
        key = q.get("key")
        since = float(q.get("since") or 0)
        limit = int(q.get("limit") or MAX_OBJECTS)
        out = {"now": time.time(), "pods": [], "nodes": []}
        with self.lock:
            recs = list(self.records.values())
            for r in recs:
                if kind and r["kind"] != kind.rstrip("s"):
                    continue
                if key and r["key"] != key:
                    continue
                evs = [dict(e, time=_iso(e["t"])) for e in r["events"] if e["t"] >= since]
                if not evs:
                    continue
                evs.sort(key=lambda e: e["t"])
                item = {k: v for k, v in r.items() if k not in ("events", "kind")}
                item["events"] = evs
                (out["pods"] if r["kind"] == "pod" else out["nodes"]).append(item)
        for k in ("pods", "nodes"):
            out[k].sort(key=lambda i: i["events"][0]["t"])
            del out[k][limit:]
        return out

    def control(self, method, q, req):
        """(status, body) for /_sim/timeline."""
        if method == "GET":
            return 200, self.query(q)
        if method == "POST":
            entries = req.get("entries") if isinstance(req, dict) else req
            if not isinstance(entries, list):
                return 400, {"error": 'POST {"entries": [{"kind": "pod"|"node", "key": ..., "event": ..., '
                                      '"time": epoch, "detail": {...}}]}'}
            return 200, {"added": self.add(entries)}
        if method == "DELETE":
            with self.lock:
                self.records.clear()
            return 200, {"cleared": True}
        return 405, {"error": "GET, POST or DELETE"}
