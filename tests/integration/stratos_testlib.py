"""Shared helpers for integration tests that run the real stratosd binary.

- make_certs(dir): serving CA + certificate (SANs localhost, 127.0.0.1, ::1 and
  the webhook Service names), client CA + client certificate, in the layout of
  certs/gen.sh (ca.crt ca.key tls.crt tls.key client-ca.crt client-ca.key
  client.crt client.key). Uses certs/gen.sh when the repository has it, else
  the cryptography package. Nothing is written into the repository.
- make_leaf(...): one more leaf signed by a CA of that directory (rotation).
- Stratosd: starts `stratosd serve` on ports chosen by the kernel (:0), reads
  the bound ports from its start-up log line, keeps its JSON log, stops it.
  STRATOSD is the binary; STRATOSD_WRAPPER (e.g. "valgrind --error-exitcode=99
  --leak-check=full") is put in front of it when set.
- tls_context(...), https_request(...), http_request(...): clients.
- driver_path(name): a test-only program of the build (kube_driver...).
- run_doctor(test, args, env): `stratosd doctor` and its rows.
"""

import datetime
import http.client
import ipaddress
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICE_SANS = ["stratos-webhook", "stratos-webhook.stratos-system",
                "stratos-webhook.stratos-system.svc"]


def build_path(name):
    """A program of the build directory: STRATOS_BUILD_DIR, else build/."""
    return os.path.join(os.environ.get("STRATOS_BUILD_DIR", os.path.join(REPO, "build")), name)


def stratosd_path():
    path = os.environ.get("STRATOSD") or build_path("stratosd")
    if not os.access(path, os.X_OK):
        raise RuntimeError("stratosd binary not found: set STRATOSD (got %r)" % path)
    return path


def driver_path(name):
    """A test-only driver program (kube_driver, ec2_driver); skips the test when it is not built."""
    path = build_path(name)
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("%s not built (%s)" % (name, path))
    return path


def run_doctor(test, args, env, timeout=120):
    """Runs `stratosd doctor ARGS` with env; fails test on a sanitizer report.

    Returns (exit status, {check: (status, detail)}, the CompletedProcess).
    """
    out = subprocess.run([stratosd_path(), "doctor"] + list(args), env=env,
                         capture_output=True, text=True, timeout=timeout)
    test.assertNotIn("Sanitizer", out.stderr)
    test.assertNotIn("runtime error:", out.stderr)
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        # "%-28s %-8s %s": fixed columns.
        if line and not line.startswith("doctor:"):
            rows[line[:28].strip()] = (line[29:37].strip(), line[38:])
    return out.returncode, rows, out


def wrapper_slowdown():
    """How much slower the binary runs under STRATOSD_WRAPPER (valgrind: ~20x)."""
    return 20.0 if "valgrind" in os.environ.get("STRATOSD_WRAPPER", "") else 1.0


# ---- certificates ---------------------------------------------------------

