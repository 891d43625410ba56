#!/usr/bin/env python3
"""Benchmark of the fake API server at the scale of the Stratos benchmark:
bulk-load N nodes and M pods through /_sim/bulk, then LIST them in pages.

    python3 tests/sim/bench_apiserver.py [--nodes 5000] [--pods 50000] [--page 500]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import Client, Server  # noqa: E402


def node(i):
    name = "node-%05d" % i
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "stratos.sh/pool": "pool-%d" % (i % 10),
                                                  "stratos.sh/state": "running"}},
            "spec": {"providerID": "aws:///us-east-1a/i-%017x" % i},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.32.4"}}}


def pod(i, nodes):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-%06d" % i, "namespace": "default", "labels": {"app": "app-%d" % (i % 100)}},
            "spec": {"nodeName": "node-%05d" % (i % nodes), "containers": [{
                "name": "c", "image": "registry.example/app:1.0",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def raw_pages(c, path, page):
    conn = c.connect()
    n, size, cont = 0, 0, None
    while True:
        p = "%s?limit=%d%s" % (path, page, "&continue=" + cont if cont else "")
        conn.request("GET", p, headers=c.headers())
        raw = conn.getresponse().read()
        n += 1
        size += len(raw)
        i = raw.find(b'"continue":"')
        if i < 0:
            break
        cont = raw[i + 12:raw.index(b'"', i + 12)].decode()
    conn.close()
    return n, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=50000)
    ap.add_argument("--page", type=int, default=500)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="apiserver-bench-")
    srv = Server(os.path.join(tmp, "sim"), "--quiet")
    try:
        c = Client(os.path.join(tmp, "sim"), timeout=600)
        objs = [node(i) for i in range(a.nodes)] + [pod(i, a.nodes) for i in range(a.pods)]
        body = json.dumps(objs).encode()
        t = time.time()
        st, r = c.post("/_sim/bulk", body)
        print("bulk load %d nodes + %d pods (%.1f MB): %.2f s (HTTP %d, created %d, failed %d)"
              % (a.nodes, a.pods, len(body) / 1e6, time.time() - t, st, r["created"], r["failed"]))
        for label in ("first (serializes)", "second (cached JSON)"):
            t = time.time()
            n, size = raw_pages(c, "/api/v1/pods", a.page)
            print("LIST pods, %d pages of %d, %s: %.2f s, %.1f MB" % (n, a.page, label, time.time() - t, size / 1e6))
        t = time.time()
        items, pages = c.list_all("/api/v1/pods", limit=a.page)
        names = {i["metadata"]["name"] for i in items}
        print("LIST pods with JSON decoding in the client: %.2f s, %d items, %d distinct"
              % (time.time() - t, len(items), len(names)))
        t = time.time()
        items, pages = c.list_all("/api/v1/nodes", limit=a.page)
        print("LIST nodes, %d pages: %.2f s, %d items" % (pages, time.time() - t, len(items)))
        t = time.time()
        st, b = c.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-00007")
        print("LIST pods fieldSelector=spec.nodeName (indexed): %.3f s, %d items" % (time.time() - t, len(b["items"])))
        with open("/proc/%d/status" % srv.proc.pid) as f:
            rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
        print("server RSS: %d MB" % (int(rss) // 1024))
        c.close()
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
