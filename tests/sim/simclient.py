"""Small HTTPS client for the fake API server, shared by the simulator tests
and benchmarks (stdlib only)."""

import http.client
import json
import os
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class Client:
    """One keep-alive HTTPS connection to the fake API server in DIR."""

    def __init__(self, d, token=None, cert=None, timeout=60):
        self.dir = d
        with open(os.path.join(d, "apiserver.port")) as f:
            self.port = int(f.read().strip())
        if token is None and cert is None:
            with open(os.path.join(d, "apiserver.token")) as f:
                token = f.read().strip()
        self.token = token
        self.ctx = ssl.create_default_context(cafile=os.path.join(d, "apiserver-ca.crt"))
        if cert:
            self.ctx.load_cert_chain(*cert)
        self.timeout = timeout
        self.conn = None

    def connect(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=self.timeout)

    def headers(self, extra=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def request(self, method, path, body=None, ctype="application/json", headers=None):
        """Returns (status, decoded JSON or text)."""
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
        h = self.headers(headers)
        if data is not None:
            h["Content-Type"] = ctype
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self.connect()
            try:
                self.conn.request(method, path, body=data, headers=h)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def list_all(self, path, limit=500, sep="?"):
        """Follows continue tokens; returns (items, number of pages)."""
        items, pages, cont = [], 0, None
        while True:
            p = "%s%slimit=%d" % (path, sep, limit)
            if cont:
                p += "&continue=" + cont
            st, body = self.get(p)
            if st != 200:
                raise RuntimeError("list %s: %s %s" % (p, st, body))
            pages += 1
            items.extend(body["items"])
            cont = body["metadata"].get("continue")
            if not cont:
                return items, pages

    def watch(self, path, timeout=30):
        """Opens a watch on its own connection; returns a Watch."""
        return Watch(self, path, timeout)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Watch:
    def __init__(self, client, path, timeout):
        self.conn = client.connect()
        self.conn.timeout = timeout
        self.conn.request("GET", path, headers=client.headers())
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self):
        """Next event dict, or None at end of stream."""
        line = self.resp.readline()
        if not line:
            return None
        return json.loads(line)

    def close(self):
        self.conn.close()


class Server:
    """Starts tests/sim/apiserver.py on a fresh directory."""

    def __init__(self, d, *args):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.log = open(os.path.join(d, "apiserver.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "apiserver.py"), "--dir", d] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        port = os.path.join(d, "apiserver.port")
        while not os.path.exists(port):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("apiserver did not start; see %s/apiserver.log" % d)
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
