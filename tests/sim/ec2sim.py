#!/usr/bin/env python3
"""Emulated EC2 for tests: a SigV4-verifying, fault-injecting layer in front of moto_server.

moto answers the EC2 Query API well enough for the happy path but is not
faithful where the Stratos EC2 client's logic is tested: it accepts any
signature, ignores ClientToken, moves instances to their final state at once,
lets terminated instances be started and cannot throttle.  This layer keeps
the instance state machine itself (moto only stores the instances), verifies
Signature Version 4 independently, honours ClientToken, and injects faults per
action under the control of the tests (JSON API under /_sim/, see
tests/sim/README-ec2sim.md).

    python3 tests/sim/ec2sim.py --dir DIR [--port 0] [--plain-http] ...
"""

import argparse
import base64
import collections
import ctypes
import datetime
import fnmatch
import hashlib
import hmac
import http.client
import http.server
import ipaddress
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
MOTO_NS = "http://ec2.amazonaws.com/doc/2016-11-15"

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}

DEFAULT_ACCESS_KEY_ID = "AKIASTRATOSSIM000001"
DEFAULT_SECRET_ACCESS_KEY = "stratosSimSecretKey00000000000000000000"
DEFAULT_REGION = "us-east-1"

# The ids the seed examples (seed/examples.yaml) use; they exist in the
# emulated account from the start (see "Stand-in resources" in the README).
DEFAULT_SUBNETS = ["subnet-12345678"]
DEFAULT_SECURITY_GROUPS = ["sg-12345678"]
DEFAULT_IMAGES = ["ami-0123456789abcdef0"]

MAX_BODY_BYTES = 1 << 20          # EC2 user data is at most 16 KiB before base64
MAX_CONNECTIONS = 256
IDLE_TIMEOUT_SECONDS = 120
MAX_LOG_ENTRIES = 20000
MAX_TRANSITIONS = 20000
MAX_DESCRIBE_CACHE = 8
MAX_FAULT_RULES = 1000
MAX_CLIENT_TOKENS = 100000
MAX_LOGGED_VALUE = 2048           # longer parameter values (user data) are summarised in the log
SIGV4_MAX_SKEW_SECONDS = 15 * 60
CLIENT_TOKEN_MAX = 64

# Actions that only read: they never change moto's data, so they keep the
# DescribeInstances cache valid.
READ_ONLY_PREFIXES = ("Describe", "Get", "List")

# Well-known error codes: HTTP status and the message EC2 uses.
KNOWN_ERRORS = {
    "RequestLimitExceeded": (503, "Request limit exceeded."),
    "InsufficientInstanceCapacity": (
        500,
        "We currently do not have sufficient {instance_type} capacity in the "
        "Availability Zone you requested ({az}). Our system will be working on "
        "provisioning additional capacity. You can currently get "
        "{instance_type} capacity by not specifying an Availability Zone in "
        "your request or choosing a different Availability Zone.",
    ),
    "InternalError": (500, "An internal error has occurred"),
    "Unavailable": (503, "The server is overloaded and can't handle the request."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "UnauthorizedOperation": (403, None),
    "AuthFailure": (401, "AWS was not able to validate the provided access credentials"),
    "IncorrectInstanceState": (400, "The instance is not in a valid state for this operation."),
    "InstanceLimitExceeded": (
        400,
        "You have requested more instances than your current instance limit "
        "allows for the specified instance type.",
    ),
    "VcpuLimitExceeded": (
        400,
        "You have requested more vCPU capacity than your current vCPU limit "
        "allows for the instance bucket that the specified instance type "
        "belongs to.",
    ),
    "InsufficientFreeAddressesInSubnet": (
        400, "The specified subnet does not have enough free addresses to satisfy the request.",
    ),
    "InvalidInstanceID.NotFound": (400, "The instance ID does not exist"),
    "InvalidInstanceID.Malformed": (400, "Invalid id"),
    "RequestExpired": (400, "Request has expired."),
}


_EC2_ACTIONS = None


def ec2_actions():
    """Every EC2 action name (from botocore's service model), or None if unavailable."""
    global _EC2_ACTIONS
    if _EC2_ACTIONS is None:
        try:
            import botocore.session
            model = botocore.session.get_session().get_service_model("ec2")
            _EC2_ACTIONS = frozenset(model.operation_names)
        except Exception:  # botocore missing or broken: let moto decide
            _EC2_ACTIONS = frozenset()
    return _EC2_ACTIONS or None


def log(msg):
    """Log one line to stderr (scripts/sim redirects it to DIR/ec2sim.log)."""
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    sys.stderr.write("ec2sim %s %s\n" % (ts, msg))
    sys.stderr.flush()


def iso_utc(epoch, millis=True):
    dt = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value):
    """Epoch seconds from a number or an ISO 8601 UTC string (fractions allowed)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


# ---------------------------------------------------------------------------
# Signature Version 4, written from the AWS description (PROTOCOLS.md), not
# from botocore: the point is to catch a client that signs wrongly.

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"


def sigv4_canonical_uri(raw_path):
    """Normalised path, each segment URI-encoded again (non-S3 services)."""
    if not raw_path:
        return "/"
    trailing = raw_path.endswith("/") and raw_path != "/"
    parts = []
    for seg in raw_path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(urllib.parse.quote(seg, safe=_UNRESERVED))
    path = "/" + "/".join(parts)
    if trailing and path != "/":
        path += "/"
    return path


def sigv4_canonical_query(raw_query):
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        k = urllib.parse.quote(urllib.parse.unquote(k), safe=_UNRESERVED)
        v = urllib.parse.quote(urllib.parse.unquote(v), safe=_UNRESERVED)
        pairs.append((k, v))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def sigv4_canonical_request(method, raw_path, raw_query, headers, signed_headers, body):
    """Canonical request string.

    headers: list of (name, value) as received; signed_headers: lower-case
    names.  Returns (canonical_request, missing_header_name_or_None).
    """
    by_name = collections.defaultdict(list)
    for name, value in headers:
        by_name[name.lower()].append(re.sub(r"\s+", " ", value.strip()))
    lines = []
    missing = None
    for name in signed_headers:
        if name not in by_name:
            missing = missing or name
            lines.append("%s:\n" % name)
            continue
        lines.append("%s:%s\n" % (name, ",".join(by_name[name])))
    canonical = "\n".join([
        method.upper(),
        sigv4_canonical_uri(raw_path),
        sigv4_canonical_query(raw_query),
        "".join(lines),
        ";".join(signed_headers),
        hashlib.sha256(body).hexdigest(),
    ])
    return canonical, missing


def sigv4_string_to_sign(amz_date, scope, canonical_request):
    return "\n".join([
        SIGV4_ALGORITHM,
        amz_date,
        scope,
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    ])


def sigv4_signing_key(secret, date, region, service):
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sigv4_signature(secret, date, region, service, string_to_sign):
    key = sigv4_signing_key(secret, date, region, service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sigv4_parse_authorization(value):
    """Split an Authorization header into (algorithm, {Credential, SignedHeaders, Signature}).

    Raises ValueError with an AWS-like message when it is malformed.
    """
    value = value.strip()
    algorithm, _, rest = value.partition(" ")
    if algorithm != SIGV4_ALGORITHM:
        raise ValueError("Unsupported AWS 'algorithm': '%s'" % algorithm)
    fields = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        k, eq, v = item.partition("=")
        if not eq:
            raise ValueError("Authorization header requires each component to be of the form key=value; got '%s'" % item)
        fields[k.strip()] = v.strip()
    for need in ("Credential", "SignedHeaders", "Signature"):
        if need not in fields:
            raise ValueError("Authorization header requires '%s' parameter." % need)
    return algorithm, fields


class SigV4Error(Exception):
    """A request that EC2 would refuse: code, HTTP status, message."""

    def __init__(self, code, status, message, verdict, detail=None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.verdict = verdict      # short word for the request log
        self.detail = detail or {}


class Credential:
    def __init__(self, access_key_id, secret_access_key, session_token=None, expiration=None):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.expiration = expiration      # epoch seconds or None

    def public(self):
        return {
            "access_key_id": self.access_key_id,
            "temporary": self.session_token is not None,
            "expiration": iso_utc(self.expiration) if self.expiration else None,
        }


class SigV4Verifier:
    """Checks requests against the registered credentials, like EC2 does."""

    def __init__(self, region, service="ec2", clock=time.time):
        self.region = region
        self.service = service
        self.clock = clock
        self._lock = threading.Lock()
        self._static = {}
        self._temporary = {}

    def add_static(self, cred):
        with self._lock:
            self._static[cred.access_key_id] = cred

    def add_temporary(self, cred):
        with self._lock:
            self._temporary[cred.access_key_id] = cred

    def remove(self, access_key_id):
        with self._lock:
            return self._temporary.pop(access_key_id, None) is not None

    def clear_temporary(self):
        with self._lock:
            self._temporary.clear()

    def list(self):
        with self._lock:
            return [c.public() for c in list(self._static.values()) + list(self._temporary.values())]

    def _lookup(self, akid):
        with self._lock:
            return self._static.get(akid) or self._temporary.get(akid)

    def verify(self, method, raw_path, raw_query, headers, body, service=None):
        """Verify one request (scoped to service, default this verifier's);
        returns the access key id or raises SigV4Error."""
        want_service = service or self.service
        hdr = {}
        for name, value in headers:
            hdr.setdefault(name.lower(), value)
        auth = hdr.get("authorization")
        if auth is None:
            if "X-Amz-Algorithm" in raw_query:
                raise SigV4Error("AuthFailure", 401, "Query-string (presigned) authentication is not supported by this emulator.", "unsupported")
            raise SigV4Error("MissingAuthenticationToken", 401,
                             "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
                             "missing")
        try:
            _, fields = sigv4_parse_authorization(auth)
        except ValueError as e:
            raise SigV4Error("IncompleteSignature", 400, str(e), "malformed")
        scope_parts = fields["Credential"].split("/")
        if len(scope_parts) != 5:
            raise SigV4Error("IncompleteSignature", 400,
                             "Credential should have exactly 5 slash-separated components: '%s'" % fields["Credential"],
                             "malformed")
        akid, date, region, service, terminator = scope_parts
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed:
            raise SigV4Error("IncompleteSignature", 400,
                             "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", "malformed")
        amz_date = hdr.get("x-amz-date")
        if amz_date is None:
            raise SigV4Error("IncompleteSignature", 400,
                             "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                             "malformed")
        if "x-amz-date" not in signed:
            raise SigV4Error("SignatureDoesNotMatch", 403,
                             "The X-Amz-Date header must be signed.", "bad-signature")
        if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
            raise SigV4Error("IncompleteSignature", 400,
                             "Date must be in ISO-8601 'basic format'. Got '%s'." % amz_date, "malformed")
        if date != amz_date[:8]:
            raise SigV4Error("SignatureDoesNotMatch", 403,
                             "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                             "'%s' != '%s', from '%s'." % (date, amz_date[:8], amz_date), "bad-scope")
        if region != self.region:
            raise SigV4Error("SignatureDoesNotMatch", 403,
                             "Credential should be scoped to a valid region, not '%s'. " % region, "bad-scope")
        if service != want_service:
            raise SigV4Error("SignatureDoesNotMatch", 403,
                             "Credential should be scoped to correct service: '%s'. " % want_service, "bad-scope")
        if terminator != "aws4_request":
            raise SigV4Error("SignatureDoesNotMatch", 403,
                             "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'. " % terminator,
                             "bad-scope")
        cred = self._lookup(akid)
        if cred is None:
            raise SigV4Error("AuthFailure", 401, "AWS was not able to validate the provided access credentials",
                             "unknown-key")
        token = hdr.get("x-amz-security-token")
        if cred.session_token is not None:
            if token is None or not hmac.compare_digest(token.encode(), cred.session_token.encode()):
                raise SigV4Error("AuthFailure", 401, "AWS was not able to validate the provided access credentials",
                                 "bad-token")
        elif token is not None:
            raise SigV4Error("AuthFailure", 401, "AWS was not able to validate the provided access credentials",
                             "bad-token")
        canonical, missing = sigv4_canonical_request(
            method, raw_path, raw_query, headers, sorted(h.lower() for h in signed), body)
        scope = "/".join([date, region, service, terminator])
        sts = sigv4_string_to_sign(amz_date, scope, canonical)
        want = sigv4_signature(cred.secret_access_key, date, region, service, sts)
        if missing is not None or not hmac.compare_digest(want, fields["Signature"]):
            raise SigV4Error("SignatureDoesNotMatch", 403,
                             "The request signature we calculated does not match the signature you provided. "
                             "Check your AWS Secret Access Key and signing method. Consult the service "
                             "documentation for details.", "bad-signature",
                             {"canonical_request": canonical, "string_to_sign": sts,
                              "missing_signed_header": missing})
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        now = self.clock()
        if signed_at < now - SIGV4_MAX_SKEW_SECONDS:
            raise SigV4Error("RequestExpired", 400, "Request has expired.", "expired")
        if signed_at > now + SIGV4_MAX_SKEW_SECONDS:
            raise SigV4Error("RequestExpired", 400, "Request is not yet valid.", "expired")
        if cred.expiration is not None and now >= cred.expiration:
            raise SigV4Error("RequestExpired", 400, "Request has expired.", "expired-credentials")
        return akid


# ---------------------------------------------------------------------------
# TLS: a CA and a server certificate made at start-up.

def make_tls(ca_path):
    """Create a CA and a server certificate for 127.0.0.1/localhost.

    The CA certificate goes to ca_path (readers use it as AWS_CA_BUNDLE);
    keys stay in memory except for a moment in a private temp directory,
    because ssl.SSLContext only loads from files.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec2sim test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    tmp = ca_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(ca_cert.public_bytes(pem))
    os.replace(tmp, ca_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="ec2sim-tls-") as d:
        os.chmod(d, 0o700)
        cert_file = os.path.join(d, "server.crt")
        key_file = os.path.join(d, "server.key")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(pem))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# ---------------------------------------------------------------------------
