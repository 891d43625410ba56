"""Tests of admission webhooks in the fake Kubernetes API server
(tests/sim/apiserver.py): the real kubectl and raw HTTP against it, with small
HTTPS webhook servers written here, the repository's real webhook
configurations, and (when STRATOSD names a binary that serves them) the real
stratosd admission handlers.

Run from the repository root:  python3 -m unittest tests/sim/test_admission.py
"""

import base64
import datetime
import http.client
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simclient import REPO, Client, Server  # noqa: E402
from simcluster import gen_certs  # noqa: E402

KUBECTL = shutil.which("kubectl")
SEED = os.path.join(REPO, "tests", "fixtures", "seed-examples.yaml")


# ---- certificates (cryptography), written to a temporary directory ------------

def _crypto():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


class CA:
    def __init__(self, d, name):
        x509, hashes, serialization, ec, _, NameOID = _crypto()
        self.dir, self.name = d, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(self.subject).issuer_name(self.subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.bundle = base64.b64encode(self.pem).decode()

    def leaf(self, sans, cn="webhook"):
        """Writes a serving certificate for sans; returns (cert path, key path)."""
        x509, hashes, serialization, ec, EKU, NameOID = _crypto()
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        names = []
        for s in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(self.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([EKU.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .sign(self.key, hashes.SHA256()))
        base = os.path.join(self.dir, "%s-%s" % (self.name, uuid.uuid4().hex[:8]))
        with open(base + ".crt", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(base + ".key", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return base + ".crt", base + ".key"


# ---- a small HTTPS admission webhook server ------------------------------------

def b64patch(ops):
    return base64.b64encode(json.dumps(ops).encode()).decode()


class HookServer:
    """HTTPS webhook server on 127.0.0.1:<free port>.  handlers[path](review)
    returns the 'response' fields to merge into {"uid", "allowed": true}, or
    a Raw(status, body) to send verbatim; _sleep in the dict delays the answer.
    Every request is recorded (path, query, headers, TLS server name, review)."""

    def __init__(self, cert, key):
        self.handlers = {}
        self.requests = []
        self.close_silently = False
        self.lock = threading.Lock()
        self.sni = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.sni_callback = lambda sock, name, c: self.sni.append(name) and None
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True      # headers and body leave in two writes

            def log_message(self, *a):
                pass

            def do_POST(self):
                u = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                review = json.loads(body)
                with outer.lock:
                    outer.requests.append({"path": u.path, "query": urllib.parse.parse_qs(u.query),
                                           "headers": dict(self.headers), "review": review,
                                           "peer": self.client_address})
                fn = outer.handlers.get(u.path)
                out = fn(review) if fn else {}
                if isinstance(out, Raw):
                    status, data, ctype = out.status, out.body, out.ctype
                else:
                    out = dict(out)
                    time.sleep(out.pop("_sleep", 0))
                    resp = {"uid": review["request"]["uid"], "allowed": True}
                    resp.update(out)
                    data = json.dumps({"apiVersion": review.get("apiVersion"), "kind": "AdmissionReview",
                                       "response": resp}).encode()
                    status, ctype = 200, "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass
                if outer.close_silently:        # drop the connection without "Connection: close"
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def reviews(self, path=None):
        with self.lock:
            return [r["review"] for r in self.requests if path is None or r["path"] == path]

    def clear(self):
        with self.lock:
            self.requests = []
        self.sni.clear()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Raw:
    def __init__(self, status, body, ctype="application/json"):
        self.status, self.body, self.ctype = status, body, ctype


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hook(name, client, rules, **kw):
    wh = {"name": name, "clientConfig": client, "rules": rules, "sideEffects": "None",
          "admissionReviewVersions": ["v1"]}
    wh.update(kw)
    return wh


def pod_rule(ops=("CREATE",), resources=("pods",)):
    return [{"apiGroups": [""], "apiVersions": ["v1"], "operations": list(ops), "resources": list(resources)}]


def pod(name, labels=None, node_selector=None, generate=False):
    meta = {"generateName": name} if generate else {"name": name}
    if labels:
        meta["labels"] = labels
    o = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
         "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}
    if node_selector:
        o["spec"]["nodeSelector"] = node_selector
    return o


class AdmissionCase(unittest.TestCase):
    """One fake API server and one webhook server (certificate for 127.0.0.1
    and hooksvc.stratos-system.svc, mapped with --webhook-service-map)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="stratos-admission-")
        cls.ca = CA(cls.tmp, "hook-ca")
        cert, key = cls.ca.leaf(["127.0.0.1", "hooksvc.stratos-system.svc"])
        cls.hooks = HookServer(cert, key)
        cls.dir = os.path.join(cls.tmp, "sim")
        cls.server = Server(cls.dir, "--quiet", "--webhook-service-map",
                            "stratos-system/hooksvc=127.0.0.1:%d" % cls.hooks.port)
        cls.c = Client(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.server.stop()
        cls.hooks.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.hooks.clear()
        self.hooks.handlers.clear()
        st, _ = self.c.delete("/_sim/webhook-calls")
        self.assertEqual(st, 200)

    def kubectl(self, *args, stdin=None):
        env = dict(os.environ, KUBECONFIG=os.path.join(self.dir, "kubeconfig"))
        p = subprocess.run([KUBECTL] + list(args), input=stdin, capture_output=True, text=True, env=env,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr

    def namespace(self, name, labels=None):
        st, body = self.c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": name, "labels": labels or {}}})
        self.assertIn(st, (201, 409), body)
        return name

    def config(self, name, webhooks, mutating=True):
        plural = "mutatingwebhookconfigurations" if mutating else "validatingwebhookconfigurations"
        kind = "MutatingWebhookConfiguration" if mutating else "ValidatingWebhookConfiguration"
        path = "/apis/admissionregistration.k8s.io/v1/" + plural
        st, body = self.c.post(path, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                      "metadata": {"name": name}, "webhooks": webhooks})
        self.assertEqual(st, 201, body)
        self.addCleanup(lambda: self.c.delete("%s/%s" % (path, name)))
        return body

    def url_client(self, path, **kw):
        d = {"url": self.hooks.url(path), "caBundle": self.ca.bundle}
        d.update(kw)
        return d

    def create_pod(self, ns, obj, query=""):
        return self.c.post("/api/v1/namespaces/%s/pods%s" % (ns, query), obj)

    def calls(self, **match):
        st, body = self.c.get("/_sim/webhook-calls")
        self.assertEqual(st, 200)
        return [c for c in body["calls"] if all(c.get(k) == v for k, v in match.items())]


@unittest.skipUnless(KUBECTL, "kubectl not installed")
class MutatingTest(AdmissionCase):
    def test_mutation_with_kubectl_and_generate_name(self):
        ns = self.namespace("adm-mut")

        def mutate(review):
            obj = review["request"]["object"]
            ops = [{"op": "add", "path": "/spec/tolerations/-",
                    "value": {"key": "stratos.sh/standby", "operator": "Exists", "effect": "NoSchedule"}}]
            if "annotations" in obj["metadata"]:
                ops.append({"op": "add", "path": "/metadata/annotations/stratos.sh~1pool", "value": "ci"})
            else:
                ops.append({"op": "add", "path": "/metadata/annotations", "value": {"stratos.sh/pool": "ci"}})
            return {"patchType": "JSONPatch", "patch": b64patch(ops)}
        self.hooks.handlers["/mutate"] = mutate
        self.config("mut-test", [hook("mut.test.stratos.sh", self.url_client("/mutate"), pod_rule())])
        rc, out, err = self.kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pod("gen-", generate=True)))
        self.assertEqual(rc, 0, err)
        name = out.split()[0].split("/")[1]
        self.assertTrue(name.startswith("gen-") and len(name) == 9, out)
        st, p = self.c.get("/api/v1/namespaces/%s/pods/%s" % (ns, name))
        self.assertEqual(st, 200)
        self.assertEqual(p["metadata"]["annotations"], {"stratos.sh/pool": "ci"})
        tols = p["spec"]["tolerations"]
        self.assertIn({"key": "stratos.sh/standby", "operator": "Exists", "effect": "NoSchedule"}, tols)
        self.assertEqual(p["status"]["phase"], "Pending")

        (r,) = self.hooks.requests
        self.assertEqual(r["query"], {"timeout": ["10s"]})
        self.assertEqual(r["headers"]["Content-Type"], "application/json")
        review = r["review"]
        self.assertEqual((review["apiVersion"], review["kind"]), ("admission.k8s.io/v1", "AdmissionReview"))
        req = review["request"]
        uuid.UUID(req["uid"])
        self.assertNotIn("name", req)               # mutating admission runs before the name is generated
        self.assertEqual(req["namespace"], ns)
        self.assertEqual(req["operation"], "CREATE")
        self.assertEqual(req["kind"], {"group": "", "version": "v1", "kind": "Pod"})
        self.assertEqual(req["resource"], {"group": "", "version": "v1", "resource": "pods"})
        self.assertEqual(req["requestKind"], req["kind"])
        self.assertEqual(req["requestResource"], req["resource"])
        self.assertNotIn("subResource", req)
        self.assertEqual(req["userInfo"]["username"], "stratos-sim-admin")
        self.assertIn("system:authenticated", req["userInfo"]["groups"])
        self.assertIs(req["dryRun"], False)
        self.assertIsNone(req["oldObject"])
        self.assertEqual(req["options"]["kind"], "CreateOptions")
        self.assertEqual(req["options"]["apiVersion"], "meta.k8s.io/v1")
        obj = req["object"]
        self.assertEqual(obj["metadata"]["generateName"], "gen-")
        self.assertNotIn("name", obj["metadata"])
        self.assertNotIn("uid", obj["metadata"])
        self.assertIsNone(obj["metadata"]["creationTimestamp"])
        self.assertEqual(obj["spec"]["schedulerName"], "default-scheduler")
        self.assertEqual(obj["spec"]["serviceAccountName"], "default")
        self.assertEqual(obj["status"], {})
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            self.assertIn({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                          obj["spec"]["tolerations"])

        (call,) = self.calls(webhook="mut.test.stratos.sh")
        self.assertEqual(call["uid"], req["uid"])
        self.assertEqual((call["type"], call["operation"], call["resource"], call["namespace"], call["outcome"]),
                         ("mutating", "CREATE", "pods", ns, "patched"))
        self.assertEqual(call["request"]["object"], obj)
        self.assertEqual(len(call["patch"]), 2)
        self.assertGreater(call["durationMs"], 0)

    def test_namespace_and_object_selectors(self):
        ns = self.namespace("adm-sel")
        self.config("sel-test", [hook(
            "sel.test.stratos.sh", self.url_client("/sel"), pod_rule(),
            namespaceSelector={"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                     "values": ["kube-system"]}]},
            objectSelector={"matchLabels": {"inject": "yes"}})])
        for where, labels, called in (("kube-system", {"inject": "yes"}, False), (ns, {"inject": "yes"}, True),
                                      (ns, {"inject": "no"}, False), (ns, None, False)):
            with self.subTest(namespace=where, labels=labels):
                self.hooks.clear()
                st, body = self.create_pod(where, pod("p-", labels, generate=True))
                self.assertEqual(st, 201, body)
                self.assertEqual(len(self.hooks.requests), 1 if called else 0)
        # The namespace's own labels count, not the pod's.
        self.namespace("adm-sel-off", {"inject": "yes"})
        self.hooks.clear()
        self.config("sel-ns-test", [hook("selns.test.stratos.sh", self.url_client("/selns"), pod_rule(),
                                         namespaceSelector={"matchLabels": {"team": "a"}})])
        self.create_pod("adm-sel-off", pod("p-", {"team": "a"}, generate=True))
        self.assertEqual(self.hooks.reviews("/selns"), [])
        self.namespace("adm-sel-on", {"team": "a"})
        self.create_pod("adm-sel-on", pod("p-", generate=True))
        self.assertEqual(len(self.hooks.reviews("/selns")), 1)

    def test_match_conditions(self):
        ns = self.namespace("adm-mc")
        self.config("mc-test", [hook(
            "mc.test.stratos.sh", self.url_client("/mc"), pod_rule(),
            matchConditions=[{"name": "has-node-selector", "expression": "has(object.spec.nodeSelector)"},
                             {"name": "by-admin", "expression": "request.userInfo.username == 'stratos-sim-admin'"}])])
        self.assertEqual(self.create_pod(ns, pod("plain"))[0], 201)
        self.assertEqual(self.hooks.reviews("/mc"), [])
        self.assertEqual(self.create_pod(ns, pod("selected", node_selector={"pool": "a"}))[0], 201)
        self.assertEqual(len(self.hooks.reviews("/mc")), 1)

        # A condition that cannot be evaluated: failurePolicy decides (Fail: 403, Ignore: skip).
        expr = "object.spec.nodeSelector['pool'] == 'a'"
        for policy in ("Fail", "Ignore"):
            with self.subTest(failurePolicy=policy):
                name = "mcerr-%s" % policy.lower()
                self.config(name, [hook(name + ".test.stratos.sh", self.url_client("/" + name), pod_rule(),
                                        failurePolicy=policy,
                                        matchConditions=[{"name": "pool-a", "expression": expr}])])
                st, body = self.create_pod(ns, pod("err-" + policy.lower()))
                if policy == "Fail":
                    self.assertEqual(st, 403, body)
                    self.assertEqual(body["reason"], "Forbidden")
                    self.assertEqual(body["message"], 'pods "err-fail" is forbidden: expression \'%s\' resulted '
                                                      "in error: no such key: nodeSelector" % expr)
                    self.c.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + name)
                else:
                    self.assertEqual(st, 201, body)
                self.assertEqual(self.hooks.reviews("/" + name), [])

    def test_failure_policy_when_the_webhook_is_down(self):
        ns = self.namespace("adm-down")
        port = free_port()
        url = "https://127.0.0.1:%d/mutate" % port
        self.config("down-fail", [hook("down.test.stratos.sh", {"url": url, "caBundle": self.ca.bundle},
                                       pod_rule(), failurePolicy="Fail")])
        rc, out, err = self.kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pod("down")))
        self.assertNotEqual(rc, 0)
        self.assertEqual(err.strip(), 'Error from server (InternalError): error when creating "STDIN": Internal '
                         'error occurred: failed calling webhook "down.test.stratos.sh": failed to call webhook: '
                         'Post "%s?timeout=10s": dial tcp 127.0.0.1:%d: connect: connection refused' % (url, port))
        (call,) = self.calls(webhook="down.test.stratos.sh")
        self.assertEqual(call["outcome"], "failed-closed")
        self.c.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/down-fail")
        self.config("down-ignore", [hook("down.test.stratos.sh", {"url": url, "caBundle": self.ca.bundle},
                                         pod_rule(), failurePolicy="Ignore")])
        rc, out, err = self.kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pod("down")))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.calls(webhook="down.test.stratos.sh")[-1]["outcome"], "failed-open")

    def test_keep_alive_and_connections_the_webhook_closes(self):
        ns = self.namespace("adm-conn")
        self.config("conn-test", [hook("conn.test.stratos.sh", self.url_client("/conn"), pod_rule())])
        for i in range(3):
            self.assertEqual(self.create_pod(ns, pod("keep-%d" % i))[0], 201)
        self.assertEqual(len({r["peer"] for r in self.hooks.requests}), 1)      # one kept-alive connection
        self.hooks.clear()
        self.hooks.close_silently = True
        try:
            for i in range(3):
                st, body = self.create_pod(ns, pod("closed-%d" % i))
                self.assertEqual(st, 201, body)
                time.sleep(0.05)
        finally:
            self.hooks.close_silently = False
        self.assertEqual(len({r["peer"] for r in self.hooks.requests}), 3)
        self.assertEqual([c["outcome"] for c in self.calls(webhook="conn.test.stratos.sh")][-3:], ["allowed"] * 3)

    def test_timeouts(self):
        ns = self.namespace("adm-slow")
        self.hooks.handlers["/slow"] = lambda review: {"_sleep": 2.5}
        for policy in ("Fail", "Ignore"):
            with self.subTest(failurePolicy=policy):
                name = "slow-" + policy.lower()
                self.config(name, [hook(name + ".test.stratos.sh", self.url_client("/slow"), pod_rule(),
                                        failurePolicy=policy, timeoutSeconds=1)])
                t0 = time.monotonic()
                st, body = self.create_pod(ns, pod(name))
                took = time.monotonic() - t0
                self.assertGreaterEqual(took, 0.9)
                self.assertLess(took, 2.3)
                if policy == "Fail":
                    self.assertEqual(st, 500, body)
                    self.assertEqual(body["message"], 'Internal error occurred: failed calling webhook '
                                     '"%s.test.stratos.sh": failed to call webhook: Post "%s?timeout=1s": context '
                                     'deadline exceeded' % (name, self.hooks.url("/slow")))
                    self.c.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + name)
                else:
                    self.assertEqual(st, 201, body)
        self.assertEqual({tuple(r["query"]["timeout"]) for r in self.hooks.requests}, {("1s",)})

    def test_denial_and_warnings_as_kubectl_prints_them(self):
        ns = self.namespace("adm-deny")
        self.hooks.handlers["/deny"] = lambda review: {
            "allowed": False, "warnings": ["pool ci-runners is at its limit", 'say "no"'],
            "status": {"code": 403, "reason": "Forbidden", "message": "pods in adm-deny are not allowed"}}
        self.config("deny-test", [hook("deny.test.stratos.sh", self.url_client("/deny"), pod_rule())],
                    mutating=False)
        rc, out, err = self.kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pod("denied")))
        self.assertNotEqual(rc, 0)
        lines = err.strip().splitlines()
        self.assertIn("Warning: pool ci-runners is at its limit", lines)
        self.assertIn('Warning: say "no"', lines)
        self.assertEqual(lines[-1], 'Error from server (Forbidden): error when creating "STDIN": admission webhook '
                                    '"deny.test.stratos.sh" denied the request: pods in adm-deny are not allowed')
        self.assertEqual(self.calls(webhook="deny.test.stratos.sh")[0]["outcome"], "denied")

        # A denial without a status: 400 and "without explanation"; warnings on success too.
        self.hooks.handlers["/deny"] = lambda review: {"allowed": False}
        st, body = self.create_pod(ns, pod("denied"))
        self.assertEqual((st, body["message"]), (400, 'admission webhook "deny.test.stratos.sh" denied the '
                                                      "request without explanation"))
        self.hooks.handlers["/deny"] = lambda review: {"warnings": ["spec.nodeSelector: unknown pool"]}
        rc, out, err = self.kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pod("warned")))
        self.assertEqual(rc, 0, err)
        self.assertEqual(err.strip(), "Warning: spec.nodeSelector: unknown pool")
        self.assertEqual(out.strip(), "pod/warned created")

    def test_a_patch_that_does_not_apply_fails_with_500_whatever_the_policy(self):
        ns = self.namespace("adm-badpatch")
        self.hooks.handlers["/bad"] = lambda review: {"patchType": "JSONPatch", "patch": b64patch(
            [{"op": "add", "path": "/metadata/annotations/stratos.sh~1pool", "value": "x"}])}
        self.config("badpatch", [hook("badpatch.test.stratos.sh", self.url_client("/bad"), pod_rule(),
                                      failurePolicy="Ignore")])
        rc, out, err = self.kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(pod("bad")))
        self.assertNotEqual(rc, 0)
        self.assertEqual(err.strip(), 'Error from server (InternalError): error when creating "STDIN": Internal error '
                         'occurred: add operation does not apply: doc is missing path: '
                         '"/metadata/annotations/stratos.sh~1pool": missing value')
        self.assertEqual(self.c.get("/api/v1/namespaces/%s/pods/bad" % ns)[0], 404)
        self.assertEqual(self.calls(webhook="badpatch.test.stratos.sh")[0]["outcome"], "patch-failed")

    def test_invalid_responses_are_call_failures(self):
        ns = self.namespace("adm-invalid")
        cases = [
            ("wrong uid", lambda rv: {"uid": "not-the-uid"},
             lambda rv: 'received invalid webhook response: expected response.uid="%s", got "not-the-uid"'
             % rv["request"]["uid"]),
            ("wrong apiVersion", lambda rv: Raw(200, json.dumps({
                "apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                "response": {"uid": rv["request"]["uid"], "allowed": True}}).encode()),
             lambda rv: "received invalid webhook response: expected webhook response of admission.k8s.io/v1, "
                        "Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"),
            ("HTTP 500", lambda rv: Raw(500, b"boom", "text/plain"),
             lambda rv: 'failed to call webhook: an error on the server ("boom") has prevented the request '
                        "from succeeding"),
            ("not JSON", lambda rv: Raw(200, b"{nope", "application/json"),
             lambda rv: "failed to call webhook: couldn't get version/kind; json parse error: "),
            ("patch without patchType", lambda rv: {"patch": b64patch([])},
             lambda rv: "received invalid webhook response: webhook returned response.patch but not "
                        "response.patchType"),
            ("no response", lambda rv: Raw(200, json.dumps({"apiVersion": "admission.k8s.io/v1",
                                                            "kind": "AdmissionReview"}).encode()),
             lambda rv: "received invalid webhook response: webhook response was absent"),
        ]
        for i, (what, answer, reason) in enumerate(cases):
            with self.subTest(what):
                seen = []

                def handler(review, answer=answer, seen=seen):
                    seen.append(review)
                    return answer(review)
                self.hooks.handlers["/inv"] = handler
                name = "inv%d" % i
                self.config(name, [hook(name + ".test.stratos.sh", self.url_client("/inv"), pod_rule(),
                                        failurePolicy="Fail")])
                st, body = self.create_pod(ns, pod("fail-%d" % i))
                self.assertEqual(st, 500, body)
                want = 'Internal error occurred: failed calling webhook "%s.test.stratos.sh": %s' % (
                    name, reason(seen[0]))
                self.assertTrue(body["message"].startswith(want), (body["message"], want))
                self.c.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + name)
        # failurePolicy Ignore: the pod is created, without the patch of the failed call.
        self.hooks.handlers["/inv"] = lambda rv: {"uid": "x", "patchType": "JSONPatch", "patch": b64patch(
            [{"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}}])}
        self.config("inv-ignore", [hook("invignore.test.stratos.sh", self.url_client("/inv"), pod_rule(),
                                        failurePolicy="Ignore")])
        st, body = self.create_pod(ns, pod("ignored"))
        self.assertEqual(st, 201, body)
        self.assertNotIn("labels", body["metadata"])

    def test_dry_run(self):
        ns = self.namespace("adm-dry")
        self.hooks.handlers["/dry"] = lambda review: {"patchType": "JSONPatch", "patch": b64patch(
            [{"op": "add", "path": "/metadata/labels", "value": {"dry": str(review["request"]["dryRun"])}}])}
        self.config("dry-test", [hook("dry.test.stratos.sh", self.url_client("/dry"), pod_rule(),
                                      sideEffects="NoneOnDryRun")])
        rc, out, err = self.kubectl("create", "-n", ns, "--dry-run=server", "-o", "json", "-f", "-",
                                    stdin=json.dumps(pod("dry")))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["metadata"]["labels"], {"dry": "True"})
        req = self.hooks.reviews("/dry")[0]["request"]
        self.assertIs(req["dryRun"], True)
        self.assertEqual(req["options"]["dryRun"], ["All"])
        self.assertEqual(self.c.get("/api/v1/namespaces/%s/pods/dry" % ns)[0], 404)
        # v1 allows only None and NoneOnDryRun: a webhook with side effects cannot be registered.
        bad = hook("some.test.stratos.sh", self.url_client("/dry"), pod_rule(), sideEffects="Some")
        st, body = self.c.post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "side-effects"}, "webhooks": [bad]})
        self.assertEqual(st, 422, body)
        self.assertIn('webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", '
                      '"NoneOnDryRun"', body["message"])

    def test_reinvocation(self):
        ns = self.namespace("adm-reinvoke")

        def first(review):      # adds an annotation saying whether it saw the label of "second"
            meta = review["request"]["object"]["metadata"]
            saw = "b" in (meta.get("labels") or {})
            key = "a-saw-b" if saw else "a"
            if "annotations" in meta:
                if key in meta["annotations"]:
                    return {}
                return {"patchType": "JSONPatch", "patch": b64patch(
                    [{"op": "add", "path": "/metadata/annotations/" + key, "value": "1"}])}
            return {"patchType": "JSONPatch", "patch": b64patch(
                [{"op": "add", "path": "/metadata/annotations", "value": {key: "1"}}])}

        def second(review):
            if "b" in (review["request"]["object"]["metadata"].get("labels") or {}):
                return {}
            return {"patchType": "JSONPatch", "patch": b64patch(
                [{"op": "add", "path": "/metadata/labels", "value": {"b": "1"}}])}
        self.hooks.handlers["/first"] = first
        self.hooks.handlers["/second"] = second
        for policy, want_first, want_ann in (("IfNeeded", 2, {"a": "1", "a-saw-b": "1"}), ("Never", 1, {"a": "1"})):
            with self.subTest(reinvocationPolicy=policy):
                self.hooks.clear()
                self.c.delete("/_sim/webhook-calls")
                self.config("a-first-" + policy.lower(), [hook("first.test.stratos.sh", self.url_client("/first"),
                                                               pod_rule(), reinvocationPolicy=policy)])
                self.config("b-second-" + policy.lower(), [hook("second.test.stratos.sh",
                                                                self.url_client("/second"), pod_rule())])
                st, body = self.create_pod(ns, pod("r-" + policy.lower()))
                self.assertEqual(st, 201, body)
                self.assertEqual(body["metadata"]["annotations"], want_ann)
                self.assertEqual(body["metadata"]["labels"], {"b": "1"})
                self.assertEqual(len(self.hooks.reviews("/first")), want_first)
                self.assertEqual(len(self.hooks.reviews("/second")), 1)
                rounds = [(c["webhook"], c["round"]) for c in self.calls()]
                want = [("first.test.stratos.sh", 0), ("second.test.stratos.sh", 0)]
                if policy == "IfNeeded":
                    want.append(("first.test.stratos.sh", 1))
                self.assertEqual(rounds, want)
                for n in ("a-first-", "b-second-"):
                    self.c.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                                  + n + policy.lower())

    def test_update_delete_subresources_and_deletecollection(self):
        ns = self.namespace("adm-ops")
        st, p = self.create_pod(ns, pod("ops", {"app": "ops"}))
        self.assertEqual(st, 201)
        self.config("ops-test", [hook("ops.test.stratos.sh", self.url_client("/ops"),
                                      pod_rule(("UPDATE", "DELETE")))], mutating=False)
        st, _ = self.c.patch("/api/v1/namespaces/%s/pods/ops" % ns, {"metadata": {"labels": {"v": "2"}}})
        self.assertEqual(st, 200)
        (upd,) = [r["request"] for r in self.hooks.reviews("/ops")]
        self.assertEqual((upd["operation"], upd["name"], upd["options"]["kind"]), ("UPDATE", "ops", "PatchOptions"))
        self.assertEqual(upd["object"]["metadata"]["labels"], {"app": "ops", "v": "2"})
        self.assertEqual(upd["oldObject"]["metadata"]["labels"], {"app": "ops"})
        # pods/status is not "pods": not called until a rule lists it.
        self.hooks.clear()
        st, _ = self.c.patch("/api/v1/namespaces/%s/pods/ops/status" % ns, {"status": {"phase": "Running"}})
        self.assertEqual(st, 200)
        self.assertEqual(self.hooks.reviews("/ops"), [])
        self.config("ops-status", [hook("status.test.stratos.sh", self.url_client("/status"),
                                        pod_rule(("UPDATE",), ("pods/status", "pods/binding")))], mutating=False)
        st, _ = self.c.patch("/api/v1/namespaces/%s/pods/ops/status" % ns, {"status": {"phase": "Pending"}})
        self.assertEqual(st, 200)
        (stat,) = [r["request"] for r in self.hooks.reviews("/status")]
        self.assertEqual((stat["subResource"], stat["requestSubResource"], stat["kind"]["kind"]),
                         ("status", "status", "Pod"))
        # DELETE: object null, oldObject the pod, DeleteOptions.
        self.hooks.clear()
        st, _ = self.c.delete("/api/v1/namespaces/%s/pods/ops" % ns, {"gracePeriodSeconds": 0})
        self.assertEqual(st, 200)
        (dele,) = [r["request"] for r in self.hooks.reviews("/ops")]
        self.assertEqual((dele["operation"], dele["name"], dele["object"]), ("DELETE", "ops", None))
        self.assertEqual(dele["oldObject"]["metadata"]["name"], "ops")
        self.assertEqual((dele["options"]["kind"], dele["options"]["gracePeriodSeconds"]), ("DeleteOptions", 0))
        # A denied DELETE keeps the object; deletecollection asks once per object, with an empty name.
        for n in ("c1", "c2"):
            self.assertEqual(self.create_pod(ns, pod(n, {"set": "c"}))[0], 201)
        self.hooks.clear()
        self.hooks.handlers["/ops"] = lambda rv: {"allowed": rv["request"]["oldObject"]["metadata"]["name"] != "c2",
                                                  "status": {"message": "c2 stays"}}
        st, body = self.c.delete("/api/v1/namespaces/%s/pods/c2" % ns)
        self.assertEqual((st, body["message"]), (400, 'admission webhook "ops.test.stratos.sh" denied the request: '
                                                      "c2 stays"))
        self.hooks.handlers.pop("/ops")
        st, body = self.c.delete("/api/v1/namespaces/%s/pods?labelSelector=set%%3Dc" % ns)
        self.assertEqual(st, 200, body)
        reqs = [r["request"] for r in self.hooks.reviews("/ops")][1:]
        self.assertEqual(sorted(r["oldObject"]["metadata"]["name"] for r in reqs), ["c1", "c2"])
        self.assertTrue(all("name" not in r and r["operation"] == "DELETE" for r in reqs))

    def test_match_policy_equivalent_converts_between_versions(self):
        ns = self.namespace("adm-events")
        self.hooks.handlers["/ev"] = lambda rv: {"patchType": "JSONPatch", "patch": b64patch(
            [{"op": "add", "path": "/metadata/labels", "value": {"seen-as": rv["request"]["object"]["apiVersion"]}}])}
        rule = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["events"]}]
        ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev1"},
              "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "stratos.sh/stratosd",
              "reportingInstance": "stratosd-0", "action": "Start", "reason": "Started", "type": "Normal",
              "note": "started i-0123", "regarding": {"kind": "Pod", "name": "p", "namespace": ns}}
        path = "/apis/events.k8s.io/v1/namespaces/%s/events" % ns
        self.config("ev-exact", [hook("exact.test.stratos.sh", self.url_client("/ev"), rule, matchPolicy="Exact")])
        self.assertEqual(self.c.post(path, ev)[0], 201)
        self.assertEqual(self.hooks.requests, [])
        self.config("ev-equivalent", [hook("equivalent.test.stratos.sh", self.url_client("/ev"), rule)])
        ev["metadata"]["name"] = "ev2"
        st, body = self.c.post(path, ev)
        self.assertEqual(st, 201, body)
        (req,) = [r["request"] for r in self.hooks.reviews("/ev")]
        self.assertEqual((req["kind"], req["requestKind"]), ({"group": "", "version": "v1", "kind": "Event"},
                                                             {"group": "events.k8s.io", "version": "v1",
                                                              "kind": "Event"}))
        self.assertEqual((req["resource"]["group"], req["requestResource"]["group"]), ("", "events.k8s.io"))
        self.assertEqual((req["object"]["message"], req["object"]["involvedObject"]["name"]), ("started i-0123", "p"))
        self.assertEqual(body["metadata"]["labels"], {"seen-as": "v1"})     # the patch came back converted
        self.assertEqual((body["apiVersion"], body["note"]), ("events.k8s.io/v1", "started i-0123"))

    def test_webhook_writing_the_same_object_reruns_admission(self):
        # The webhook calls the API while the request waits for it (no lock is held),
        # and changes the very object: the update runs again on the new version,
        # and a PUT that named the old resourceVersion gets its 409.
        ns = self.namespace("adm-race")
        self.assertEqual(self.create_pod(ns, pod("race"))[0], 201)
        other = Client(self.dir)
        self.addCleanup(other.close)
        count = []

        def racer(review):
            count.append(1)
            if len(count) in (1, 3):
                st, _ = other.patch("/api/v1/namespaces/%s/pods/race" % ns,
                                    {"metadata": {"labels": {"other": str(len(count))}}})
                assert st == 200, st
            return {}
        self.hooks.handlers["/race"] = racer
        rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}]
        self.config("race", [hook("race.test.stratos.sh", self.url_client("/race"), rules,
                                  objectSelector={"matchExpressions": [{"key": "mine", "operator": "Exists"}]})],
                    mutating=False)
        st, body = self.c.patch("/api/v1/namespaces/%s/pods/race" % ns, {"metadata": {"labels": {"mine": "1"}}})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["metadata"]["labels"], {"other": "1", "mine": "1"})
        self.assertEqual(len(count), 2)
        stale = dict(body, metadata=dict(body["metadata"], labels={"mine": "2"}))
        st, body = self.c.put("/api/v1/namespaces/%s/pods/race" % ns, stale)
        self.assertEqual((st, body.get("reason")), (409, "Conflict"), body)
        self.assertEqual(len(count), 4)

    def test_binding_subresource(self):
        ns = self.namespace("adm-bind")
        self.assertEqual(self.create_pod(ns, pod("b"))[0], 201)
        self.config("bind-test", [hook("bind.test.stratos.sh", self.url_client("/bind"),
                                       pod_rule(("CREATE",), ("pods/binding",)))])
        st, body = self.c.post("/api/v1/namespaces/%s/pods/b/binding" % ns, {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}})
        self.assertEqual(st, 201, body)
        (req,) = [r["request"] for r in self.hooks.reviews("/bind")]
        self.assertEqual((req["kind"], req["resource"]["resource"], req["subResource"], req["name"]),
                         ({"group": "", "version": "v1", "kind": "Binding"}, "pods", "binding", "b"))
        self.assertEqual(req["object"]["target"]["name"], "node-1")

    def test_validating_webhooks_after_mutation_schema_and_cel_in_parallel(self):
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "gadgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                            "type": "object", "properties": {"spec": {
                                "type": "object", "x-kubernetes-validations": [
                                    {"rule": "self.size <= 5 || self.color == 'red'",
                                     "message": "big gadgets must be red"}],
                                "properties": {"size": {"type": "integer"},
                                               "color": {"type": "string", "default": "blue"}}}}}}}]}}
        st, body = self.c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        self.assertEqual(st, 201, body)
        self.addCleanup(lambda: self.c.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                              "gadgets.example.com"))
        ns = self.namespace("adm-gadgets")
        rule = [{"apiGroups": ["example.com"], "apiVersions": ["v1"], "operations": ["CREATE"],
                 "resources": ["gadgets"], "scope": "Namespaced"}]

        def paint(review):
            spec = review["request"]["object"]["spec"]
            if spec.get("size", 0) == 6:
                return {"patchType": "JSONPatch", "patch": b64patch(
                    [{"op": "replace", "path": "/spec/color", "value": "red"}])}
            return {}
        self.hooks.handlers["/paint"] = paint
        self.hooks.handlers["/v1"] = lambda rv: {"_sleep": 1}
        self.hooks.handlers["/v2"] = lambda rv: {"_sleep": 1}
        self.config("paint", [hook("paint.test.stratos.sh", self.url_client("/paint"), rule)])
        self.config("check", [hook("v1.test.stratos.sh", self.url_client("/v1"), rule),
                              hook("v2.test.stratos.sh", self.url_client("/v2"), rule)], mutating=False)
        path = "/apis/example.com/v1/namespaces/%s/gadgets" % ns
        t0 = time.monotonic()
        st, body = self.c.post(path, {"apiVersion": "example.com/v1", "kind": "Gadget",
                                      "metadata": {"generateName": "g-"}, "spec": {"size": 6}})
        took = time.monotonic() - t0
        self.assertEqual(st, 201, body)
        self.assertEqual(body["spec"], {"size": 6, "color": "red"})
        self.assertLess(took, 1.9)          # the two validating webhooks ran side by side
        mut = self.hooks.reviews("/paint")[0]["request"]
        self.assertEqual(mut["object"]["spec"], {"size": 6, "color": "blue"})   # defaulted before mutation
        for p in ("/v1", "/v2"):
            req = self.hooks.reviews(p)[0]["request"]
            self.assertEqual(req["object"]["spec"], {"size": 6, "color": "red"})
            self.assertTrue(req["object"]["metadata"]["name"].startswith("g-"))   # named by now
            self.assertNotIn("name", req)                                        # the request had no name
        # A CEL violation is caught before the validating webhooks are asked.
        self.hooks.clear()
        self.hooks.handlers["/paint"] = lambda rv: {}
        st, body = self.c.post(path, {"apiVersion": "example.com/v1", "kind": "Gadget",
                                      "metadata": {"name": "huge"}, "spec": {"size": 9}})
        self.assertEqual(st, 422, body)
        self.assertIn("big gadgets must be red", body["message"])
        self.assertEqual(len(self.hooks.reviews("/paint")), 1)
        self.assertEqual(self.hooks.reviews("/v1") + self.hooks.reviews("/v2"), [])

    def test_webhook_configuration_validation_and_defaults(self):
        st, body = self.c.post("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "broken"}, "webhooks": [
                {"name": "short.name", "clientConfig": {"url": "http://127.0.0.1/x"}, "rules": pod_rule(),
                 "sideEffects": "None", "admissionReviewVersions": ["v2"], "timeoutSeconds": 31}]})
        self.assertEqual(st, 422, body)
        for want in ("webhooks[0].name: Invalid value: \"short.name\": should be a domain with at least three "
                     "segments separated by dots",
                     "webhooks[0].admissionReviewVersions: Invalid value:",
                     "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 "
                     "seconds",
                     "webhooks[0].clientConfig.url: Invalid value: \"http://127.0.0.1/x\": 'https' is the only "
                     "allowed URL scheme"):
            self.assertIn(want, body["message"])
        body = self.config("defaults", [hook("defaults.test.stratos.sh", {"service": {
            "namespace": "stratos-system", "name": "hooksvc", "path": "/d"}}, pod_rule())])
        wh = body["webhooks"][0]
        self.assertEqual((wh["failurePolicy"], wh["matchPolicy"], wh["timeoutSeconds"], wh["reinvocationPolicy"],
                          wh["namespaceSelector"], wh["objectSelector"], wh["rules"][0]["scope"],
                          wh["clientConfig"]["service"]["port"]),
                         ("Fail", "Equivalent", 10, "Never", {}, {}, "*", 443))
        # Webhook configurations themselves never go to webhooks.
        self.assertEqual(self.calls(), [])
        rc, out, err = self.kubectl("get", "mutatingwebhookconfigurations")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines()[0].split(), ["NAME", "WEBHOOKS", "AGE"])
        self.assertEqual(out.splitlines()[1].split()[:2], ["defaults", "1"])


@unittest.skipUnless(KUBECTL, "kubectl not installed")
class ServiceTest(AdmissionCase):
    def service_client(self, name, path, ca=None):
        return {"service": {"namespace": "stratos-system", "name": name, "path": path},
                "caBundle": ca or self.ca.bundle}

    def test_service_mapped_on_the_command_line(self):
        ns = self.namespace("adm-svc")
        self.config("svc-test", [hook("svc.test.stratos.sh", self.service_client("hooksvc", "/svc"), pod_rule())])
        self.assertEqual(self.create_pod(ns, pod("via-service"))[0], 201)
        (r,) = self.hooks.requests
        self.assertEqual(r["path"], "/svc")
        self.assertEqual(r["headers"]["Host"], "hooksvc.stratos-system.svc")
        self.assertIn("hooksvc.stratos-system.svc", self.hooks.sni)
        (call,) = self.calls(webhook="svc.test.stratos.sh")
        self.assertEqual(call["url"], "https://hooksvc.stratos-system.svc:443/svc?timeout=10s")

    def test_hostname_and_ca_verification_and_runtime_mapping(self):
        ns = self.namespace("adm-tls")
        wrong_cert, wrong_key = self.ca.leaf(["wrong.example", "127.0.0.1"])
        wrong = HookServer(wrong_cert, wrong_key)
        self.addCleanup(wrong.stop)
        st, body = self.c.post("/_sim/webhook-services", {"services": {
            "stratos-system/wrongsvc": "127.0.0.1:%d" % wrong.port}})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["services"]["stratos-system/wrongsvc"], "127.0.0.1:%d" % wrong.port)
        self.assertEqual(body["services"]["stratos-system/hooksvc"], "127.0.0.1:%d" % self.hooks.port)
        other = CA(self.tmp, "other-ca")
        cases = [
            ("wrongsvc", self.ca.bundle, "tls: failed to verify certificate: x509: certificate is valid for "
                                         "wrong.example, not wrongsvc.stratos-system.svc"),
            ("hooksvc", other.bundle, "tls: failed to verify certificate: x509: certificate signed by unknown "
                                      "authority"),
            ("nosvc", self.ca.bundle, None),
        ]
        for i, (svc, ca, why) in enumerate(cases):
            with self.subTest(service=svc):
                name = "tls%d" % i
                self.config(name, [hook(name + ".test.stratos.sh", self.service_client(svc, "/x", ca), pod_rule())])
                st, body = self.create_pod(ns, pod("p%d" % i))
                self.assertEqual(st, 500, body)
                url = "https://%s.stratos-system.svc:443/x?timeout=10s" % svc
                want = why or 'service "nosvc" not found'
                self.assertEqual(body["message"], 'Internal error occurred: failed calling webhook '
                                 '"%s.test.stratos.sh": failed to call webhook: Post "%s": %s' % (name, url, want))
                self.c.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/" + name)
        self.assertEqual(wrong.requests, [])
        # The right certificate behind the same mapping works once mapped there at run time.
        st, _ = self.c.post("/_sim/webhook-services", {"services": {
            "stratos-system/wrongsvc": "127.0.0.1:%d" % self.hooks.port}})
        self.assertEqual(st, 200)
        self.config("tls-ok", [hook("tlsok.test.stratos.sh", self.service_client("hooksvc", "/ok"), pod_rule())])
        self.assertEqual(self.create_pod(ns, pod("fine"))[0], 201)
        self.assertEqual(len(self.hooks.reviews("/ok")), 1)
        st, body = self.c.post("/_sim/webhook-services", {"services": {"stratos-system/wrongsvc": None}})
        self.assertNotIn("stratos-system/wrongsvc", body["services"])
        st, body = self.c.post("/_sim/webhook-services", {"services": {"bad": "127.0.0.1:1"}})
        self.assertEqual(st, 400)


def render_manifests():
    out = subprocess.run([KUBECTL, "kustomize", os.path.join(REPO, "manifests")], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@unittest.skipUnless(KUBECTL, "kubectl not installed")
class ManifestTest(unittest.TestCase):
    """The repository's MutatingWebhookConfiguration and ValidatingWebhookConfiguration
    (kubectl kustomize manifests/) against the fake server, the webhook Service
    mapped to a webhook server with the certificate certs/gen.sh makes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="stratos-admission-manifests-")
        cls.certs = os.path.join(cls.tmp, "certs")
        cls.bundle = gen_certs(cls.certs)
        cls.docs = render_manifests()
        cls.dir = os.path.join(cls.tmp, "sim")
        cls.server = Server(cls.dir, "--quiet")
        cls.c = Client(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def kubectl(self, *args, stdin=None):
        env = dict(os.environ, KUBECONFIG=os.path.join(self.dir, "kubeconfig"))
        p = subprocess.run([KUBECTL] + list(args), input=stdin, capture_output=True, text=True, env=env,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr

    def apply_manifests(self, target_port):
        """Applies the CRDs, the webhook Service and both webhook configurations
        with the caBundle filled in; maps the Service to 127.0.0.1:target_port."""
        picked = []
        for d in self.docs:
            if d["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                for wh in d["webhooks"]:
                    wh["clientConfig"]["caBundle"] = self.bundle
                picked.append(d)
            elif d["kind"] == "CustomResourceDefinition" or (d["kind"] == "Service" and
                                                             d["metadata"]["name"] == "stratos-webhook"):
                picked.append(d)
        kinds = sorted(d["kind"] for d in picked)
        self.assertEqual(kinds, ["CustomResourceDefinition", "CustomResourceDefinition",
                                 "MutatingWebhookConfiguration", "Service", "ValidatingWebhookConfiguration"])
        rc, out, err = self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(picked))
        self.assertEqual(rc, 0, err)
        st, body = self.c.post("/_sim/webhook-services", {"services": {
            "stratos-system/stratos-webhook": "127.0.0.1:%d" % target_port}})
        self.assertEqual(st, 200, body)
        self.namespace("team-a")

    def namespace(self, name):
        st, body = self.c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": name}})
        self.assertIn(st, (201, 409), body)

    def pool_pod(self, name, ns="team-a", pool="ci-runners"):
        o = pod(name, node_selector={"stratos.sh/pool": pool} if pool else None)
        return o

    def test_real_configurations_send_the_real_review_shape(self):
        hooks = HookServer(os.path.join(self.certs, "tls.crt"), os.path.join(self.certs, "tls.key"))
        self.addCleanup(hooks.stop)
        self.apply_manifests(hooks.port)

        rc, out, err = self.kubectl("create", "-n", "team-a", "-f", "-", stdin=json.dumps(self.pool_pod("runner")))
        self.assertEqual(rc, 0, err)
        (r,) = hooks.requests
        self.assertEqual((r["path"], r["query"]), ("/admission/mutate-pod", {"timeout": ["5s"]}))
        self.assertEqual(r["headers"]["Host"], "stratos-webhook.stratos-system.svc")
        self.assertIn("stratos-webhook.stratos-system.svc", hooks.sni)
        rv = r["review"]
        self.assertEqual((rv["apiVersion"], rv["kind"]), ("admission.k8s.io/v1", "AdmissionReview"))
        req = rv["request"]
        self.assertEqual(set(req), {"uid", "kind", "resource", "requestKind", "requestResource", "name", "namespace",
                                    "operation", "userInfo", "object", "oldObject", "dryRun", "options"})
        self.assertEqual((req["name"], req["namespace"], req["operation"], req["dryRun"]),
                         ("runner", "team-a", "CREATE", False))
        self.assertEqual(req["object"]["spec"]["nodeSelector"], {"stratos.sh/pool": "ci-runners"})
        self.assertIn({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                       "tolerationSeconds": 300}, req["object"]["spec"]["tolerations"])

        # namespaceSelector: kube-system and stratos-system are left alone; matchCondition:
        # pods without nodeSelector or node affinity are not sent.
        hooks.clear()
        self.assertEqual(self.c.post("/api/v1/namespaces/kube-system/pods", self.pool_pod("sys"))[0], 201)
        self.assertEqual(self.c.post("/api/v1/namespaces/stratos-system/pods", self.pool_pod("own"))[0], 201)
        self.assertEqual(self.c.post("/api/v1/namespaces/team-a/pods", self.pool_pod("plain", pool=None))[0], 201)
        self.assertEqual(hooks.requests, [])
        affinity = self.pool_pod("aff", pool=None)
        affinity["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "stratos.sh/pool", "operator": "In",
                                                         "values": ["ci-runners"]}]}]}}}
        self.assertEqual(self.c.post("/api/v1/namespaces/team-a/pods", affinity)[0], 201)
        self.assertEqual(len(hooks.reviews("/admission/mutate-pod")), 1)

        # The validating webhooks: NodePools and AWSNodeClasses, CREATE and UPDATE.
        hooks.clear()
        rc, out, err = self.kubectl("apply", "-f", SEED)
        self.assertEqual(rc, 0, err)
        np = hooks.reviews("/admission/validate-nodepool")
        nc = hooks.reviews("/admission/validate-awsnodeclass")
        self.assertEqual(sorted(r["request"]["name"] for r in np), ["ci-runners", "inference", "on-demand"])
        self.assertEqual(len(nc), 3)
        req = np[0]["request"]
        self.assertEqual((req["kind"], req["resource"]["resource"], req["operation"]),
                         ({"group": "stratos.sh", "version": "v1alpha1", "kind": "NodePool"}, "nodepools", "CREATE"))
        self.assertNotIn("namespace", req)
        self.assertEqual(req["object"]["spec"]["template"]["labels"]["stratos.sh/pool"], req["name"])
        hooks.handlers["/admission/validate-nodepool"] = lambda rv: {
            "allowed": False, "status": {"code": 422, "reason": "Invalid",
                                         "message": "spec.minStandby: 6 is more than the test allows"}}
        # The CRD's own rules (schema, CEL) run before validating admission...
        before = len(hooks.reviews("/admission/validate-nodepool"))
        rc, out, err = self.kubectl("patch", "nodepool", "ci-runners", "--type=merge", "-p",
                                    '{"spec":{"minStandby":50}}')
        self.assertNotEqual(rc, 0)
        self.assertIn('The NodePool "ci-runners" is invalid', err)
        self.assertEqual(len(hooks.reviews("/admission/validate-nodepool")), before)
        # ... and the webhook judges what passes them.
        rc, out, err = self.kubectl("patch", "nodepool", "ci-runners", "--type=merge", "-p",
                                    '{"spec":{"minStandby":6}}')
        self.assertNotEqual(rc, 0)
        # (kubectl words an Invalid status without details this way, whoever sends it)
        self.assertEqual(err.strip(), 'The request is invalid: admission webhook "nodepools.stratos.sh" denied '
                                      "the request: spec.minStandby: 6 is more than the test allows")
        upd = hooks.reviews("/admission/validate-nodepool")[-1]["request"]
        self.assertEqual((upd["operation"], upd["oldObject"]["spec"]["minStandby"], upd["object"]["spec"]["minStandby"]),
                         ("UPDATE", 5, 6))
        self.assertEqual(upd["options"]["kind"], "PatchOptions")

    def test_real_stratosd_behind_the_fake_apiserver(self):
        stratosd = os.environ.get("STRATOSD")
        if not stratosd or not os.access(stratosd, os.X_OK):
            self.skipTest("STRATOSD is not set to a built stratosd")
        usage = subprocess.run([stratosd, "help"], capture_output=True, text=True, timeout=30).stdout
        if not any(line.split()[:1] == ["serve"] for line in usage.splitlines()):
            self.skipTest("this stratosd has no serve command")
        proc = subprocess.Popen([stratosd, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                 "--tls-cert", os.path.join(self.certs, "tls.crt"),
                                 "--tls-key", os.path.join(self.certs, "tls.key"), "--pools-file", SEED],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={k: v for k, v in os.environ.items() if not k.startswith("STRATOS_")})

        lines = []                      # its log, read by a thread so that no wait can hang
        started = threading.Event()

        def read_log():
            for raw in iter(proc.stderr.readline, b""):
                lines.append(raw.decode(errors="replace"))
                if raw.startswith(b"{") and b"stratosd serving" in raw:
                    started.set()

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()

        def stop():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(5)
            proc.stderr.close()
        self.addCleanup(stop)
        self.assertTrue(started.wait(20), "stratosd did not start:\n" + "".join(lines))
        line = next(ln for ln in lines if "stratosd serving" in ln)
        port = int(json.loads(line)["listen"].rsplit(":", 1)[1])
        # A stratosd without the admission handlers (before branch 'webhooks') answers 404.
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("POST", "/admission/mutate-pod", body=b"{}", headers={"Content-Type": "application/json"})
        probe = conn.getresponse().status
        conn.close()
        if probe == 404:
            self.skipTest("this stratosd does not serve /admission/mutate-pod")

        self.apply_manifests(port)
        rc, out, err = self.kubectl("delete", "--ignore-not-found", "-f", SEED)
        self.assertEqual(rc, 0, err)
        self.c.delete("/_sim/webhook-calls")
        rc, out, err = self.kubectl("create", "-n", "team-a", "-f", "-",
                                    stdin=json.dumps(self.pool_pod("ci-job-1")))
        self.assertEqual(rc, 0, err)
        st, p = self.c.get("/api/v1/namespaces/team-a/pods/ci-job-1")
        self.assertEqual(st, 200)
        self.assertEqual(p["metadata"]["annotations"]["stratos.sh/pool"], "ci-runners")
        tols = {(t.get("key"), t.get("operator"), t.get("effect")) for t in p["spec"]["tolerations"]}
        self.assertIn(("stratos.sh/standby", "Exists", "NoExecute"), tols)      # DESIGN: taint true:NoExecute
        for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready",
                    "node.cloudprovider.kubernetes.io/shutdown", "node.eks.amazonaws.com/not-ready"):
            self.assertIn((key, "Exists", "NoSchedule"), tols)
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):   # kept from admission
            self.assertIn({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                          p["spec"]["tolerations"])
        (call,) = [c for c in self.c.get("/_sim/webhook-calls")[1]["calls"] if c["webhook"] == "pods.stratos.sh"]
        self.assertEqual((call["outcome"], call["httpStatus"]), ("patched", 200))
        # A pod of no pool is left as it was; the seed's objects pass stratosd's validation.
        rc, out, err = self.kubectl("create", "-n", "team-a", "-f", "-",
                                    stdin=json.dumps(self.pool_pod("web-1", pool=None)))
        self.assertEqual(rc, 0, err)
        st, p = self.c.get("/api/v1/namespaces/team-a/pods/web-1")
        self.assertNotIn("annotations", p["metadata"])
        rc, out, err = self.kubectl("apply", "-f", SEED)
        self.assertEqual(rc, 0, err)
        calls = self.c.get("/_sim/webhook-calls")[1]["calls"]
        self.assertEqual(sorted({c["webhook"] for c in calls if c["outcome"] == "allowed"}),
                         ["awsnodeclasses.stratos.sh", "nodepools.stratos.sh"])


if __name__ == "__main__":
    unittest.main()
