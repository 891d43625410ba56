#!/usr/bin/env python3
"""AWS credential sources for tests: STS web identity, container credentials, IMDSv2.

One plain-HTTP server answers the three ways a pod or node gets temporary
credentials, each at the path the standard environment variables point to:

  AWS_ENDPOINT_URL_STS=http://127.0.0.1:PORT            POST / (AssumeRoleWithWebIdentity)
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/v1/credentials
  AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT    (/latest/api/token, /latest/meta-data/...)

Every issued key is registered with a running ec2sim (--ec2sim-control), so
the EC2 emulator accepts requests signed with it.  A JSON control API under
/_auth/ sets expirations, counts requests and injects failures (see
tests/sim/README-ec2sim.md).

    python3 tests/sim/awsauth.py --dir DIR [--ec2sim-control URL] ...
"""

import argparse
import base64
import collections
import datetime
import http.server
import json
import os
import secrets
import signal
import socket
import ssl
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from xml.sax.saxutils import escape as xml_escape

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
MAX_BODY_BYTES = 64 * 1024
MAX_LOG = 5000
MAX_IMDS_TOKENS = 10000
IMDS_MAX_TTL = 21600
ENDPOINTS = ("sts", "container", "imds-token", "imds-role", "imds-credentials", "imds-metadata")


def log(msg):
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    sys.stderr.write("awsauth %s %s\n" % (ts, msg))
    sys.stderr.flush()


def iso(epoch, digits=0):
    dt = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if digits > 0:
        frac = ("%06d" % dt.microsecond) + "000"
        base += "." + frac[:digits]
    return base + "Z"