def _crypto():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _write_key(path, key):
    _, _, serialization, _, _, _ = _crypto()
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_cert(path, cert):
    _, _, serialization, _, _, _ = _crypto()
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _load(dir_, name):
    x509, _, serialization, _, _, _ = _crypto()
    with open(os.path.join(dir_, name + ".crt"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(dir_, name + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def _make_ca(dir_, name, cn):
    x509, hashes, _, ec, _, NameOID = _crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_cert(os.path.join(dir_, name + ".crt"), cert)
    _write_key(os.path.join(dir_, name + ".key"), key)


def make_leaf(dir_, ca_name, out_crt, out_key, cn, server=True, serial=None, days=1,
              sans=None, write_key_first=False):
    """Writes a leaf certificate and key signed by dir_/ca_name.{crt,key}.

    Returns the serial. The files are replaced atomically (rename), as a
    Secret volume update does; write_key_first controls the order, so a test
    can catch the server between the two.
    """
    x509, hashes, _, ec, EKU, NameOID = _crypto()
    ca_cert, ca_key = _load(dir_, ca_name)
    key = ec.generate_private_key(ec.SECP256R1())
    serial = serial or x509.random_serial_number()
    now = datetime.datetime.now(datetime.timezone.utc)
    names = []
    if server:
        for san in (sans or ["localhost", "127.0.0.1", "::1"] + SERVICE_SANS):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(serial)
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [EKU.SERVER_AUTH if server else EKU.CLIENT_AUTH]), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    tmp_crt, tmp_key = out_crt + ".tmp", out_key + ".tmp"
    _write_cert(tmp_crt, cert)
    _write_key(tmp_key, key)
    pairs = [(tmp_crt, out_crt), (tmp_key, out_key)]
    if write_key_first:
        pairs.reverse()
    for src, dst in pairs:
        os.replace(src, dst)
    return serial


def make_certs(dir_, use_gen_sh=True):
    """Fills dir_ like certs/gen.sh does and returns a dict of paths."""
    gen = os.path.join(REPO, "certs", "gen.sh")
    if use_gen_sh and os.access(gen, os.X_OK):
        subprocess.run([gen, "--san", "localhost", "--san", "127.0.0.1", "--san", "::1",
                        "--days", "2", dir_], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    else:
        _make_ca(dir_, "ca", "stratos-test-serving-ca")
        _make_ca(dir_, "client-ca", "stratos-test-client-ca")
        make_leaf(dir_, "ca", os.path.join(dir_, "tls.crt"), os.path.join(dir_, "tls.key"),
                  "stratos-webhook.stratos-system.svc")
        make_leaf(dir_, "client-ca", os.path.join(dir_, "client.crt"),
                  os.path.join(dir_, "client.key"), "stratos-scheduler", server=False)
    return {name: os.path.join(dir_, name) for name in
            ("ca.crt", "ca.key", "tls.crt", "tls.key", "client-ca.crt", "client-ca.key",
             "client.crt", "client.key")}


def cert_serial_of_der(der):
    x509 = _crypto()[0]
    return x509.load_der_x509_certificate(der).serial_number


# ---- clients ----------------------------------------------------------------

def tls_context(ca=None, cert=None, key=None, min_version=None, max_version=None,
                seclevel0=False, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify and ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if seclevel0:
        # Let the client really offer TLS 1.0/1.1, so a refusal is the server's.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def https_request(port, method, path, body=None, ctx=None, headers=None, host="127.0.0.1",
                  timeout=10, conn=None):
    """One request; pass conn (an http.client connection) to reuse it."""
    own = conn is None
    if own:
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        if own:
            conn.close()


def http_request(port, method, path, body=None, host="127.0.0.1", timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- the daemon -------------------------------------------------------------

class Stratosd:
    """A running `stratosd serve`. Use as a context manager or call stop()."""

    def __init__(self, args, env=None, wrapper=None, ready_timeout=None, cwd=None):
        self.args = list(args)
        self.logs = []            # parsed JSON lines
        self.raw = []             # every stderr line
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        full_env = dict(os.environ)
        for k in list(full_env):
            if k.startswith("STRATOS_") and k not in ("STRATOS_BUILD_DIR",):
                del full_env[k]
        full_env.update(env or {})
        wrapper = os.environ.get("STRATOSD_WRAPPER", "") if wrapper is None else wrapper
        cmd = shlex.split(wrapper) + [stratosd_path(), "serve"] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env, cwd=cwd or REPO)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._out.start()
        self.https_port = self.metrics_port = None
        if ready_timeout is not False:
            self.wait_started(ready_timeout or 10 * wrapper_slowdown())

    def _read(self):
        for line in iter(self.proc.stderr.readline, b""):
            text = line.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.raw.append(text)
                try:
                    obj = json.loads(text)
                    if isinstance(obj, dict):
                        self.logs.append(obj)
                except ValueError:
                    pass
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, predicate, timeout=10, start=0):
        """Waits for a JSON log line (index >= start) matching predicate; returns it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for obj in self.logs[start:]:
                    if predicate(obj):
                        return obj
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("no matching log line; stderr:\n" +
                                         "\n".join(self.raw[-30:]))
                self._cond.wait(min(left, 0.2))

    def wait_started(self, timeout):
        line = self.wait_log(lambda o: str(o.get("msg", "")).startswith("stratosd serving"),
                             timeout)
        self.https_port = int(line["listen"].rsplit(":", 1)[1])
        self.metrics_port = int(line["metrics_listen"].rsplit(":", 1)[1])
        self.start_line = line

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signals the daemon and returns (exit code, seconds it took)."""
        timeout = timeout or 15 * wrapper_slowdown()
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("stratosd did not exit within %.0fs of signal %d" %
                                 (timeout, sig))
        finally:
            self._reader.join(5)
        return rc, time.monotonic() - t0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return False


def serve_args(certs, *extra, client_ca=False):
    """Flags for a TLS `serve` on loopback ports chosen by the kernel."""
    args = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
            "--tls-cert", certs["tls.crt"], "--tls-key", certs["tls.key"]]
    if client_ca:
        args += ["--client-ca", certs["client-ca.crt"]]
    return args + list(extra)


def run_stratosd(args, env=None, timeout=20):
    """Runs `stratosd serve ARGS` expecting it to exit by itself (config errors)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATOS_")
                or k == "STRATOS_BUILD_DIR"}
    full_env.update(env or {})
    return subprocess.run([stratosd_path(), "serve"] + list(args), env=full_env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          text=True)


def tempdir(test):
    """A temporary directory removed when the test ends."""
    d = tempfile.TemporaryDirectory(prefix="stratos-test-")
    test.addCleanup(d.cleanup)
    return d.name


def raw_tls_socket(port, ctx, host="127.0.0.1", timeout=10):
    sock = socket.create_connection((host, port), timeout=timeout)
    return ctx.wrap_socket(sock, server_hostname=host if ctx.check_hostname else None)
