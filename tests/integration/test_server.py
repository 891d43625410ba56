"""stratosd serve as a network server: TLS versions, rotation, client certificates,
hostile input, connection pressure, shutdown and configuration errors.

Runs the real binary (env STRATOSD) with certificates made for the run.
"""

import asyncio
import json
import os
import resource
import signal
import socket
import ssl
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stratos_testlib as tl  # noqa: E402

MUTATE = "/admission/mutate-pod"
FIXTURES = os.path.join(tl.REPO, "tests", "fixtures")


def fixture_bytes(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


def old_tls_client_works(certs, version):
    """True when a client pinned to version completes a handshake with a local
    Python server that allows it (so the client side is capable)."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(certs["tls.crt"], certs["tls.key"])
    sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    sctx.minimum_version = version
    sctx.maximum_version = version
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    result = {}

    def serve():
        try:
            conn, _ = lsock.accept()
            with sctx.wrap_socket(conn, server_side=True) as c:
                result["server"] = c.version()
        except (OSError, ssl.SSLError) as e:
            result["error"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        cctx = tl.tls_context(verify=False, min_version=version, max_version=version,
                              seclevel0=True)
        with tl.raw_tls_socket(lsock.getsockname()[1], cctx) as c:
            ok = c.version() is not None
    except (OSError, ssl.SSLError):
        ok = False
    t.join(5)
    lsock.close()
    return ok


class ServerTestCase(unittest.TestCase):
    client_ca = False
    extra = ()

    def setUp(self):
        self.dir = tl.tempdir(self)
        self.certs = tl.make_certs(self.dir)
        self.d = self.start()

    def start(self, *extra, **kw):
        d = tl.Stratosd(tl.serve_args(self.certs, *(tuple(self.extra) + extra),
                                      client_ca=kw.pop("client_ca", self.client_ca)), **kw)
        self.addCleanup(self.stop_clean, d)
        return d

    def stop_clean(self, d):
        """Every test ends with a clean SIGTERM exit: whatever the test threw at the
        daemon, it still shuts down with status 0, and under ASan the leak check
        that runs at exit finds nothing."""
        try:
            if d.alive():
                rc, _ = d.stop()
                self.assertEqual(rc, 0, "stratosd exited with %d after SIGTERM" % rc)
            report = [l for l in d.raw if "Sanitizer" in l or "runtime error:" in l]
            self.assertEqual(report, [], "\n".join(d.raw[-40:]))
        finally:
            d.__exit__()

    def ctx(self, **kw):
        return tl.tls_context(ca=self.certs["ca.crt"], **kw)

    def get(self, path, port=None, **kw):
        return tl.https_request(port or self.d.https_port, "GET", path, ctx=self.ctx(), **kw)

    def post(self, path, body, **kw):
        return tl.https_request(self.d.https_port, "POST", path, body=body, ctx=self.ctx(), **kw)

    def assert_healthy(self):
        self.assertTrue(self.d.alive(), "stratosd died:\n" + "\n".join(self.d.raw[-20:]))
        self.assertEqual(self.get("/healthz").status, 200)


class TestTLSVersions(ServerTestCase):
    def test_tls12_and_tls13_accepted(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version.name):
                ctx = self.ctx(min_version=version, max_version=version)
                with tl.raw_tls_socket(self.d.https_port, ctx, host="localhost") as s:
                    self.assertEqual(s.version(), version.name.replace("_", "."))
                r = tl.https_request(self.d.https_port, "GET", "/healthz", ctx=ctx)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers.get("Content-Type"), "application/json")

    def test_tls10_and_tls11_refused(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version=version.name):
                # Control: this client really speaks the old version (to a local server
                # that allows it), so a failure against stratosd is stratosd refusing.
                if not old_tls_client_works(self.certs, version):
                    self.skipTest("the local OpenSSL cannot speak %s at all" % version.name)
                ctx = tl.tls_context(verify=False, min_version=version, max_version=version,
                                     seclevel0=True)
                with self.assertRaises((ssl.SSLError, ConnectionResetError)) as cm:
                    with tl.raw_tls_socket(self.d.https_port, ctx):
                        pass
                self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception))
        self.assert_healthy()

    def test_openssl_cli_tls1_refused(self):
        import shutil
        import subprocess
        if not shutil.which("openssl"):
            self.skipTest("no openssl CLI")
        ok = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.d.https_port,
                             "-tls1_2", "-brief"], input=b"", capture_output=True, timeout=10)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        bad = subprocess.run(["openssl", "s_client", "-connect",
                              "127.0.0.1:%d" % self.d.https_port, "-tls1", "-cipher",
                              "DEFAULT:@SECLEVEL=0", "-brief"], input=b"", capture_output=True,
                             timeout=10)
        self.assertNotEqual(bad.returncode, 0)
        out = bad.stderr.lower() + bad.stdout.lower()
        self.assertNotIn(b"protocol version: tlsv1\n", out)
        self.assertRegex(out, b"protocol version|unexpected eof|handshake failure")
        self.assert_healthy()

    def test_plain_http_on_tls_port(self):
        with socket.create_connection(("127.0.0.1", self.d.https_port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            # Closed (possibly after a TLS alert), never an HTTP 200 in clear text.
            self.assertNotIn(b"200 OK", data)
        self.assert_healthy()


class TestRotation(ServerTestCase):
    def serial_of_new_connection(self):
        with tl.raw_tls_socket(self.d.https_port, self.ctx(), host="localhost") as s:
            return tl.cert_serial_of_der(s.getpeercert(binary_form=True))

    def test_rotation_keeps_live_connections(self):
        old = self.serial_of_new_connection()
        import http.client
        live = http.client.HTTPSConnection("localhost", self.d.https_port, context=self.ctx(),
                                           timeout=10)
        self.addCleanup(live.close)
        self.assertEqual(tl.https_request(0, "GET", "/healthz", conn=live).status, 200)
        live_serial = tl.cert_serial_of_der(live.sock.getpeercert(binary_form=True))
        self.assertEqual(live_serial, old)

        new = tl.make_leaf(self.dir, "ca", self.certs["tls.crt"], self.certs["tls.key"],
                           "rotated")
        tl.wait_for(lambda: self.serial_of_new_connection() == new, 10,
                    what="new connections to see the rotated certificate")
        self.d.wait_log(lambda o: o.get("serial", "").lstrip("0") == format(new, "x"), 5)
        # The connection made before the rotation is still served, on the old session.
        for _ in range(3):
            self.assertEqual(tl.https_request(0, "GET", "/healthz", conn=live).status, 200)
        self.assertEqual(tl.cert_serial_of_der(live.sock.getpeercert(binary_form=True)), old)

    def test_half_written_rotation_keeps_old_pair(self):
        old = self.serial_of_new_connection()
        start = len(self.d.logs)
        # A key that is not the certificate's, then a truncated certificate.
        os.mkdir(os.path.join(self.dir, "other"))
        other = tl.make_certs(os.path.join(self.dir, "other"), use_gen_sh=False)
        with open(other["tls.key"], "rb") as f:
            key = f.read()
        with open(self.certs["tls.key"] + ".tmp", "wb") as f:
            f.write(key)
        os.replace(self.certs["tls.key"] + ".tmp", self.certs["tls.key"])
        self.d.wait_log(lambda o: o.get("level") == "error" and "does not match" in o["msg"], 10,
                        start)
        self.assertEqual(self.serial_of_new_connection(), old)
        with open(self.certs["tls.crt"], "rb") as f:
            pem = f.read()
        with open(self.certs["tls.crt"], "wb") as f:
            f.write(pem[: len(pem) // 2])
        start = len(self.d.logs)
        self.d.wait_log(lambda o: o.get("level") == "error" and "reload failed" in o["msg"], 10,
                        start)
        self.assertEqual(self.serial_of_new_connection(), old)
        self.assert_healthy()
        # A complete, matching pair is taken.
        new = tl.make_leaf(self.dir, "ca", self.certs["tls.crt"], self.certs["tls.key"], "fixed")
        tl.wait_for(lambda: self.serial_of_new_connection() == new, 10, what="the fixed pair")

    def test_sighup_forces_reload(self):
        start = len(self.d.logs)
        self.d.send_signal(signal.SIGHUP)
        self.d.wait_log(lambda o: "serving certificate loaded" in o.get("msg", ""), 10, start)
        self.assert_healthy()


class TestClientCA(ServerTestCase):
    client_ca = True

    def test_admission_paths_need_no_client_certificate(self):
        # The API server presents no certificate: the handshake must not require one.
        self.assertEqual(self.get("/healthz").status, 200)
        self.assertEqual(self.get("/readyz").status, 200)

    def test_client_certificate_accepted_in_handshake(self):
        ctx = self.ctx(cert=self.certs["client.crt"], key=self.certs["client.key"])
        r = tl.https_request(self.d.https_port, "GET", "/healthz", ctx=ctx)
        self.assertEqual(r.status, 200)

    def test_unreadable_client_ca_is_a_config_error(self):
        p = tl.run_stratosd(tl.serve_args(self.certs) + ["--client-ca", "/nonexistent/ca.crt"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--client-ca", p.stderr)


class TestHostileClients(ServerTestCase):
    extra = ("--idle-timeout", "2s")

    def test_slowloris_is_cut_and_others_are_served(self):
        ctx = self.ctx()
        s = tl.raw_tls_socket(self.d.https_port, ctx, host="localhost", timeout=10)
        self.addCleanup(s.close)
        request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        t0 = time.monotonic()
        cut = None
        for i, byte in enumerate(request):
            try:
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                try:
                    data = s.recv(1024)
                    if data == b"":
                        cut = time.monotonic() - t0
                        break
                except socket.timeout:
                    pass
            except (OSError, ssl.SSLError):
                cut = time.monotonic() - t0
                break
            # Meanwhile other clients are answered at once.
            t1 = time.monotonic()
            self.assertEqual(self.get("/healthz").status, 200)
            self.assertLess(time.monotonic() - t1, 1.0)
        self.assertIsNotNone(cut, "a client sending one byte per second was never cut off")
        self.assertLess(cut, 2 + 2.5)
        self.assert_healthy()

    def test_idle_keepalive_connection_closed(self):
        s = tl.raw_tls_socket(self.d.https_port, self.ctx(), host="localhost", timeout=10)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        self.assertEqual(s.recv(1), b"")
        self.assertLess(time.monotonic() - t0, 5)

class TestConnectionPressure(ServerTestCase):
    def test_thousand_concurrent_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        ctx = self.ctx()
        n = 1000

        async def one(i, opened, go):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.d.https_port,
                                                           ssl=ctx, server_hostname="localhost")
            opened.append(i)
            await go.wait()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            return head.split(b"\r\n", 1)[0]

        async def main():
            opened, go = [], asyncio.Event()
            tasks = [asyncio.create_task(one(i, opened, go)) for i in range(n)]
            deadline = time.monotonic() + 60
            while len(opened) < n and time.monotonic() < deadline:
                if any(t.done() and t.exception() for t in tasks):
                    break
                await asyncio.sleep(0.05)
            gauge = metric_value(self.d.metrics_port, 'stratos_http_connections{server="https"}')
            go.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return gauge, results

        gauge, results = asyncio.run(asyncio.wait_for(main(), 120))
        errors = [r for r in results if isinstance(r, BaseException)]
        self.assertEqual(errors, [], "%d of %d failed, first: %r" % (len(errors), n,
                                                                     errors[:1]))
        self.assertTrue(all(r == b"HTTP/1.1 200 OK" for r in results))
        self.assertGreaterEqual(gauge, n)
        self.assert_healthy()

    def test_connection_limit(self):
        d = self.start("--max-connections", "5")
        ctx = self.ctx()
        held = [tl.raw_tls_socket(d.https_port, ctx, host="localhost") for _ in range(5)]
        self.addCleanup(lambda: [s.close() for s in held])
        # A sixth connection is not served while five are open...
        with self.assertRaises((ssl.SSLError, OSError)):
            s = tl.raw_tls_socket(d.https_port, ctx, host="localhost", timeout=2)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            if s.recv(100) == b"":
                raise OSError("closed")
        # ...and is once one of them closes.
        held.pop().close()
        tl.wait_for(lambda: tl.https_request(d.https_port, "GET", "/healthz", ctx=ctx).status
                    == 200, 5, what="a free slot")
        self.assertTrue(d.alive())



def metric_value(port, series):
    text = tl.http_request(port, "GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


class TestMetricsPort(ServerTestCase):
    def test_metrics_health_ready(self):
        r = tl.http_request(self.d.metrics_port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(tl.http_request(self.d.metrics_port, "GET", "/healthz").status, 200)
        self.assertEqual(tl.http_request(self.d.metrics_port, "GET", "/readyz").status, 200)
        self.assertEqual(tl.http_request(self.d.metrics_port, "POST", "/metrics").status, 405)
        self.assertEqual(tl.http_request(self.d.metrics_port, "GET", "/admission/x").status, 404)
        # /metrics is on the metrics port only.
        self.assertEqual(self.get("/metrics").status, 404)

    def test_metrics_text_is_prometheus_exposition_format(self):
        # The whole body through the Prometheus client library's own parser (Debian's
        # python3-prometheus-client): a malformed line raises, and types survive.
        from prometheus_client.parser import text_string_to_metric_families
        self.assertEqual(self.get("/healthz").status, 200)
        tl.wait_for(lambda: metric_value(
            self.d.metrics_port, 'stratos_http_requests_total{handler="/healthz",code="200"}')
            >= 1, 5, what="the counter")
        text = tl.http_request(self.d.metrics_port, "GET", "/metrics").body.decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        # The parser names a counter family without its _total suffix.
        self.assertEqual(families["stratos_http_requests"].type, "counter")
        self.assertEqual(families["stratos_http_request_seconds"].type, "histogram")
        samples = {s.name for s in families["stratos_http_request_seconds"].samples}
        self.assertTrue({"stratos_http_request_seconds_bucket", "stratos_http_request_seconds_sum",
                         "stratos_http_request_seconds_count"} <= samples, samples)
        buckets = [s for s in families["stratos_http_request_seconds"].samples
                   if s.name.endswith("_bucket") and s.labels.get("handler") == "/healthz"]
        self.assertEqual(buckets[-1].labels["le"], "+Inf")
        self.assertGreaterEqual(buckets[-1].value, 1)

    def test_request_metrics_move(self):
        before = metric_value(self.d.metrics_port,
                              'stratos_http_requests_total{handler="/healthz",code="200"}')
        for _ in range(3):
            self.get("/healthz")
        tl.wait_for(lambda: metric_value(
            self.d.metrics_port, 'stratos_http_requests_total{handler="/healthz",code="200"}')
            >= before + 3, 5, what="the counter")
        text = tl.http_request(self.d.metrics_port, "GET", "/metrics").body.decode()
        self.assertIn('stratos_http_request_seconds_count{handler="/healthz"}', text)
        self.assertIn("stratos_tls_certificate_not_after_seconds", text)

    def test_metrics_port_body_cap(self):
        r = tl.http_request(self.d.metrics_port, "GET", "/metrics", body=b"x" * (128 * 1024))
        self.assertEqual(r.status, 413)


class TestLifecycle(ServerTestCase):
    def test_sigterm_exits_zero_promptly(self):
        rc, took = self.d.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "\n".join(self.d.raw[-20:]))
        self.assertLess(took, 3 * tl.wrapper_slowdown())
        self.assertTrue(any(o.get("msg") == "stopped" for o in self.d.logs))

    def test_sigint_exits_zero(self):
        rc, _ = self.d.stop(signal.SIGINT)
        self.assertEqual(rc, 0)

    def test_every_log_line_is_json(self):
        self.get("/healthz")
        self.d.stop()
        self.assertTrue(self.d.raw)
        for line in self.d.raw:
            obj = json.loads(line)
            self.assertIn("ts", obj)
            self.assertIn("level", obj)
            self.assertIn("msg", obj)

    def test_ipv6_loopback(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        d = tl.Stratosd(["--listen", "[::1]:0", "--metrics-listen", "127.0.0.1:0",
                         "--tls-cert", self.certs["tls.crt"], "--tls-key", self.certs["tls.key"]])
        self.addCleanup(d.__exit__)
        self.assertTrue(d.start_line["listen"].startswith("[::1]:"))
        r = tl.https_request(d.https_port, "GET", "/healthz", ctx=self.ctx(), host="::1")
        self.assertEqual(r.status, 200)
        self.assertEqual(d.stop()[0], 0)


class TestConfigErrors(unittest.TestCase):
    def setUp(self):
        self.dir = tl.tempdir(self)
        self.certs = tl.make_certs(self.dir, use_gen_sh=False)

    def expect_error(self, args, key, env=None):
        p = tl.run_stratosd(args, env=env)
        self.assertEqual(p.returncode, 2, "stdout=%r stderr=%r" % (p.stdout, p.stderr))
        self.assertIn(key, p.stderr)
        return p

    def test_bad_values_name_the_key(self):
        base = tl.serve_args(self.certs)
        self.expect_error(base + ["--max-body-bytes", "4x"], "--max-body-bytes")
        self.expect_error(base + ["--idle-timeout", "soon"], "--idle-timeout")
        self.expect_error(base + ["--threads", "0"], "--threads")
        self.expect_error(base + ["--bogus"], "--bogus")
        self.expect_error(base, "STRATOS_MAX_CONNECTIONS", env={"STRATOS_MAX_CONNECTIONS": "-1"})
        self.expect_error(["--listen", "8443", "--metrics-listen", "127.0.0.1:0",
                           "--insecure-http"], "--listen")
        self.expect_error(["--listen", "127.0.0.1:0", "--metrics-listen", "nope",
                           "--insecure-http"], "--metrics-listen")

    def test_help_prints_and_exits(self):
        # Even without the TLS flags serve needs: help is not a request to serve.
        p = tl.run_stratosd(["--help"], timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--tls-cert", p.stdout + p.stderr)
        self.assertNotIn("serving", p.stderr)

    def test_config_file_errors_name_the_key(self):
        path = os.path.join(self.dir, "config.yaml")
        with open(path, "w") as f:
            f.write("listen: 127.0.0.1:0\nmax-bodybytes: 10Mi\n")
        self.expect_error(["--config", path], "max-bodybytes")
        with open(path, "w") as f:
            f.write("idle-timeout: forever\n")
        self.expect_error(["--config", path], "idle-timeout")

    def test_tls_required(self):
        self.expect_error(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
                          "--tls-cert")
        self.expect_error(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--tls-cert", self.certs["tls.crt"]], "--tls-key")
        self.expect_error(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--tls-cert", "/nonexistent.crt", "--tls-key", self.certs["tls.key"]],
                          "--tls-cert")
        self.expect_error(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--tls-cert", self.certs["client.crt"], "--tls-key",
                           self.certs["tls.key"]], "does not match")
        self.expect_error(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--insecure-http", "--client-ca", self.certs["client-ca.crt"]],
                          "--client-ca")

    def test_precedence_flag_env_file(self):
        path = os.path.join(self.dir, "config.yaml")
        with open(path, "w") as f:
            f.write("max-body-bytes: 1Mi\nthreads: 3\nidle-timeout: 30s\n")
        d = tl.Stratosd(tl.serve_args(self.certs, "--config", path, "--max-body-bytes", "2Mi"),
                        env={"STRATOS_MAX_BODY_BYTES": "3Mi", "STRATOS_THREADS": "4"})
        self.addCleanup(d.__exit__)
        self.assertEqual(d.start_line["max_body_bytes"], 2 * 1024 * 1024)   # flag
        self.assertEqual(d.start_line["threads"], 4)                          # env over file
        self.assertEqual(d.stop()[0], 0)

    def test_insecure_http_for_tests(self):
        d = tl.Stratosd(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                         "--insecure-http"])
        self.addCleanup(d.__exit__)
        self.assertEqual(tl.http_request(d.https_port, "GET", "/healthz").status, 200)
        self.assertEqual(d.stop()[0], 0)

    def test_port_in_use(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        p = tl.run_stratosd(["--listen", "127.0.0.1:%d" % s.getsockname()[1],
                             "--metrics-listen", "127.0.0.1:0", "--insecure-http"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("Address already in use", p.stderr)
        self.assertIn("--listen", p.stderr)


def type_mutations(doc):
    """Yields (path, mutated document): every node replaced by values of other JSON types."""
    replacements = [None, True, 0, -1.5, "", "x" * 300, [], [1, "a"], {}, {"a": {"b": []}}]

    def kind(v):
        return type(v).__name__ if not isinstance(v, bool) else "bool"

    def walk(node, path):
        yield path, node
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, path + [i])

    for path, node in list(walk(doc, [])):
        if not path:
            continue
        for r in replacements:
            if kind(r) == kind(node):
                continue
            copy = json.loads(json.dumps(doc))
            target = copy
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = r
            yield path, copy


class TestAdmissionInput(ServerTestCase):
    """Hostile bodies on the admission routes: always an answer, never a crash."""

    extra = ("--pools-file", os.path.join(FIXTURES, "seed-examples.yaml"))

    def setUp(self):
        super().setUp()
        self.review = json.loads(fixture_bytes("admission", "pod-create-pool.json"))

    def test_mutate_pod_over_keepalive_with_query(self):
        import http.client
        conn = http.client.HTTPSConnection("localhost", self.d.https_port, context=self.ctx(),
                                           timeout=10)
        self.addCleanup(conn.close)
        for _ in range(3):
            r = tl.https_request(0, "POST", MUTATE + "?timeout=10s", body=self.review, conn=conn)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["Content-Type"], "application/json")
            reply = r.json()
            self.assertEqual(reply["kind"], "AdmissionReview")
            self.assertEqual(reply["response"]["uid"], self.review["request"]["uid"])
        r = tl.https_request(0, "GET", MUTATE, conn=conn)
        self.assertEqual(r.status, 405)
        for path in ("/admission/validate-nodepool", "/admission/validate-awsnodeclass"):
            self.assertEqual(self.get(path).status, 405)

    def test_pipelined_requests_in_one_write_are_all_answered(self):
        # The server reads ahead of GnuTLS: requests already in its buffer must
        # be served without waiting for more bytes from the client.
        raw = fixture_bytes("admission", "pod-create-pool.json")
        one = (b"POST " + MUTATE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nContent-Length: " +
               str(len(raw)).encode() + b"\r\n\r\n" + raw)
        health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        with tl.raw_tls_socket(self.d.https_port, self.ctx(), host="localhost", timeout=10) as s:
            # Many requests in one write: several TLS records in one segment,
            # and a mutate body (2.4 KB) split across reads of the buffer.
            s.sendall((one + health) * 20)
            data = b""
            deadline = time.monotonic() + 10
            while data.count(b"HTTP/1.1 200") < 40 and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(data.count(b"HTTP/1.1 200"), 40, data[-300:])
        self.assertEqual(data.count(b'"patchType":"JSONPatch"'), 20)

    def test_bodiless_and_full_replies_alternate_on_one_connection(self):
        # A response's header record waits for its body record (one write for
        # both); a HEAD reply has no body and must not be held back.
        import http.client
        conn = http.client.HTTPSConnection("localhost", self.d.https_port, context=self.ctx(),
                                           timeout=5)
        self.addCleanup(conn.close)
        for _ in range(3):
            for method, path in (("HEAD", "/healthz"), ("POST", MUTATE), ("HEAD", "/readyz"),
                                 ("GET", "/healthz"), ("GET", "/nope"), ("HEAD", "/healthz")):
                body = json.dumps(self.review) if method == "POST" else None
                conn.request(method, path, body=body,
                             headers={"Content-Type": "application/json"} if body else {})
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, 404 if path == "/nope" else 200, (method, path))
                self.assertEqual(len(data) > 0, method != "HEAD", (method, path))

    def test_malformed_json_is_400_with_reason(self):
        raw = fixture_bytes("admission", "pod-create-pool.json")
        bodies = {
            "truncated": raw[: len(raw) // 2],
            "empty": b"",
            "not UTF-8": raw.replace(b'"namespace": "ci"',
                                     b'"namespace": "' + bytes([0xff, 0xfe]) + b'"'),
            "invalid UTF-8 sequence": raw.replace(b'"namespace": "ci"',
                                                  b'"namespace": "' + bytes([0xc3, 0x28]) + b'"'),
            "top-level array": b"[" + raw + b"]",
            "nested 100000 deep": b"[" * 100000 + b"]" * 100000,
            "NUL in string": raw.replace(b'"namespace": "ci"', b'"namespace": "c\\u0000i"'),
            "huge integer": raw.replace(b'"namespace": "ci"', b'"namespace": ' + b"1" * 400),
        }
        for name, body in bodies.items():
            if name not in ("truncated", "empty", "top-level array", "nested 100000 deep"):
                self.assertNotEqual(body, raw, name)
        for path in (MUTATE, "/admission/validate-nodepool", "/admission/validate-awsnodeclass"):
            for name, body in bodies.items():
                with self.subTest(path=path, body=name):
                    r = self.post(path, body)
                    self.assertEqual(r.status, 400, r.body[:300])
                    self.assertEqual(r.headers["Content-Type"], "application/json")
                    reply = r.json()
                    self.assertTrue(reply.get("error") or reply.get("message"), reply)
        self.assert_healthy()

    def test_wrong_types_at_every_level(self):
        import http.client
        conn = http.client.HTTPSConnection("localhost", self.d.https_port, context=self.ctx(),
                                           timeout=10)
        self.addCleanup(conn.close)
        seen = 0
        for path, doc in type_mutations(self.review):
            r = tl.https_request(0, "POST", MUTATE, body=doc, conn=conn)
            seen += 1
            # A webhook with failurePolicy Ignore may allow a pod it cannot read;
            # a review it cannot answer is a 400; nothing is ever a 5xx.
            self.assertIn(r.status, (200, 400), "%s -> %d %r" % (path, r.status, r.body[:200]))
            reply = r.json()
            if r.status == 200:
                self.assertEqual(reply["response"]["uid"], doc["request"]["uid"])
        self.assertGreater(seen, 500)
        self.assert_healthy()

    def test_hundred_megabyte_body_is_413_without_memory_growth(self):
        # ASan keeps freed blocks in quarantine (256 MB by default), which would
        # count as growth here: a small quarantine measures the daemon instead.
        asan = os.environ.get("ASAN_OPTIONS", "")
        self.d = self.start(env={"ASAN_OPTIONS": (asan + ":" if asan else "") +
                                 "quarantine_size_mb=1"})
        rss0 = self.d.rss_kib()
        chunk = b"x" * (1 << 20)
        for framing in ("content-length", "chunked"):
            with self.subTest(framing=framing):
                s = tl.raw_tls_socket(self.d.https_port, self.ctx(), host="localhost", timeout=30)
                self.addCleanup(s.close)
                if framing == "content-length":
                    s.sendall(b"POST " + MUTATE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Content-Length: 104857600\r\n\r\n")
                else:
                    s.sendall(b"POST " + MUTATE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
                sent = 0
                reply = b""
                try:
                    while sent < 100 << 20:
                        if framing == "chunked":
                            s.sendall(b"100000\r\n" + chunk + b"\r\n")
                        else:
                            s.sendall(chunk)
                        sent += len(chunk)
                except (OSError, ssl.SSLError):
                    pass
                try:
                    s.settimeout(5)
                    reply = s.recv(4096)
                except (OSError, ssl.SSLError):
                    pass
                # Refused long before 100 MB went through.
                self.assertLess(sent, 20 << 20, "the server read %d bytes" % sent)
                if framing == "content-length":
                    self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:100])
                s.close()
        rss1 = self.d.rss_kib()
        self.assertLess(rss1 - rss0, 16 * 1024, "RSS grew from %d to %d KiB" % (rss0, rss1))
        self.assert_healthy()

    def test_body_cap_flag(self):
        d = self.start("--max-body-bytes", "8Ki")
        big = dict(self.review)
        big["request"] = dict(self.review["request"])
        big["request"]["object"] = dict(self.review["request"]["object"])
        big["request"]["object"]["metadata"] = dict(big["request"]["object"]["metadata"],
                                                    annotations={"a": "x" * 9000})
        r = tl.https_request(d.https_port, "POST", MUTATE, body=big, ctx=self.ctx())
        self.assertEqual(r.status, 413)
        self.assertIn("--max-body-bytes", r.json()["error"])
        r = tl.https_request(d.https_port, "POST", MUTATE, body=self.review, ctx=self.ctx())
        self.assertEqual(r.status, 200)


@unittest.skipUnless(os.environ.get("STRATOS_TEST_VALGRIND", "1") != "0", "valgrind pass disabled")
class TestUnderValgrind(unittest.TestCase):
    """The daemon under valgrind: TLS requests, a reload, errors, a clean SIGTERM exit."""

    def test_valgrind_clean_exit(self):
        import shutil
        if not shutil.which("valgrind"):
            self.skipTest("valgrind not installed")
        if "asan" in os.path.basename(os.path.dirname(tl.stratosd_path())):
            self.skipTest("the ASan build cannot run under valgrind")
        d_dir = tl.tempdir(self)
        certs = tl.make_certs(d_dir, use_gen_sh=False)
        wrapper = ("valgrind --error-exitcode=99 --leak-check=full "
                   "--errors-for-leak-kinds=definite --show-leak-kinds=definite -q")
        d = tl.Stratosd(tl.serve_args(certs, "--pools-file",
                                      os.path.join(FIXTURES, "seed-examples.yaml"),
                                      client_ca=True), wrapper=wrapper, ready_timeout=120)
        self.addCleanup(d.__exit__)
        ctx = tl.tls_context(ca=certs["ca.crt"])
        review = fixture_bytes("admission", "pod-create-pool.json")
        for body, status in ((review, 200), (review[:100], 400), (b"[]", 400)):
            r = tl.https_request(d.https_port, "POST", MUTATE, body=body, ctx=ctx, timeout=60)
            self.assertEqual(r.status, status, r.body)
        r = tl.https_request(d.https_port, "POST", "/admission/validate-nodepool",
                             body=fixture_bytes("admission", "nodepool-create-invalid.json"),
                             ctx=ctx, timeout=60)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(tl.https_request(d.https_port, "GET", "/healthz", ctx=ctx,
                                          timeout=60).status, 200)
        self.assertEqual(tl.https_request(d.https_port, "GET", "/nope", ctx=ctx,
                                          timeout=60).status, 404)
        cctx = tl.tls_context(ca=certs["ca.crt"], cert=certs["client.crt"],
                              key=certs["client.key"])
        self.assertEqual(tl.https_request(d.https_port, "GET", "/readyz", ctx=cctx,
                                          timeout=60).status, 200)
        tl.make_leaf(d_dir, "ca", certs["tls.crt"], certs["tls.key"], "rotated")
        d.send_signal(signal.SIGHUP)
        d.wait_log(lambda o: "serving certificate loaded" in o.get("msg", ""), 60,
                   len(d.logs) - 1 if d.logs else 0)
        self.assertEqual(tl.http_request(d.metrics_port, "GET", "/metrics", timeout=60).status,
                         200)
        with socket.create_connection(("127.0.0.1", d.https_port), timeout=30) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                s.recv(100)
            except OSError:
                pass
        rc, _ = d.stop(timeout=120)
        self.assertEqual(rc, 0, "valgrind reported errors:\n" + "\n".join(d.raw[-60:]))


if __name__ == "__main__":
    unittest.main()