def jwt_claims(token):
    """Claims of a JWT without verifying it (a stub IdP only reads them)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.defaults = {
            "expiration_seconds": args.expiration_seconds,
            "fractional_digits": args.fractional_digits,
            "accept_tokens": args.accept_token or None,
            "imds_v1_disabled": args.imds_v1_disabled,
            "container_token": args.container_token,
            "role_name": args.role_name,
            "region": args.region,
        }
        self.reset()

    def reset(self):
        with self.lock:
            self.config = dict(self.defaults)
            self.counts = collections.Counter()
            self.failures = {}                      # endpoint -> spec with "remaining"
            self.web_identity_tokens = collections.deque(maxlen=MAX_LOG)
            self.log = collections.deque(maxlen=MAX_LOG)
            self.issued = collections.deque(maxlen=MAX_LOG)
            self.imds_tokens = {}                   # token -> expiry

    def take_failure(self, endpoint):
        with self.lock:
            for key in (endpoint, endpoint.split("-")[0]):
                spec = self.failures.get(key)
                if spec and spec["remaining"] > 0:
                    spec["remaining"] -= 1
                    spec["hits"] += 1
                    return dict(spec)
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "awsauth"
    sys_version = ""
    timeout = 60

    def setup(self):
        # Avoid the Nagle/delayed-ACK stall between separate header and body writes.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def log_message(self, fmt, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def _send(self, status, body, ctype="text/plain", headers=()):
        """Holds the reply until the handler returns (see _dispatch): a handler
        notes the request after choosing its reply, and a client that has its
        reply must find the request already counted."""
        self._reply = (status, body, ctype, headers)

    def _write(self, status, body, ctype, headers):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj, indent=1) + "\n", "application/json")

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY_BYTES:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def _note(self, endpoint, status, extra=None):
        with self.st.lock:
            self.st.counts[endpoint] += 1
            entry = {"time": time.time(), "endpoint": endpoint, "method": self.command,
                     "path": self.path, "status": status}
            if extra:
                entry.update(extra)
            self.st.log.append(entry)
        log("%s %s %s -> %d" % (endpoint, self.command, self.path, status))

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        self._reply = None
        try:
            self._route()
        finally:
            if self._reply is not None:
                self._write(*self._reply)

    def _route(self):
        path, _, query = self.path.partition("?")
        try:
            body = self._body()
        except ValueError:
            self.close_connection = True
            self._send(413, "request too large")
            return
        if path.startswith("/_auth/"):
            self._control(path, query, body)
        elif path == "/latest/api/token":
            self._imds_token()
        elif path.startswith("/latest/"):
            self._imds_get(path)
        elif path == self.server.args.container_path:
            self._container()
        elif path == "/" or path == "":
            self._sts(query, body)
        else:
            self._send(404, "not found")

    # -- credentials ---------------------------------------------------------

    def _issue(self, source):
        with self.st.lock:
            cfg = dict(self.st.config)
        now = time.time()
        akid = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
        cred = {
            "AccessKeyId": akid,
            "SecretAccessKey": base64.b64encode(secrets.token_bytes(30)).decode(),
            "SessionToken": "IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(96)).decode(),
            "ExpirationEpoch": now + float(cfg["expiration_seconds"]),
            "Expiration": iso(now + float(cfg["expiration_seconds"]), int(cfg["fractional_digits"])),
            "Source": source,
            "Issued": iso(now, 3),
        }
        control = self.server.args.ec2sim_control
        if control:
            payload = json.dumps({"access_key_id": cred["AccessKeyId"],
                                  "secret_access_key": cred["SecretAccessKey"],
                                  "session_token": cred["SessionToken"],
                                  "expiration": cred["ExpirationEpoch"]}).encode()
            req = urllib.request.Request(control.rstrip("/") + "/credentials", data=payload, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10, context=self.server.ec2sim_ssl) as resp:
                resp.read()
        with self.st.lock:
            self.st.issued.append(dict(cred))
        return cred

    def _failure(self, endpoint):
        return self.st.take_failure(endpoint)

    # -- STS -----------------------------------------------------------------

    def _sts_error(self, status, code, message, typ="Sender"):
        rid = str(uuid.uuid4())
        body = ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n'
                '    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n'
                % (STS_NS, typ, xml_escape(code), xml_escape(message), rid))
        self._send(status, body, "text/xml")
        return status

    def _sts(self, query, body):
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if body:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action")
        token = params.get("WebIdentityToken")
        extra = {"action": action, "role_arn": params.get("RoleArn"),
                 "role_session_name": params.get("RoleSessionName")}
        if token is not None:
            with self.st.lock:
                self.st.web_identity_tokens.append(token)
        fail = self._failure("sts")
        if fail is not None:
            status = self._sts_error(fail["status"], fail["code"], fail["message"],
                                     "Receiver" if fail["status"] >= 500 else "Sender")
            self._note("sts", status, extra)
            return
        if action != "AssumeRoleWithWebIdentity":
            status = self._sts_error(400, "InvalidAction", "Could not find operation %s for version %s"
                                     % (action, params.get("Version")))
            self._note("sts", status, extra)
            return
        missing = [n for n, k in (("roleArn", "RoleArn"), ("roleSessionName", "RoleSessionName"),
                                  ("webIdentityToken", "WebIdentityToken")) if not params.get(k)]
        if missing:
            msg = "%d validation error%s detected: %s" % (
                len(missing), "s" if len(missing) > 1 else "",
                "; ".join("Value null at '%s' failed to satisfy constraint: Member must not be null" % m
                          for m in missing))
            self._note("sts", self._sts_error(400, "ValidationError", msg), extra)
            return
        with self.st.lock:
            accept = self.st.config["accept_tokens"]
        if accept is not None and token not in accept:
            self._note("sts", self._sts_error(400, "InvalidIdentityToken",
                                              "The web identity token was rejected by the identity provider"),
                       extra)
            return
        try:
            cred = self._issue("sts")
        except (urllib.error.URLError, OSError) as e:
            self._note("sts", self._sts_error(500, "InternalFailure", "awsauth: registering with ec2sim failed: %s"
                                              % e, "Receiver"), extra)
            return
        claims = jwt_claims(token)
        role_arn = params["RoleArn"]
        role_name = role_arn.rsplit("/", 1)[-1]
        session = params["RoleSessionName"]
        rid = str(uuid.uuid4())
        xml = """<AssumeRoleWithWebIdentityResponse xmlns="%(ns)s">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>%(sub)s</SubjectFromWebIdentityToken>
    <Audience>%(aud)s</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::%(acct)s:assumed-role/%(role)s/%(session)s</Arn>
      <AssumedRoleId>AROA%(roleid)s:%(session)s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>%(token)s</SessionToken>
      <SecretAccessKey>%(secret)s</SecretAccessKey>
      <Expiration>%(exp)s</Expiration>
      <AccessKeyId>%(akid)s</AccessKeyId>
    </Credentials>
    <Provider>%(iss)s</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>%(rid)s</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""" % {"ns": STS_NS, "sub": xml_escape(str(claims.get("sub", "unknown"))),
       "aud": xml_escape(str(claims.get("aud", "sts.amazonaws.com"))), "acct": ACCOUNT,
       "role": xml_escape(role_name), "session": xml_escape(session), "roleid": "STRATOSSIMROLE0001",
       "token": xml_escape(cred["SessionToken"]), "secret": xml_escape(cred["SecretAccessKey"]),
       "exp": cred["Expiration"], "akid": cred["AccessKeyId"],
       "iss": xml_escape(str(claims.get("iss", "oidc.eks.amazonaws.com"))), "rid": rid}
        self._send(200, xml, "text/xml")
        extra["access_key_id"] = cred["AccessKeyId"]
        self._note("sts", 200, extra)

    # -- container credentials (EKS Pod Identity) -------------------------------

    def _container(self):
        if self.command != "GET":
            self._json(405, {"Code": "MethodNotAllowed", "Message": "use GET"})
            self._note("container", 405)
            return
        fail = self._failure("container")
        if fail is not None:
            self._json(fail["status"], {"Code": fail["code"], "Message": fail["message"]})
            self._note("container", fail["status"])
            return
        auth = self.headers.get("Authorization")
        with self.st.lock:
            want = self.st.config["container_token"]
        if auth is None:
            self._json(401, {"Code": "AccessDeniedException", "Message": "Authorization header is missing"})
            self._note("container", 401)
            return
        if auth.strip() != want:
            self._json(403, {"Code": "AccessDeniedException", "Message": "Authorization token is not valid"})
            self._note("container", 403, {"authorization": auth})
            return
        try:
            cred = self._issue("container")
        except (urllib.error.URLError, OSError) as e:
            self._json(500, {"Code": "InternalError", "Message": "awsauth: registering with ec2sim failed: %s" % e})
            self._note("container", 500)
            return
        self._json(200, {"AccessKeyId": cred["AccessKeyId"], "SecretAccessKey": cred["SecretAccessKey"],
                         "Token": cred["SessionToken"], "AccountId": ACCOUNT, "Expiration": cred["Expiration"]})
        self._note("container", 200, {"access_key_id": cred["AccessKeyId"]})

    # -- IMDSv2 -------------------------------------------------------------------

    def _imds_token(self):
        if self.command != "PUT":
            self._send(405, "")
            self._note("imds-token", 405)
            return
        fail = self._failure("imds-token")
        if fail is not None:
            self._send(fail["status"], fail["message"])
            self._note("imds-token", fail["status"])
            return
        if self.headers.get("X-Forwarded-For"):
            self._send(403, "Forbidden")
            self._note("imds-token", 403)
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(ttl)
            if not 1 <= ttl <= IMDS_MAX_TTL:
                raise ValueError
        except (TypeError, ValueError):
            self._send(400, "Bad Request")
            self._note("imds-token", 400)
            return
        token = base64.urlsafe_b64encode(secrets.token_bytes(42)).decode()
        now = time.time()
        with self.st.lock:
            toks = self.st.imds_tokens
            for t in [t for t, exp in toks.items() if exp <= now]:
                del toks[t]
            if len(toks) >= MAX_IMDS_TOKENS:
                toks.pop(next(iter(toks)))
            toks[token] = now + ttl
        self._send(200, token, "text/plain", [("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])
        self._note("imds-token", 200)

    def _imds_get(self, path):
        if path.startswith("/latest/meta-data/iam/security-credentials"):
            rest = path[len("/latest/meta-data/iam/security-credentials"):].strip("/")
            endpoint = "imds-credentials" if rest else "imds-role"
        else:
            endpoint = "imds-metadata"
        if self.command != "GET":
            self._send(405, "")
            self._note(endpoint, 405)
            return
        fail = self._failure(endpoint)
        if fail is not None:
            self._send(fail["status"], fail["message"])
            self._note(endpoint, fail["status"])
            return
        token = self.headers.get("X-aws-ec2-metadata-token")
        with self.st.lock:
            cfg = dict(self.st.config)
            exp = self.st.imds_tokens.get(token) if token is not None else None
        if token is not None and (exp is None or exp <= time.time()):
            self._send(401, "Unauthorized")
            self._note(endpoint, 401)
            return
        if token is None and cfg["imds_v1_disabled"]:
            self._send(401, "Unauthorized")
            self._note(endpoint, 401)
            return
        if endpoint == "imds-role":
            self._send(200, cfg["role_name"])
            self._note(endpoint, 200)
            return
        if endpoint == "imds-credentials":
            if rest != cfg["role_name"]:
                self._send(404, "Not Found")
                self._note(endpoint, 404)
                return
            try:
                cred = self._issue("imds")
            except (urllib.error.URLError, OSError) as e:
                self._send(500, "awsauth: registering with ec2sim failed: %s" % e)
                self._note(endpoint, 500)
                return
            self._json(200, {"Code": "Success", "LastUpdated": cred["Issued"], "Type": "AWS-HMAC",
                             "AccessKeyId": cred["AccessKeyId"], "SecretAccessKey": cred["SecretAccessKey"],
                             "Token": cred["SessionToken"], "Expiration": cred["Expiration"]})
            self._note(endpoint, 200, {"access_key_id": cred["AccessKeyId"]})
            return
        meta = {
            "/latest/meta-data/placement/region": cfg["region"],
            "/latest/meta-data/placement/availability-zone": cfg["region"] + "a",
            "/latest/meta-data/instance-id": "i-0a1b2c3d4e5f60718",
            "/latest/dynamic/instance-identity/document": json.dumps({
                "region": cfg["region"], "accountId": ACCOUNT, "instanceId": "i-0a1b2c3d4e5f60718",
                "availabilityZone": cfg["region"] + "a"}),
        }
        if path in meta:
            self._send(200, meta[path])
            self._note(endpoint, 200)
        else:
            self._send(404, "Not Found")
            self._note(endpoint, 404)

    # -- control API --------------------------------------------------------------

    def _control(self, path, query, body):
        try:
            doc = json.loads(body) if body.strip() else {}
        except ValueError as e:
            self._json(400, {"error": "bad JSON: %s" % e})
            return
        op = path[len("/_auth/"):].strip("/")
        st = self.st
        try:
            if op == "health":
                self._json(200, {"ok": True})
            elif op == "config" and self.command == "GET":
                with st.lock:
                    self._json(200, st.config)
            elif op == "config" and self.command in ("PUT", "POST"):
                with st.lock:
                    for k, v in doc.items():
                        if k not in st.config:
                            raise ValueError("unknown setting %r" % k)
                        if k == "expiration_seconds":
                            v = float(v)
                        elif k == "fractional_digits":
                            v = int(v)
                            if not 0 <= v <= 9:
                                raise ValueError("fractional_digits must be 0..9")
                        elif k == "accept_tokens" and v is not None and not isinstance(v, list):
                            raise ValueError("accept_tokens must be a list or null")
                        st.config[k] = v
                    self._json(200, st.config)
            elif op == "requests" and self.command == "GET":
                with st.lock:
                    self._json(200, {"counts": {e: st.counts.get(e, 0) for e in ENDPOINTS},
                                     "web_identity_tokens": list(st.web_identity_tokens),
                                     "log": list(st.log)})
            elif op == "requests" and self.command == "DELETE":
                with st.lock:
                    st.counts.clear()
                    st.log.clear()
                    st.web_identity_tokens.clear()
                self._json(200, {"ok": True})
            elif op == "issued" and self.command == "GET":
                with st.lock:
                    self._json(200, {"credentials": list(st.issued)})
            elif op == "fail" and self.command == "POST":
                ep = doc.get("endpoint")
                if ep not in ENDPOINTS + ("imds",):
                    raise ValueError("endpoint must be one of %s or imds" % (ENDPOINTS,))
                status = int(doc.get("status", 500))
                spec = {"endpoint": ep, "remaining": int(doc.get("count", 1)), "hits": 0, "status": status,
                        "code": doc.get("code", "InternalFailure" if status >= 500 else "InvalidIdentityToken"),
                        "message": doc.get("message", "injected failure")}
                with st.lock:
                    st.failures[ep] = spec
                self._json(200, spec)
            elif op == "fail" and self.command == "GET":
                with st.lock:
                    self._json(200, {"failures": list(st.failures.values())})
            elif op == "fail" and self.command == "DELETE":
                with st.lock:
                    st.failures.clear()
                self._json(200, {"ok": True})
            elif op == "reset" and self.command == "POST":
                st.reset()
                self._json(200, {"ok": True})
            else:
                self._json(404, {"error": "no such control endpoint: %s %s" % (self.command, path)})
        except (ValueError, TypeError) as e:
            self._json(400, {"error": str(e)})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description="STS web identity, container credentials and IMDSv2 stubs.")
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--expiration-seconds", type=float, default=3600.0,
                   help="lifetime of issued credentials (Expiration = now + this)")
    p.add_argument("--fractional-digits", type=int, default=0,
                   help="digits of fractional seconds in Expiration (0 = none)")
    p.add_argument("--accept-token", action="append",
                   help="web identity token STS accepts (repeatable; default: any non-empty token)")
    p.add_argument("--container-token", default=None,
                   help="Authorization value container credentials require (default: random, written to "
                        "DIR/awsauth-container-token)")
    p.add_argument("--container-path", default="/v1/credentials")
    p.add_argument("--role-name", default="stratos-node")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--imds-v1-disabled", action="store_true", help="IMDS GETs without a session token get 401")
    p.add_argument("--ec2sim-control", default=None,
                   help="ec2sim control base URL (…/_sim); issued keys are registered there")
    p.add_argument("--ec2sim-ca", default=None, help="CA for an HTTPS ec2sim (default DIR/ec2sim-ca.crt if present)")
    args = p.parse_args(argv)

    os.makedirs(args.dir, exist_ok=True)
    token_file = os.path.join(args.dir, "awsauth-container-token")
    if args.container_token is None:
        args.container_token = "stratos-pod-identity-" + secrets.token_hex(16)
    write_atomic(token_file, args.container_token)

    ec2sim_ssl = None
    if args.ec2sim_control and args.ec2sim_control.startswith("https:"):
        ca = args.ec2sim_ca or os.path.join(args.dir, "ec2sim-ca.crt")
        ec2sim_ssl = ssl.create_default_context(cafile=ca)

    server = Server((args.host, args.port), Handler)
    server.args = args
    server.state = State(args)
    server.ec2sim_ssl = ec2sim_ssl
    port = server.server_address[1]
    base = "http://%s:%d" % (args.host, port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    write_atomic(os.path.join(args.dir, "awsauth.env"), "\n".join([
        "AWS_ENDPOINT_URL_STS=%s" % base,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s%s" % (base, args.container_path),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s" % os.path.abspath(token_file),
        "AWS_EC2_METADATA_SERVICE_ENDPOINT=%s" % base,     # no trailing slash, like the SDKs' default
        "STRATOS_SIM_AWSAUTH_CONTROL=%s/_auth" % base,
    ]) + "\n")
    write_atomic(os.path.join(args.dir, "awsauth.port"), "%d\n" % port)
    log("serving %s" % base)
    stop.wait()
    log("stopping")
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