# moto child process.

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _die_with_parent(parent_pid):
    """preexec_fn: the child gets SIGKILL when we die, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)
    os.setpgid(0, 0)


class MotoChild:
    """moto_server on a free loopback port; killed when we exit."""

    def __init__(self):
        self.proc = None
        self.port = None

    def start(self, timeout=60.0):
        last = None
        for _ in range(5):
            self.port = free_port()
            parent = os.getpid()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                preexec_fn=lambda: _die_with_parent(parent))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = self.proc.stderr.read().decode(errors="replace")[-2000:]
                    break
                try:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    c.request("GET", "/moto-api/")
                    c.getresponse().read()
                    c.close()
                    # moto's request log would fill the pipe; drain it.
                    threading.Thread(target=self._drain, daemon=True).start()
                    log("moto_server pid %d on port %d" % (self.proc.pid, self.port))
                    return
                except OSError:
                    time.sleep(0.1)
            else:
                self.stop()
                raise RuntimeError("moto_server did not answer within %.0f s" % timeout)
        raise RuntimeError("moto_server failed to start: %s" % last)

    def _drain(self):
        try:
            for _ in iter(lambda: self.proc.stderr.read(65536), b""):
                pass
        except (OSError, ValueError):
            pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------------------
# XML helpers.  Elements are matched on local names; moto's namespace lacks
# the trailing slash real EC2 uses and is fixed before parsing.

def lname(el):
    return el.tag.rsplit("}", 1)[-1]


def ns_of(el):
    return el.tag[1:].split("}", 1)[0] if el.tag.startswith("{") else ""


def child(el, name):
    for c in el:
        if lname(c) == name:
            return c
    return None


def children(el, name):
    return [c for c in el if lname(c) == name]


def child_text(el, name, default=None):
    c = child(el, name)
    if c is None:
        return default
    return c.text or ""


def set_child(el, name, text=None):
    """Find or create child `name` of el (same namespace) and set its text."""
    c = child(el, name)
    if c is None:
        ns = ns_of(el)
        c = ET.SubElement(el, "{%s}%s" % (ns, name) if ns else name)
    if text is not None:
        c.text = str(text)
    return c


def remove_child(el, name):
    for c in children(el, name):
        el.remove(c)


def set_state(el, name, state):
    st = set_child(el, name)
    for c in list(st):
        st.remove(c)
    set_child(st, "code", STATE_CODES[state])
    set_child(st, "name", state)


ET.register_namespace("", EC2_NS)


def xml_bytes(root):
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


# moto's default account; the STS answer names the same one.
SIM_ACCOUNT = "123456789012"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def error_xml(code, message, request_id):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code>'
            '<Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>'
            % (xml_escape(code), xml_escape(message or ""), request_id)).encode("utf-8")


class EC2Error(Exception):
    def __init__(self, code, message=None, status=None):
        known = KNOWN_ERRORS.get(code)
        if status is None:
            status = known[0] if known else 400
        if message is None and known:
            message = known[1]
        super().__init__(message or code)
        self.code = code
        self.status = status
        self.message = message or ""


def incorrect_state(instance_id, verb):
    return EC2Error("IncorrectInstanceState",
                    "The instance '%s' is not in a state from which it can be %s." % (instance_id, verb), 400)


def not_found(ids):
    if len(ids) == 1:
        return EC2Error("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist" % ids[0], 400)
    return EC2Error("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist" % ", ".join(ids), 400)


def unauthorized_message(action, akid, account):
    blob = base64.urlsafe_b64encode(json.dumps({
        "allowed": False, "explicitDeny": False,
        "context": {"principal": {"id": akid}, "action": "ec2:" + action},
        "nonce": secrets.token_hex(16)}).encode()).decode().rstrip("=")
    return ("You are not authorized to perform this operation. User: arn:aws:iam::%s:user/stratos is not "
            "authorized to perform: ec2:%s because no identity-based policy allows the ec2:%s action. "
            "Encoded authorization failure message: %s" % (account, action, action, blob))


# ---------------------------------------------------------------------------
# Query parameters.

class Params:
    """Ordered EC2 Query parameters (key -> value; keys are unique)."""

    def __init__(self, pairs):
        self.items = list(pairs)
        self.d = dict(self.items)

    def get(self, key, default=None):
        return self.d.get(key, default)

    def numbered(self, prefix):
        """Values of prefix.1, prefix.2, ... in numeric order."""
        out = []
        pat = re.compile(re.escape(prefix) + r"\.(\d+)$")
        for k, v in self.items:
            m = pat.match(k)
            if m:
                out.append((int(m.group(1)), v))
        return [v for _, v in sorted(out)]

    def group(self, prefix):
        """{n: {rest: value}} for keys prefix.n.rest."""
        out = collections.defaultdict(dict)
        pat = re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)$")
        for k, v in self.items:
            m = pat.match(k)
            if m:
                out[int(m.group(1))][m.group(2)] = v
        return dict(sorted(out.items()))

    def filters(self):
        """[(name, [values])] from Filter.N.Name / Filter.N.Value.M."""
        out = []
        for _, g in self.group("Filter").items():
            name = g.get("Name")
            vals = []
            for k, v in g.items():
                m = re.match(r"Value\.(\d+)$", k)
                if m:
                    vals.append((int(m.group(1)), v))
            out.append((name, [v for _, v in sorted(vals)]))
        return out

    def instance_ids(self):
        """InstanceId.N (most actions) or InstanceId (the *InstanceAttribute actions)."""
        ids = self.numbered("InstanceId")
        if "InstanceId" in self.d:
            ids.insert(0, self.d["InstanceId"])
        return ids


def tags_from_pairs(group):
    tags = {}
    for _, g in group.items():
        if "Key" in g:
            tags[g["Key"]] = g.get("Value", "")
    return tags


# ---------------------------------------------------------------------------
# Instance overlay: the state machine moto does not have.

class Instance:
    def __init__(self, iid, seq, state, now):
        self.id = iid
        self.seq = seq
        self.state = state
        self.since = now
        self.due = None             # when the current transitional state ends
        self.next_state = None
        self.reservation_id = None
        self.client_token = None
        self.ever_running = False
        self.lose_capacity = False
        self.terminated_at = None
        self.purged = False
        self.state_reason = None    # (code, message)
        self.transition_reason = ""
        self.iam_profile = None     # {"arn": .., "id": ..}
        self.shutdown_behavior = "stop"
        self.launch_params = {}
        self.info = {}              # private dns/ip, az, subnet, type, image
        self.tags = {}
        self.history = []

    def public(self):
        return {
            "instance_id": self.id,
            "state": self.state,
            "state_code": STATE_CODES[self.state],
            "since": iso_utc(self.since),
            "next_state": self.next_state,
            "due": iso_utc(self.due) if self.due else None,
            "reservation_id": self.reservation_id,
            "client_token": self.client_token,
            "state_reason": {"code": self.state_reason[0], "message": self.state_reason[1]} if self.state_reason else None,
            "state_transition_reason": self.transition_reason,
            "iam_instance_profile": self.iam_profile,
            "instance_initiated_shutdown_behavior": self.shutdown_behavior,
            "purged": self.purged,
            "tags": dict(self.tags),
            "launch_params": dict(self.launch_params),
            "history": list(self.history),
            **self.info,
        }


REASON_USER_SHUTDOWN = ("Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
REASON_INSTANCE_SHUTDOWN = ("Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
REASON_CAPACITY = ("Server.InsufficientInstanceCapacity",
                   "Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy launch request")


def reason_stamp(kind, now):
    return "%s (%s GMT)" % (kind, datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))


class Overlay:
    """Authoritative instance states with timed transitions."""

    def __init__(self, timings, scale=1.0):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.timings = dict(timings)    # simulated seconds; real ones are these x scale (--time-scale)
        self.scale = scale
        self.instances = {}
        self.seq = 0
        self.transitions = collections.deque(maxlen=MAX_TRANSITIONS)
        self.transition_seq = 0

    def reset(self, timings):
        with self.lock:
            self.timings = dict(timings)
            self.instances.clear()
            self.transitions.clear()
            self.changed.notify_all()

    # All methods below are called with self.lock held.

    def add(self, iid, state, now):
        self.seq += 1
        inst = Instance(iid, self.seq, state, now)
        self.instances[iid] = inst
        self._record(inst, None, state, "launched", now)
        return inst

    def _record(self, inst, old, new, why, now):
        self.transition_seq += 1
        entry = {"seq": self.transition_seq, "time": now, "time_iso": iso_utc(now),
                 "instance_id": inst.id, "from": old, "to": new, "why": why}
        inst.history.append({"time": iso_utc(now), "from": old, "to": new, "why": why})
        del inst.history[:-50]
        self.transitions.append(entry)
        self.changed.notify_all()

    def move(self, inst, new, now, why, duration=None, then=None):
        """Put inst in state `new`; after `duration` seconds it becomes `then`."""
        old = inst.state
        inst.state = new
        inst.since = now
        inst.next_state = then
        inst.due = now + duration if then is not None else None
        if new == "running":
            inst.ever_running = True
            inst.state_reason = None
            inst.transition_reason = ""
        if new == "terminated":
            inst.terminated_at = now
        self._record(inst, old, new, why, now)

    def begin(self, inst, state, now, why):
        """Enter a transitional (or final) state using the configured timings."""
        t, k = self.timings, self.scale
        if state == "pending":
            self.move(inst, "pending", now, why, t["pending_seconds"] * k, "running")
        elif state == "stopping":
            self.move(inst, "stopping", now, why, t["stopping_seconds"] * k, "stopped")
        elif state == "shutting-down":
            self.move(inst, "shutting-down", now, why, t["shutting_down_seconds"] * k, "terminated")
        else:
            self.move(inst, state, now, why)

    def advance(self, now):
        """Apply every transition due by `now`, in time order."""
        for inst in self.instances.values():
            while inst.due is not None and inst.due <= now:
                at = inst.due
                target = inst.next_state
                if inst.state == "pending" and inst.lose_capacity:
                    inst.lose_capacity = False
                    inst.state_reason = REASON_CAPACITY
                    inst.transition_reason = reason_stamp("Service initiated", at)
                    if inst.ever_running:
                        self.move(inst, "stopped", at, "capacity lost")
                    else:
                        self.move(inst, "terminated", at, "capacity lost")
                    continue
                self.move(inst, target, at, "timer")
            if (inst.state == "terminated" and not inst.purged and inst.terminated_at is not None
                    and now >= inst.terminated_at + self.timings["terminated_visible_seconds"] * self.scale):
                inst.purged = True
                self._record(inst, "terminated", "terminated", "purged from Describe", now)

    def next_due(self):
        dues = [i.due for i in self.instances.values() if i.due is not None]
        dues += [i.terminated_at + self.timings["terminated_visible_seconds"] * self.scale
                 for i in self.instances.values()
                 if i.state == "terminated" and not i.purged and i.terminated_at is not None]
        return min(dues) if dues else None


# ---------------------------------------------------------------------------
# Faults.

class FaultRule:
    _ids = 0

    def __init__(self, spec):
        FaultRule._ids += 1
        self.id = FaultRule._ids
        self.action = spec.get("action", "*")
        self.instance_id = spec.get("instance_id")
        self.count = spec.get("count")
        self.skip = int(spec.get("skip", 0))
        self.probability = float(spec.get("probability", 1.0))
        self.delay_ms = float(spec.get("delay_ms", 0))
        self.response_delay_ms = float(spec.get("response_delay_ms", 0))
        self.drop = spec.get("drop")
        self.reset = bool(spec.get("reset", False))
        self.lose_capacity = bool(spec.get("lose_capacity", False))
        self.error = spec.get("error")
        self.raw = spec.get("raw")
        self.hits = 0
        self.seen = 0
        if isinstance(self.error, str):
            self.error = {"code": self.error}
        if self.count is not None:
            self.count = int(self.count)
            if self.count < 1:
                raise ValueError("count must be >= 1")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.drop not in (None, "before", "after"):
            raise ValueError("drop must be \"before\" or \"after\"")
        kinds = sum(1 for x in (self.drop, self.error, self.raw) if x)
        if kinds > 1:
            raise ValueError("a rule has at most one of error, raw, drop")
        if self.error is not None and not self.error.get("code"):
            raise ValueError("error needs a code")
        if self.raw is not None and "status" not in self.raw:
            raise ValueError("raw needs a status")
        if not (kinds or self.delay_ms or self.response_delay_ms or self.lose_capacity):
            raise ValueError("a rule needs error, raw, drop, delay_ms, response_delay_ms or lose_capacity")

    def public(self):
        return {
            "id": self.id, "action": self.action, "instance_id": self.instance_id,
            "count": self.count, "skip": self.skip, "probability": self.probability,
            "delay_ms": self.delay_ms, "response_delay_ms": self.response_delay_ms,
            "drop": self.drop, "reset": self.reset, "lose_capacity": self.lose_capacity,
            "error": self.error, "raw": self.raw, "hits": self.hits, "seen": self.seen,
            "remaining": None if self.count is None else self.count - self.hits,
        }

    def matches(self, action, instance_ids):
        if self.action != "*" and self.action != action:
            return False
        if self.instance_id and self.instance_id not in instance_ids:
            return False
        return self.count is None or self.hits < self.count


class Faults:
    def __init__(self, seed=None):
        self.lock = threading.Lock()
        self.rules = []
        self.rng = random.Random(seed)

    def add(self, spec):
        rule = FaultRule(spec)
        with self.lock:
            if len(self.rules) >= MAX_FAULT_RULES:
                raise ValueError("too many fault rules (%d)" % MAX_FAULT_RULES)
            self.rules.append(rule)
        return rule

    def clear(self):
        with self.lock:
            self.rules.clear()

    def remove(self, rid):
        with self.lock:
            n = len(self.rules)
            self.rules = [r for r in self.rules if r.id != rid]
            return len(self.rules) != n

    def seed(self, seed):
        with self.lock:
            self.rng.seed(seed)

    def list(self):
        with self.lock:
            return [r.public() for r in self.rules]

    def pick(self, action, instance_ids):
        """The first rule that applies to this request (consumes one hit)."""
        with self.lock:
            for r in self.rules:
                if not r.matches(action, instance_ids):
                    continue
                r.seen += 1
                if r.seen <= r.skip:
                    continue
                if r.probability < 1.0 and self.rng.random() >= r.probability:
                    continue
                r.hits += 1
                return r
        return None


# ---------------------------------------------------------------------------
# Request log.

class RequestLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries = collections.deque(maxlen=MAX_LOG_ENTRIES)
        self.seq = 0
        self.dropped = 0

    def add(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            if len(self.entries) == self.entries.maxlen:
                self.dropped += 1
            self.entries.append(entry)

    def clear(self):
        with self.lock:
            self.entries.clear()
            self.dropped = 0

    def query(self, action=None, since=0, forwarded=None):
        with self.lock:
            out = []
            for e in self.entries:
                if e["seq"] <= since:
                    continue
                if action and e.get("action") != action:
                    continue
                if forwarded is not None and e.get("forwarded") != forwarded:
                    continue
                out.append(e)
            return {"requests": out, "last_seq": self.seq, "dropped": self.dropped}


class Dropped(Exception):
    """Close the connection without an answer."""

    def __init__(self, reset):
        super().__init__("dropped")
        self.reset = reset


# ---------------------------------------------------------------------------
# The emulator proper.

class Emulator:
    def __init__(self, args, moto_port):
        self.args = args
        self.region = args.region
        self.account = SIM_ACCOUNT
        self.moto_port = moto_port
        self.default_timings = {
            "pending_seconds": args.pending_seconds,
            "stopping_seconds": args.stopping_seconds,
            "shutting_down_seconds": args.shutting_down_seconds,
            "terminated_visible_seconds": args.terminated_visible_seconds,
        }
        self.overlay = Overlay(self.default_timings, args.time_scale)
        self.verifier = SigV4Verifier(args.region)
        self.verifier.add_static(Credential(args.access_key_id, args.secret_access_key))
        self.faults = Faults(args.seed)
        self.requests = RequestLog()
        self.denied = set()
        self.deny_lock = threading.Lock()
        self.mutation_lock = threading.Lock()   # serialises state-changing actions
        self.tokens = collections.OrderedDict()  # ClientToken -> record, oldest first
        self.profile_ids = {}
        self.volumes = {}                       # volume id -> {iops, throughput}
        self.generation = 0
        self.describe_cache = collections.OrderedDict()
        self.cache_lock = threading.Lock()
        self.alias_lock = threading.Lock()
        self.to_moto = {}                       # stand-in id -> moto id
        self.from_moto = {}
        self.network = {"vpc": None, "subnets": [], "security_groups": [], "images": []}
        self.subnet_count = 0
        self.stop_event = threading.Event()
        self.ticker = threading.Thread(target=self._tick, name="ticker", daemon=True)

    # -- moto ------------------------------------------------------------

    def moto_call(self, pairs, timeout=60):
        """POST Query parameters to moto; returns (status, body bytes)."""
        body = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote).encode()
        day = time.strftime("%Y%m%d", time.gmtime())
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            # moto routes on the credential scope and ignores the signature.
            "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s/%s/ec2/aws4_request, "
                             "SignedHeaders=host, Signature=0" % (self.args.access_key_id, day, self.region),
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=timeout)
        try:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def moto_reset(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=30)
        try:
            conn.request("POST", "/moto-api/reset", body=b"")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError("moto reset answered %d" % resp.status)
        finally:
            conn.close()

    def moto_must(self, pairs):
        status, body = self.moto_call(pairs)
        if status != 200:
            raise RuntimeError("moto %s failed (%d): %s" % (dict(pairs).get("Action"), status, body[:500]))
        return ET.fromstring(body)

    def bump(self):
        with self.cache_lock:
            self.generation += 1
            self.describe_cache.clear()

    # -- stand-in resources ------------------------------------------------

    def _alias(self, fake, real):
        with self.alias_lock:
            self.to_moto[fake] = real
            self.from_moto[real] = fake

    def _ensure_vpc(self):
        if self.network["vpc"] is None:
            root = self.moto_must([("Action", "CreateVpc"), ("Version", "2016-11-15"),
                                   ("CidrBlock", "10.0.0.0/16")])
            vpc = root.iter("{%s}vpcId" % MOTO_NS).__next__().text
            self.network["vpc"] = vpc
        return self.network["vpc"]

    def _moto_knows(self, action, key, value):
        status, _ = self.moto_call([("Action", action), ("Version", "2016-11-15"), (key, value)])
        return status == 200

    def add_subnet(self, sid, az=None):
        if not re.fullmatch(r"subnet-[0-9a-f]{8}([0-9a-f]{9})?", sid):
            raise ValueError("bad subnet id %r" % sid)
        with self.alias_lock:
            if sid in self.to_moto:
                return
        if self.subnet_count >= 16:
            raise ValueError("at most 16 stand-in subnets (one /20 each in 10.0.0.0/16)")
        vpc = self._ensure_vpc()
        if az is None:
            az = self.region + "abcdef"[self.subnet_count % 6]
        cidr = "10.0.%d.0/20" % (16 * self.subnet_count)
        root = self.moto_must([("Action", "CreateSubnet"), ("Version", "2016-11-15"), ("VpcId", vpc),
                               ("CidrBlock", cidr), ("AvailabilityZone", az)])
        real = next(root.iter("{%s}subnetId" % MOTO_NS)).text
        self.subnet_count += 1
        self._alias(sid, real)
        self.network["subnets"].append({"id": sid, "moto_id": real, "availability_zone": az, "cidr": cidr})

    def add_security_group(self, gid):
        if not re.fullmatch(r"sg-[0-9a-f]{8}([0-9a-f]{9})?", gid):
            raise ValueError("bad security group id %r" % gid)
        with self.alias_lock:
            if gid in self.to_moto:
                return
        vpc = self._ensure_vpc()
        root = self.moto_must([("Action", "CreateSecurityGroup"), ("Version", "2016-11-15"), ("VpcId", vpc),
                               ("GroupName", gid), ("GroupDescription", "ec2sim stand-in for " + gid)])
        real = next(root.iter("{%s}groupId" % MOTO_NS)).text
        self._alias(gid, real)
        self.network["security_groups"].append({"id": gid, "moto_id": real})

    def add_image(self, ami):
        if not re.fullmatch(r"ami-[0-9a-f]{8}([0-9a-f]{9})?", ami):
            raise ValueError("bad image id %r" % ami)
        with self.alias_lock:
            if ami in self.to_moto:
                return
        root = self.moto_must([("Action", "RegisterImage"), ("Version", "2016-11-15"), ("Name", ami),
                               ("Description", "ec2sim stand-in for " + ami)])
        real = next(root.iter("{%s}imageId" % MOTO_NS)).text
        self._alias(ami, real)
        self.network["images"].append({"id": ami, "moto_id": real})

    def setup_network(self):
        with self.alias_lock:
            self.to_moto.clear()
            self.from_moto.clear()
        self.network = {"vpc": None, "subnets": [], "security_groups": [], "images": []}
        self.subnet_count = 0
        for spec in self.args.subnet or DEFAULT_SUBNETS:
            sid, _, az = spec.partition(":")
            self.add_subnet(sid, az or None)
        for gid in self.args.security_group or DEFAULT_SECURITY_GROUPS:
            self.add_security_group(gid)
        for ami in self.args.image or DEFAULT_IMAGES:
            self.add_image(ami)
        self.bump()

    def map_request(self, pairs):
        with self.alias_lock:
            return [(k, self.to_moto.get(v, v)) for k, v in pairs]

    def map_response(self, body):
        with self.alias_lock:
            items = list(self.from_moto.items())
        for real, fake in items:
            body = body.replace(real.encode(), fake.encode())
        return body

    # -- lifecycle -------------------------------------------------------

    def start(self):
        ec2_actions()       # load botocore's model now, not on the first request
        self.setup_network()
        self.ticker.start()

    def reset(self):
        with self.mutation_lock:
            self.moto_reset()
            self.overlay.reset(self.default_timings)
            self.tokens.clear()
            self.volumes.clear()
            self.faults.clear()
            self.requests.clear()
            with self.deny_lock:
                self.denied.clear()
            self.verifier.clear_temporary()
            self.setup_network()

    def _tick(self):
        while not self.stop_event.is_set():
            with self.overlay.lock:
                self.overlay.advance(time.time())
                nd = self.overlay.next_due()
            wait = 0.25 if nd is None else max(0.005, min(0.25, nd - time.time()))
            self.stop_event.wait(wait)

    # -- the EC2 request pipeline -----------------------------------------

    def handle_sts(self, req):
        """Answer STS GetCallerIdentity (POST /sts, the sim's AWS_ENDPOINT_URL_STS)
        for the keys this emulator accepts, after the same signature check as
        EC2 but scoped to "sts", so `stratosd doctor` can name its identity."""
        rid = str(uuid.uuid4())
        body = req["body"]
        params = dict(urllib.parse.parse_qsl(req["query"], keep_blank_values=True))
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

        def error(status, code, message):
            return status, ('<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
                            '<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>'
                            % (STS_NS, xml_escape(code), xml_escape(message), rid)).encode()
        try:
            akid = self.verifier.verify(req["method"], req["path"], req["query"], req["headers"], body,
                                        service="sts")
        except SigV4Error as e:
            return error(e.status, e.code, e.message)
        if params.get("Action") != "GetCallerIdentity":
            return error(400, "InvalidAction", "Could not find operation %s for version %s"
                         % (params.get("Action"), params.get("Version")))
        temporary = any(c["access_key_id"] == akid and c["temporary"] for c in self.verifier.list())
        arn = ("arn:aws:sts::%s:assumed-role/stratos-sim/stratosd" if temporary
               else "arn:aws:iam::%s:user/stratos-sim") % SIM_ACCOUNT
        return 200, ('<GetCallerIdentityResponse xmlns="%s"><GetCallerIdentityResult>'
                     '<Arn>%s</Arn><UserId>%s</UserId><Account>%s</Account></GetCallerIdentityResult>'
                     '<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>'
                     '</GetCallerIdentityResponse>' % (STS_NS, arn, akid, SIM_ACCOUNT, rid)).encode()

    def handle_ec2(self, req):
        """Answer one EC2 Query API request.

        req: dict with method, path, query, headers, body, conn, conn_request, tls.
        Returns (status, body) or raises Dropped.
        """
        started = time.time()
        rid = str(uuid.uuid4())
        entry = {
            "time": started, "time_iso": iso_utc(started), "request_id": rid,
            "conn": req["conn"], "conn_request": req["conn_request"], "tls": req["tls"],
            "method": req["method"], "action": None, "params": {}, "client_token": None,
            "instance_ids": [], "signature": None, "access_key_id": None, "forwarded": False,
            "fault": None, "outcome": "response", "status": None, "error_code": None,
            "dry_run": False, "idempotent_replay": False,
        }
        try:
            status, body = self._pipeline(req, rid, entry)
        except EC2Error as e:
            status, body = e.status, error_xml(e.code, e.message, rid)
            entry["error_code"] = e.code
        except Dropped:
            entry["outcome"] = "dropped-" + entry.get("_drop_when", "before")
            entry.pop("_drop_when", None)
            entry["duration_ms"] = round((time.time() - started) * 1000, 3)
            self.requests.add(entry)
            log("%s %s dropped (%s)" % (entry["action"], rid, entry["outcome"]))
            raise
        except Exception as e:  # a bug in the layer: answer like EC2 would
            traceback.print_exc()
            status, body = 500, error_xml("InternalError", "ec2sim: %s" % e, rid)
            entry["error_code"] = "InternalError"
        entry.pop("_drop_when", None)
        entry["status"] = status
        entry["duration_ms"] = round((time.time() - started) * 1000, 3)
        self.requests.add(entry)
        log("%s %s -> %d %s" % (entry["action"], entry["instance_ids"] or "", status, entry["error_code"] or ""))
        return status, body

    def _pipeline(self, req, rid, entry):
        body = req["body"]
        try:
            akid = self.verifier.verify(req["method"], req["path"], req["query"], req["headers"], body)
            entry["signature"] = "verified"
            entry["access_key_id"] = akid
        except SigV4Error as e:
            entry["signature"] = e.verdict
            if e.detail:
                entry["signature_detail"] = e.detail
                log("signature mismatch; expected canonical request:\n%s\nstring to sign:\n%s"
                    % (e.detail.get("canonical_request"), e.detail.get("string_to_sign")))
            self._fill_entry(entry, req)
            raise EC2Error(e.code, e.message, e.status)
        params = self._fill_entry(entry, req)
        action = params.get("Action")
        if not action:
            raise EC2Error("MissingAction", "The request must contain the parameter Action.", 400)
        known = ec2_actions()
        if known is not None and action not in known:
            raise EC2Error("InvalidAction", "The action %s is not valid for this web service." % action, 400)
        ids = entry["instance_ids"]

        rule = self.faults.pick(action, ids)
        if rule is not None:
            entry["fault"] = rule.id
            if rule.delay_ms:
                time.sleep(rule.delay_ms / 1000.0)
            if rule.drop == "before":
                entry["_drop_when"] = "before"
                raise Dropped(rule.reset)
            if rule.raw is not None:
                return int(rule.raw["status"]), str(rule.raw.get("body", "")).encode()
            if rule.error is not None:
                raise self._fault_error(rule.error, action, akid, params)

        with self.deny_lock:
            denied = action in self.denied or "*" in self.denied
        if denied:
            raise EC2Error("UnauthorizedOperation", unauthorized_message(action, akid, self.account), 403)
        if params.get("DryRun", "").lower() == "true":
            entry["dry_run"] = True
            raise EC2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)

        status, out = self._dispatch(action, params, rid, entry, rule)

        if rule is not None:
            if rule.response_delay_ms:
                time.sleep(rule.response_delay_ms / 1000.0)
            if rule.drop == "after":
                entry["_drop_when"] = "after"
                entry["status"] = status
                raise Dropped(rule.reset)
        return status, out

    def _fill_entry(self, entry, req):
        pairs = urllib.parse.parse_qsl(req["query"], keep_blank_values=True)
        ctype = ""
        for k, v in req["headers"]:
            if k.lower() == "content-type":
                ctype = v
        if req["body"] and ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            try:
                pairs += urllib.parse.parse_qsl(req["body"].decode("utf-8"), keep_blank_values=True,
                                                strict_parsing=False)
            except UnicodeDecodeError:
                raise EC2Error("InvalidParameterValue", "The request body is not valid UTF-8.", 400)
        params = Params(pairs)
        entry["action"] = params.get("Action")
        entry["params"] = {k: v if len(v) <= MAX_LOGGED_VALUE else
                           "<%d chars, sha256 %s>" % (len(v), hashlib.sha256(v.encode()).hexdigest())
                           for k, v in params.items}
        entry["client_token"] = params.get("ClientToken")
        entry["instance_ids"] = params.instance_ids()
        return params

    def _fault_error(self, spec, action, akid, params):
        code = spec["code"]
        status = spec.get("status")
        message = spec.get("message")
        if message is None:
            if code == "UnauthorizedOperation":
                message = unauthorized_message(action, akid, self.account)
            elif code == "InsufficientInstanceCapacity":
                itype, az = params.get("InstanceType"), None
                ids = params.instance_ids()
                with self.overlay.lock:
                    inst = self.overlay.instances.get(ids[0]) if ids else None
                    if inst is not None:
                        itype = inst.info.get("instance_type")
                        az = inst.info.get("availability_zone")
                message = KNOWN_ERRORS[code][1].format(instance_type=itype or "m5.large",
                                                      az=az or self.region + "a")
        return EC2Error(code, message, int(status) if status is not None else None)

    def _dispatch(self, action, params, rid, entry, rule):
        lose = bool(rule is not None and rule.lose_capacity)
        if action == "RunInstances":
            return self.run_instances(params, rid, entry, lose)
        if action in ("StartInstances", "StopInstances", "TerminateInstances", "RebootInstances"):
            return self.change_state(action, params, rid, entry, lose)
        if action == "DescribeInstances":
            return self.describe_instances(params, rid, entry)
        if action == "DescribeVolumes":
            return self.describe_volumes(params, rid, entry)
        return self.forward_plain(action, params, rid, entry)

    # -- forwarding --------------------------------------------------------

    def forward(self, pairs, rid, entry):
        """Forward to moto; returns the parsed success document or raises EC2Error."""
        status, body = self.moto_call(self.map_request(pairs))
        entry["forwarded"] = True
        body = self.map_response(body)
        body = body.replace(('xmlns="%s"' % MOTO_NS).encode(), ('xmlns="%s"' % EC2_NS).encode())
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            log("moto answered %d with non-XML: %r" % (status, body[:300]))
            raise EC2Error("InternalError", "An internal error has occurred (moto answered %d without XML; "
                           "it may not implement this action)" % status, 500)
        if lname(root) in ("Response", "ErrorResponse") or status >= 400:
            err = next((e for e in root.iter() if lname(e) == "Error"), None)
            code = child_text(err, "Code", "InternalError") if err is not None else "InternalError"
            msg = child_text(err, "Message", "") if err is not None else ""
            raise EC2Error(code, msg, status if status >= 400 else 500)
        for el in root.iter():
            if lname(el) == "requestId":
                el.text = rid
        return root

    def forward_plain(self, action, params, rid, entry):
        mutating = not action.startswith(READ_ONLY_PREFIXES)
        ids = params.instance_ids()
        with self.overlay.lock:
            self.overlay.advance(time.time())
            gone = [i for i in ids if i in self.overlay.instances and self.overlay.instances[i].purged]
            if gone:
                raise not_found(gone)
            if mutating and action != "CreateTags" and action != "DeleteTags":
                for i in ids:
                    inst = self.overlay.instances.get(i)
                    if inst is not None and inst.state == "terminated":
                        raise incorrect_state(i, "modified")
        if mutating:
            with self.mutation_lock:
                try:
                    root = self.forward(params.items, rid, entry)
                finally:
                    self.bump()
                self._track_tags(action, params)
        else:
            root = self.forward(params.items, rid, entry)
        return 200, xml_bytes(root)

    def _track_tags(self, action, params):
        if action not in ("CreateTags", "DeleteTags"):
            return
        tags = params.group("Tag")
        with self.overlay.lock:
            for rid_ in params.numbered("ResourceId"):
                inst = self.overlay.instances.get(rid_)
                if inst is None:
                    continue
                for _, g in tags.items():
                    key = g.get("Key")
                    if key is None:
                        continue
                    if action == "CreateTags":
                        inst.tags[key] = g.get("Value", "")
                    elif "Value" not in g or inst.tags.get(key) == g["Value"]:
                        inst.tags.pop(key, None)
                if action == "DeleteTags" and not tags:
                    inst.tags.clear()

    # -- overlay rendering ---------------------------------------------------

    def _apply_item(self, item, inst):
        """Rewrite one instancesSet item of moto's XML from the overlay."""
        set_state(item, "instanceState", inst.state)
        remove_child(item, "stateReason")
        if inst.state_reason:
            sr = set_child(item, "stateReason")
            set_child(sr, "code", inst.state_reason[0])
            set_child(sr, "message", inst.state_reason[1])
        set_child(item, "reason", inst.transition_reason)
        set_child(item, "clientToken", inst.client_token or "")
        remove_child(item, "iamInstanceProfile")
        if inst.iam_profile:
            p = set_child(item, "iamInstanceProfile")
            set_child(p, "arn", inst.iam_profile["arn"])
            set_child(p, "id", inst.iam_profile["id"])
        kernel = child(item, "kernelId")
        if kernel is not None and kernel.text in (None, "", "None"):
            item.remove(kernel)

    def _adopt(self, item, now):
        """An instance moto has and we never saw (should not happen): take moto's state."""
        iid = child_text(item, "instanceId")
        st = child(item, "instanceState")
        state = child_text(st, "name", "running") if st is not None else "running"
        if state not in STATE_CODES:
            state = "running"
        inst = self.overlay.add(iid, state, now)
        inst.client_token = child_text(item, "clientToken") or None
        self._fill_info(inst, item)
        return inst

    @staticmethod
    def _fill_info(inst, item):
        pl = child(item, "placement")
        inst.info = {
            "private_dns_name": child_text(item, "privateDnsName"),
            "private_ip_address": child_text(item, "privateIpAddress"),
            "availability_zone": child_text(pl, "availabilityZone") if pl is not None else None,
            "subnet_id": child_text(item, "subnetId"),
            "vpc_id": child_text(item, "vpcId"),
            "instance_type": child_text(item, "instanceType"),
            "image_id": child_text(item, "imageId"),
            "launch_time": child_text(item, "launchTime"),
        }

    # -- RunInstances --------------------------------------------------------

    def _profile(self, params):
        arn = params.get("IamInstanceProfile.Arn")
        name = params.get("IamInstanceProfile.Name")
        if not arn and not name:
            return None
        if arn:
            if not re.fullmatch(r"arn:aws(-cn|-us-gov)?:iam::\d{12}:instance-profile/.+", arn):
                raise EC2Error("InvalidParameterValue",
                               "Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance "
                               "Profile ARN" % arn, 400)
        else:
            arn = "arn:aws:iam::%s:instance-profile/%s" % (self.account, name)
        if arn not in self.profile_ids:
            self.profile_ids[arn] = "AIPA" + "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                                     for _ in range(17))
        return {"arn": arn, "id": self.profile_ids[arn]}

    def _check_image(self, image_id):
        if not image_id:
            raise EC2Error("MissingParameter", "The request must contain the parameter ImageId", 400)
        with self.alias_lock:
            if image_id in self.to_moto:
                return
        if not self._moto_knows("DescribeImages", "ImageId.1", image_id):
            raise EC2Error("InvalidAMIID.NotFound", "The image id '[%s]' does not exist" % image_id, 400)

    def run_instances(self, params, rid, entry, lose):
        token = params.get("ClientToken")
        if token is not None:
            if len(token) > CLIENT_TOKEN_MAX or not all(32 <= ord(c) < 127 for c in token):
                raise EC2Error("InvalidParameterValue",
                               "Value (%s) for parameter clientToken is invalid. Client tokens must be at most %d "
                               "ASCII characters" % (token, CLIENT_TOKEN_MAX), 400)
        fingerprint = sorted((k, v) for k, v in params.items if k not in ("ClientToken", "DryRun", "Version"))
        with self.mutation_lock:
            if token and token in self.tokens:
                rec = self.tokens[token]
                if rec["fingerprint"] != fingerprint:
                    raise EC2Error("IdempotentParameterMismatch",
                                   "Arguments on this idempotent request are inconsistent with arguments used in "
                                   "previous request(s).", 400)
                entry["idempotent_replay"] = True
                entry["instance_ids"] = list(rec["instance_ids"])
                root = ET.fromstring(rec["body"])
                return 200, self._render_run(root, rid)
            self._check_image(params.get("ImageId"))
            profile = self._profile(params)
            pairs = [(k, v) for k, v in params.items if not k.startswith("IamInstanceProfile.")]
            if token is None:
                # moto puts "ABCDE" in clientToken when none is given.
                pairs.append(("ClientToken", ""))
            try:
                root = self.forward(pairs, rid, entry)
            finally:
                self.bump()
            now = time.time()
            res_id = child_text(root, "reservationId")
            iset = child(root, "instancesSet")
            new_ids = []
            run_tags = {}
            for _, spec in params.group("TagSpecification").items():
                if spec.get("ResourceType", "instance") == "instance":
                    run_tags.update(tags_from_pairs(Params(spec.items()).group("Tag")))
            bdm = params.group("BlockDeviceMapping")
            with self.overlay.lock:
                for item in children(iset, "item") if iset is not None else []:
                    iid = child_text(item, "instanceId")
                    inst = self.overlay.add(iid, "pending", now)
                    self.overlay.begin(inst, "pending", now, "RunInstances")
                    inst.reservation_id = res_id
                    inst.client_token = token
                    inst.iam_profile = profile
                    inst.lose_capacity = lose
                    inst.shutdown_behavior = params.get("InstanceInitiatedShutdownBehavior", "stop")
                    inst.launch_params = dict(params.items)
                    inst.tags = dict(run_tags)
                    self._fill_info(inst, item)
                    self._record_volumes(item, bdm)
                    new_ids.append(iid)
            entry["instance_ids"] = new_ids
            out = self._render_run(root, rid)
            if token:
                self.tokens[token] = {"fingerprint": fingerprint, "instance_ids": new_ids,
                                      "reservation_id": res_id, "body": out}
                while len(self.tokens) > MAX_CLIENT_TOKENS:
                    self.tokens.popitem(last=False)
            return 200, out

    def _record_volumes(self, item, bdm):
        by_device = {}
        for _, g in bdm.items():
            if "DeviceName" in g:
                by_device[g["DeviceName"]] = g
        mapping = child(item, "blockDeviceMapping")
        for m in children(mapping, "item") if mapping is not None else []:
            dev = child_text(m, "deviceName")
            ebs = child(m, "ebs")
            vol = child_text(ebs, "volumeId") if ebs is not None else None
            spec = by_device.get(dev)
            if vol and spec is not None:
                extra = {}
                if "Ebs.Iops" in spec:
                    extra["iops"] = spec["Ebs.Iops"]
                if "Ebs.Throughput" in spec:
                    extra["throughput"] = spec["Ebs.Throughput"]
                elif spec.get("Ebs.VolumeType") == "gp3":
                    extra["throughput"] = "125"
                self.volumes[vol] = extra

    def _render_run(self, root, rid):
        for el in root.iter():
            if lname(el) == "requestId":
                el.text = rid
        iset = child(root, "instancesSet")
        with self.overlay.lock:
            self.overlay.advance(time.time())
            for item in children(iset, "item") if iset is not None else []:
                inst = self.overlay.instances.get(child_text(item, "instanceId"))
                if inst is not None:
                    self._apply_item(item, inst)
        return xml_bytes(root)

    # -- Start / Stop / Terminate / Reboot -----------------------------------

    def _plan(self, action, inst):
        """The state `action` moves inst to, None for a no-op; raises IncorrectInstanceState."""
        s = inst.state
        if action == "StartInstances":
            if s == "stopped":
                return "pending"
            if s in ("running", "pending"):
                return None
            raise incorrect_state(inst.id, "started")
        if action == "StopInstances":
            if s == "running":
                return "stopping"
            if s in ("stopped", "stopping"):
                return None
            raise incorrect_state(inst.id, "stopped")
        if action == "TerminateInstances":
            if s in ("pending", "running", "stopping", "stopped"):
                return "shutting-down"
            return None
        if action == "RebootInstances":
            if s == "running":
                return None
            raise incorrect_state(inst.id, "rebooted")
        raise AssertionError(action)

    def change_state(self, action, params, rid, entry, lose):
        ids = params.numbered("InstanceId")
        if not ids:
            raise EC2Error("MissingParameter", "The request must contain the parameter InstanceId", 400)
        with self.mutation_lock:
            with self.overlay.lock:
                now = time.time()
                self.overlay.advance(now)
                gone = [i for i in ids if i in self.overlay.instances and self.overlay.instances[i].purged]
                if gone:
                    raise not_found(gone)
                for i in ids:
                    inst = self.overlay.instances.get(i)
                    if inst is not None:
                        self._plan(action, inst)
            try:
                root = self.forward(params.items, rid, entry)
            finally:
                self.bump()
            with self.overlay.lock:
                now = time.time()
                self.overlay.advance(now)
                changes = {}
                for i in ids:
                    inst = self.overlay.instances.get(i)
                    if inst is None:
                        continue    # moto knew it and we did not: adopted on next Describe
                    prev = inst.state
                    try:
                        new = self._plan(action, inst)
                    except EC2Error:
                        new = None  # a timer moved it meanwhile; moto already acted
                    if new is not None:
                        if action in ("StopInstances", "TerminateInstances"):
                            inst.state_reason = REASON_USER_SHUTDOWN
                            inst.transition_reason = reason_stamp("User initiated", now)
                        elif action == "StartInstances":
                            inst.lose_capacity = lose
                        self.overlay.begin(inst, new, now, action)
                    changes[i] = (prev, inst.state)
                iset = child(root, "instancesSet")
                for item in children(iset, "item") if iset is not None else []:
                    iid = child_text(item, "instanceId")
                    if iid in changes:
                        prev, cur = changes[iid]
                        set_state(item, "previousState", prev)
                        set_state(item, "currentState", cur)
            return 200, xml_bytes(root)

    # -- DescribeInstances -----------------------------------------------------

    STATE_FILTERS = ("instance-state-name", "instance-state-code")

    def describe_instances(self, params, rid, entry):
        ids = params.numbered("InstanceId")
        max_results = params.get("MaxResults")
        token = params.get("NextToken")
        if ids and (max_results is not None):
            raise EC2Error("InvalidParameterCombination",
                           "The parameter instancesSet cannot be used with the parameter maxResults", 400)
        if max_results is not None:
            try:
                max_results = int(max_results)
            except ValueError:
                raise EC2Error("InvalidParameterValue", "Invalid value '%s' for maxResults" % max_results, 400)
            if not 5 <= max_results <= 1000:
                raise EC2Error("InvalidParameterValue",
                               "Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and "
                               "1000." % max_results, 400)
        filters = params.filters()
        state_filters = [(n, v) for n, v in filters if n in self.STATE_FILTERS]
        other = [(n, v) for n, v in filters if n not in self.STATE_FILTERS]
        base = [("Action", "DescribeInstances"), ("Version", params.get("Version", "2016-11-15"))]
        base += [("InstanceId.%d" % (n + 1), i) for n, i in enumerate(ids)]
        for n, (name, vals) in enumerate(other, 1):
            base.append(("Filter.%d.Name" % n, name))
            base += [("Filter.%d.Value.%d" % (n, m), v) for m, v in enumerate(vals, 1)]
        query_key = hashlib.sha256(json.dumps([base, state_filters]).encode()).hexdigest()[:16]
        after = 0
        if token is not None:
            try:
                tok = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
                after = int(tok["after"])
                if tok["q"] != query_key:
                    raise ValueError("different query")
            except (ValueError, KeyError, TypeError):
                raise EC2Error("InvalidPaginationToken", "The specified pagination token is not valid or is expired.",
                               400)
        with self.overlay.lock:
            self.overlay.advance(time.time())
            gone = [i for i in ids if i in self.overlay.instances and self.overlay.instances[i].purged]
        if gone:
            raise not_found(gone)

        pages = self._moto_describe(base, rid, entry)
        rows = []       # (seq, reservation element, item)
        with self.overlay.lock:
            now = time.time()
            self.overlay.advance(now)
            for page in pages:
                rset = child(page, "reservationSet")
                for res in children(rset, "item") if rset is not None else []:
                    iset = child(res, "instancesSet")
                    for item in children(iset, "item") if iset is not None else []:
                        iid = child_text(item, "instanceId")
                        inst = self.overlay.instances.get(iid) or self._adopt(item, now)
                        if inst.purged:
                            continue
                        if not self._state_match(inst, state_filters):
                            continue
                        self._apply_item(item, inst)
                        rows.append((inst.seq, res, item))
        rows.sort(key=lambda r: r[0])
        rows = [r for r in rows if r[0] > after]
        next_token = None
        if max_results is not None and len(rows) > max_results:
            rows = rows[:max_results]
            next_token = base64.urlsafe_b64encode(json.dumps(
                {"after": rows[-1][0], "q": query_key}).encode()).decode().rstrip("=")
        out = ET.Element("{%s}DescribeInstancesResponse" % EC2_NS)
        ET.SubElement(out, "{%s}requestId" % EC2_NS).text = rid
        rset = ET.SubElement(out, "{%s}reservationSet" % EC2_NS)
        current = None
        current_res = None
        for _, res, item in rows:
            if res is not current_res:
                current_res = res
                current = ET.SubElement(rset, "{%s}item" % EC2_NS)
                for c in res:
                    if lname(c) != "instancesSet":
                        current.append(c)
                iset = ET.SubElement(current, "{%s}instancesSet" % EC2_NS)
            iset.append(item)
        if next_token:
            ET.SubElement(out, "{%s}nextToken" % EC2_NS).text = next_token
        return 200, xml_bytes(out)

    @staticmethod
    def _state_match(inst, state_filters):
        for name, vals in state_filters:
            have = inst.state if name == "instance-state-name" else str(STATE_CODES[inst.state])
            if not any(fnmatch.fnmatchcase(have, v) for v in vals):
                return False
        return True

    def _moto_describe(self, base, rid, entry):
        """Every page of moto's answer to `base` (cached until moto's data changes)."""
        key = json.dumps(base)
        with self.cache_lock:
            gen = self.generation
            hit = self.describe_cache.get(key)
            if hit is not None and hit[0] == gen:
                self.describe_cache.move_to_end(key)
                entry["forwarded"] = True
                entry["cached"] = True
                return [ET.fromstring(b) for b in hit[1]]
        pages = []
        raw = []
        token = None
        has_ids = any(k.startswith("InstanceId.") for k, _ in base)
        for _ in range(10000):
            pairs = list(base)
            if not has_ids:
                pairs.append(("MaxResults", "1000"))
            if token:
                pairs.append(("NextToken", token))
            root = self.forward(pairs, rid, entry)
            pages.append(root)
            raw.append(ET.tostring(root))
            token = child_text(root, "nextToken")
            if not token:
                break
        with self.cache_lock:
            if self.generation == gen:
                self.describe_cache[key] = (gen, raw)
                while len(self.describe_cache) > MAX_DESCRIBE_CACHE:
                    self.describe_cache.popitem(last=False)
        return pages

    # -- DescribeVolumes: moto drops Iops and Throughput of launch volumes ----

    def describe_volumes(self, params, rid, entry):
        root = self.forward(params.items, rid, entry)
        vols = dict(self.volumes)       # written under mutation_lock; a copy is enough here
        for vset in [e for e in root.iter() if lname(e) == "volumeSet"]:
            for item in children(vset, "item"):
                extra = vols.get(child_text(item, "volumeId"))
                if not extra:
                    continue
                if "iops" in extra:
                    set_child(item, "iops", extra["iops"])
                if "throughput" in extra:
                    set_child(item, "throughput", extra["throughput"])
        return 200, xml_bytes(root)

    # -- control-API operations on instances ---------------------------------

    def _sync_moto(self, iid, state):
        action = {"running": "StartInstances", "pending": "StartInstances", "stopped": "StopInstances",
                  "stopping": "StopInstances", "terminated": "TerminateInstances",
                  "shutting-down": "TerminateInstances"}[state]
        status, body = self.moto_call(self.map_request([("Action", action), ("Version", "2016-11-15"),
                                                        ("InstanceId.1", iid)]))
        self.bump()
        if status != 200:
            log("moto %s %s answered %d: %s" % (action, iid, status, body[:200]))

    def poweroff(self, iid):
        with self.mutation_lock:
            with self.overlay.lock:
                now = time.time()
                self.overlay.advance(now)
                inst = self._control_instance(iid)
                if inst.state != "running":
                    raise ValueError("instance %s is %s, not running" % (iid, inst.state))
                inst.state_reason = REASON_INSTANCE_SHUTDOWN
                inst.transition_reason = reason_stamp("User initiated", now)
                if inst.shutdown_behavior == "terminate":
                    self.overlay.begin(inst, "shutting-down", now, "poweroff (shutdown behaviour terminate)")
                    target = "terminated"
                else:
                    self.overlay.begin(inst, "stopping", now, "poweroff")
                    target = "stopped"
            self._sync_moto(iid, target)
            return inst.public()

    def lose_capacity(self, iid, to=None):
        """A pending instance never makes it to running.

        After StartInstances it falls back to stopped; a launch that never ran
        ends terminated, as EC2 does; `to` overrides the choice.
        """
        if to not in (None, "stopped", "terminated"):
            raise TypeError("to must be stopped or terminated")
        with self.mutation_lock:
            with self.overlay.lock:
                now = time.time()
                self.overlay.advance(now)
                inst = self._control_instance(iid)
                if inst.state != "pending":
                    raise ValueError("instance %s is %s, not pending" % (iid, inst.state))
                inst.state_reason = REASON_CAPACITY
                inst.transition_reason = reason_stamp("Service initiated", now)
                target = to or ("stopped" if inst.ever_running else "terminated")
                self.overlay.move(inst, target, now, "capacity lost")
            self._sync_moto(iid, target)
            return inst.public()

    def set_state(self, iid, state, reason=None):
        if state not in STATE_CODES:
            raise ValueError("unknown state %r" % state)
        with self.mutation_lock:
            with self.overlay.lock:
                now = time.time()
                self.overlay.advance(now)
                inst = self._control_instance(iid)
                if reason:
                    inst.state_reason = (reason, reason)
                if state in ("pending", "stopping", "shutting-down"):
                    self.overlay.begin(inst, state, now, "set by test")
                else:
                    self.overlay.move(inst, state, now, "set by test")
            self._sync_moto(iid, state)
            return inst.public()

    def _control_instance(self, iid):
        inst = self.overlay.instances.get(iid)
        if inst is None or inst.purged:
            raise KeyError(iid)
        return inst

    def transitions(self, since, wait):
        deadline = time.time() + max(0.0, min(wait, 60.0))
        with self.overlay.lock:
            while True:
                self.overlay.advance(time.time())
                out = [t for t in self.overlay.transitions if t["seq"] > since]
                remaining = deadline - time.time()
                if out or remaining <= 0:
                    return {"transitions": out, "last_seq": self.overlay.transition_seq}
                self.overlay.changed.wait(min(remaining, 0.25))

    # -- the control API ------------------------------------------------------

    def handle_control(self, method, path, query, body):
        """JSON control API; returns (status, object)."""
        q = dict(urllib.parse.parse_qsl(query))
        try:
            doc = json.loads(body) if body.strip() else {}
        except ValueError as e:
            return 400, {"error": "bad JSON: %s" % e}
        parts = [p for p in path[len("/_sim/"):].split("/") if p]
        try:
            return self._control(method, parts, q, doc)
        except KeyError as e:
            return 404, {"error": "not found: %s" % e.args[0]}
        except (ValueError, TypeError) as e:
            return 400, {"error": str(e)}

    def _control(self, method, parts, q, doc):
        head = parts[0] if parts else ""
        if head == "health" and method == "GET":
            return 200, {"ok": True, "moto_port": self.moto_port, "region": self.region,
                         "time_scale": self.overlay.scale}
        if head == "reset" and method == "POST":
            self.reset()
            return 200, {"ok": True}
        if head == "faults":
            if method == "GET":
                return 200, {"faults": self.faults.list()}
            if method == "POST" and len(parts) == 1:
                specs = doc if isinstance(doc, list) else [doc]
                rules = [self.faults.add(s) for s in specs]
                return 200, {"faults": [r.public() for r in rules]}
            if method == "POST" and parts[1:] == ["seed"]:
                self.faults.seed(doc.get("seed"))
                return 200, {"ok": True}
            if method == "DELETE" and len(parts) == 1:
                self.faults.clear()
                return 200, {"ok": True}
            if method == "DELETE" and len(parts) == 2:
                if not self.faults.remove(int(parts[1])):
                    raise KeyError(parts[1])
                return 200, {"ok": True}
        if head == "deny":
            with self.deny_lock:
                if method == "POST":
                    acts = doc.get("actions")
                    if not isinstance(acts, list):
                        raise ValueError("actions must be a list")
                    self.denied.update(acts)
                elif method == "DELETE":
                    acts = doc.get("actions")
                    if acts:
                        self.denied.difference_update(acts)
                    else:
                        self.denied.clear()
                elif method != "GET":
                    return 405, {"error": "method not allowed"}
                return 200, {"actions": sorted(self.denied)}
        if head == "timings":
            with self.overlay.lock:
                if method == "PUT" or method == "POST":
                    for k, v in doc.items():
                        if k not in self.overlay.timings:
                            raise ValueError("unknown timing %r" % k)
                        if float(v) < 0:
                            raise ValueError("%s must be >= 0" % k)
                        self.overlay.timings[k] = float(v)
                elif method != "GET":
                    return 405, {"error": "method not allowed"}
                return 200, dict(self.overlay.timings)
        if head == "instances":
            if len(parts) == 1 and method == "GET":
                with self.overlay.lock:
                    self.overlay.advance(time.time())
                    insts = sorted(self.overlay.instances.values(), key=lambda i: i.seq)
                    out = [i.public() for i in insts if q.get("purged") == "1" or not i.purged]
                    if "state" in q:
                        out = [i for i in out if i["state"] == q["state"]]
                return 200, {"instances": out}
            if len(parts) == 2 and method == "GET":
                with self.overlay.lock:
                    self.overlay.advance(time.time())
                    inst = self.overlay.instances.get(parts[1])
                    if inst is None:
                        raise KeyError(parts[1])
                    return 200, inst.public()
            if len(parts) == 3 and method == "POST":
                iid, op = parts[1], parts[2]
                try:
                    if op == "poweroff":
                        return 200, self.poweroff(iid)
                    if op == "lose-capacity":
                        return 200, self.lose_capacity(iid, doc.get("to"))
                    if op == "state":
                        return 200, self.set_state(iid, doc.get("state"), doc.get("reason"))
                except ValueError as e:
                    return 409, {"error": str(e)}
        if head == "transitions" and method == "GET":
            return 200, self.transitions(int(q.get("since", 0)), float(q.get("wait", 0)))
        if head == "requests":
            if method == "GET":
                fwd = q.get("forwarded")
                return 200, self.requests.query(q.get("action"), int(q.get("since", 0)),
                                                None if fwd is None else fwd in ("1", "true"))
            if method == "DELETE":
                self.requests.clear()
                return 200, {"ok": True}
        if head == "credentials":
            if method == "GET":
                return 200, {"credentials": self.verifier.list()}
            if method == "POST":
                for k in ("access_key_id", "secret_access_key"):
                    if not doc.get(k):
                        raise ValueError("%s is required" % k)
                cred = Credential(doc["access_key_id"], doc["secret_access_key"], doc.get("session_token"),
                                  parse_time(doc.get("expiration")))
                self.verifier.add_temporary(cred)
                return 200, cred.public()
            if method == "DELETE" and len(parts) == 2:
                if not self.verifier.remove(parts[1]):
                    raise KeyError(parts[1])
                return 200, {"ok": True}
        if head == "network":
            if method == "POST":
                with self.mutation_lock:
                    for s in doc.get("subnets", []):
                        if isinstance(s, str):
                            s = {"id": s}
                        self.add_subnet(s["id"], s.get("availability_zone"))
                    for g in doc.get("security_groups", []):
                        self.add_security_group(g)
                    for a in doc.get("images", []):
                        self.add_image(a)
                    self.bump()
            elif method != "GET":
                return 405, {"error": "method not allowed"}
            return 200, self.network
        return 404, {"error": "no such control endpoint: %s %s" % (method, "/_sim/" + "/".join(parts))}


# ---------------------------------------------------------------------------
# HTTP(S) server.

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonEC2"
    sys_version = ""
    timeout = IDLE_TIMEOUT_SECONDS

    def setup(self):
        super().setup()
        self.conn_requests = 0
        self.conn_no = self.server.next_conn()

    def log_message(self, fmt, *a):
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def do_PUT(self):
        self._serve()

    def do_DELETE(self):
        self._serve()

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY_BYTES:
            return None
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # One write for headers and body: one TLS record, one segment.
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _serve(self):
        self.conn_requests += 1
        emu = self.server.emulator
        path, _, query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(413, error_xml("RequestEntityTooLarge", "Request body too large", str(uuid.uuid4())),
                       "text/xml;charset=UTF-8")
            return
        if path.startswith("/_sim/") or path == "/_sim":
            status, obj = emu.handle_control(self.command, path, query, body.decode("utf-8", "replace"))
            self._send(status, (json.dumps(obj, indent=1) + "\n").encode(), "application/json")
            return
        req = {"method": self.command, "path": path, "query": query, "headers": list(self.headers.items()),
               "body": body, "conn": self.conn_no, "conn_request": self.conn_requests,
               "tls": self.server.ssl_ctx is not None}
        try:
            status, out = emu.handle_sts(req) if path in ("/sts", "/sts/") else emu.handle_ec2(req)
        except Dropped as d:
            self.close_connection = True
            self.wfile.flush()
            if d.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                self.connection.close()
            except OSError:
                pass
            return
        self._send(status, out, "text/xml;charset=UTF-8")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, emulator, ssl_ctx):
        super().__init__(addr, Handler)
        self.emulator = emulator
        self.ssl_ctx = ssl_ctx
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._conn_lock = threading.Lock()
        self._conn_seq = 0

    def next_conn(self):
        with self._conn_lock:
            self._conn_seq += 1
            return self._conn_seq

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            request.close()
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def finish_request(self, request, client_address):
        # Headers and body are separate writes; without TCP_NODELAY the body
        # waits for the client's delayed ACK (~40 ms per request).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = request
        if self.ssl_ctx is not None:
            request.settimeout(10)
            try:
                conn = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log("TLS handshake with %s:%d failed: %s" % (client_address[0], client_address[1], e))
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                try:
                    conn.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description="Emulated EC2: moto_server behind a SigV4-verifying, fault-injecting layer.")
    p.add_argument("--dir", required=True, help="directory for ec2sim.port, ec2sim-ca.crt, ec2sim.env")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--plain-http", action="store_true", help="serve HTTP instead of HTTPS")
    p.add_argument("--pending-seconds", type=float, default=2.0)
    p.add_argument("--stopping-seconds", type=float, default=2.0)
    p.add_argument("--shutting-down-seconds", type=float, default=1.0)
    p.add_argument("--terminated-visible-seconds", type=float, default=3600.0)
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply every transition time (these options and PUT /_sim/timings) by F, "
                        "e.g. 0.1 for a ten times faster simulation")
    p.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    p.add_argument("--secret-access-key", default=DEFAULT_SECRET_ACCESS_KEY)
    p.add_argument("--region", default=DEFAULT_REGION)
    p.add_argument("--subnet", action="append", metavar="ID[:AZ]",
                   help="stand-in subnet that exists in the account (repeatable; default %s)" % DEFAULT_SUBNETS)
    p.add_argument("--security-group", action="append", metavar="ID",
                   help="stand-in security group (repeatable; default %s)" % DEFAULT_SECURITY_GROUPS)
    p.add_argument("--image", action="append", metavar="ID",
                   help="stand-in AMI (repeatable; default %s)" % DEFAULT_IMAGES)
    p.add_argument("--seed", type=int, default=None, help="seed for fault probabilities")
    args = p.parse_args(argv)
    if args.time_scale <= 0:
        p.error("--time-scale must be > 0")

    os.makedirs(args.dir, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    moto = MotoChild()
    server = None
    try:
        moto.start()
        emu = Emulator(args, moto.port)
        emu.start()
        ca_path = os.path.join(args.dir, "ec2sim-ca.crt")
        ctx = None if args.plain_http else make_tls(ca_path)
        server = Server((args.host, args.port), emu, ctx)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="http", daemon=True).start()
        scheme = "http" if args.plain_http else "https"
        url = "%s://%s:%d" % (scheme, args.host, port)
        env = ["AWS_ENDPOINT_URL_EC2=%s" % url, "AWS_ENDPOINT_URL_STS=%s/sts" % url,
               "AWS_ACCESS_KEY_ID=%s" % args.access_key_id,
               "AWS_SECRET_ACCESS_KEY=%s" % args.secret_access_key,
               "AWS_REGION=%s" % args.region,
               "AWS_DEFAULT_REGION=%s" % args.region,
               "STRATOS_SIM_EC2_CONTROL=%s/_sim" % url]
        if ctx is not None:
            env.append("AWS_CA_BUNDLE=%s" % os.path.abspath(ca_path))
        write_atomic(os.path.join(args.dir, "ec2sim.env"), "\n".join(env) + "\n")
        write_atomic(os.path.join(args.dir, "ec2sim.port"), "%d\n" % port)
        log("serving %s (moto on %d)" % (url, moto.port))
        while not stop.wait(0.5):
            if not moto.alive():
                log("moto_server exited with %s; stopping" % moto.proc.returncode)
                return 1
        log("stopping")
        return 0
    except Exception as e:
        log("fatal: %s" % e)
        traceback.print_exc()
        return 1
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
