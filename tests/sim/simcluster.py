"""A simulated cluster for tests: ec2sim, the fake API server, kubeletsim and
schedsim started in one directory (as scripts/sim up does), with the helpers
the fidelity tests share: an EC2 client, the API client, condition waits,
a fake scheduler extender. Used by test_kubeletsim.py and test_schedsim.py."""

import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import simproc  # noqa: E402
from simclient import REPO, Client  # noqa: E402

SEED_USER_DATA = """#!/bin/bash
set -e
/etc/eks/bootstrap.sh my-cluster \\
  --kubelet-extra-args '--register-with-taints=node.eks.amazonaws.com/not-ready=true:NoSchedule{labels}'
until curl -sf http://localhost:10248/healthz >/dev/null 2>&1; do sleep 5; done
sleep {sleep}
poweroff
"""


def gen_certs(d):
    """certs/gen.sh with the Secrets (secrets.yaml), as the deployment makes them;
    returns the caBundle it prints."""
    p = subprocess.run([os.path.join(REPO, "certs", "gen.sh"), "--days", "2", "--secrets", d],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("certs/gen.sh: %s" % p.stderr)
    return p.stdout.strip().splitlines()[-1]


def mount_secret(secrets_yaml, name, d):
    """The keys of Secret `name` as files in d, as a volume mount does."""
    import yaml
    with open(secrets_yaml) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "Secret" and doc["metadata"]["name"] == name:
                os.makedirs(d, exist_ok=True)
                for k, v in (doc.get("data") or {}).items():
                    with open(os.path.join(d, k), "wb") as out:
                        out.write(base64.b64decode(v))
                return d
    raise KeyError(name)


def seed_user_data(sleep=30, labels=None, poweroff=True):
    """The seed's user data (seed/examples.yaml), optionally with --node-labels."""
    lab = " --node-labels=" + ",".join("%s=%s" % kv for kv in labels.items()) if labels else ""
    ud = SEED_USER_DATA.format(labels=lab, sleep=sleep)
    if not poweroff:
        ud = ud.split("until curl")[0]
    return ud


def wait_for(fn, timeout=20.0, interval=0.05, what="condition"):
    """Polls fn until it returns a true value (which is returned)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # a not-yet-existing object, a restarting simulator
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %gs waiting for %s (last: %r)" % (timeout, what, last))


def cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def taint_set(node):
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


class Sim:
    """The simulators of one test class. components: a subset of
    ("ec2sim", "apiserver", "kubeletsim", "schedsim")."""

    def __init__(self, components=("ec2sim", "apiserver", "kubeletsim"), scale=0.05, kubelet_args=(),
                 sched_args=(), ec2_args=(), api_args=("--quiet",)):
        self.tmp = tempfile.mkdtemp(prefix="stratos-simcluster-")
        self.dir = os.path.join(self.tmp, "sim")
        self.scale = scale
        self.procs = {}
        self.ports = {}
        try:
            for name, extra in (("ec2sim", ["--time-scale", str(scale)] + list(ec2_args)),
                                ("apiserver", list(api_args)),
                                ("kubeletsim", ["--time-scale", str(scale)] + list(kubelet_args)),
                                ("schedsim", ["--time-scale", str(scale)] + list(sched_args))):
                if name in components:
                    self.start(name, extra)
        except Exception:
            self.close()
            raise
        self.api = Client(self.dir)
        self._ec2 = None

    def start(self, name, args):
        self.procs[name], self.ports[name] = simproc.start(name, self.dir, args)

    def restart(self, name, args):
        simproc.stop(self.procs.pop(name))
        self.start(name, args)

    def close(self):
        if getattr(self, "api", None) is not None:
            self.api.close()
        for name in ("schedsim", "kubeletsim", "apiserver", "ec2sim"):
            p = self.procs.pop(name, None)
            if p is not None:
                simproc.stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name + ".log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # ---- EC2

    @property
    def ec2(self):
        if self._ec2 is None:
            import boto3
            import botocore.config
            env = simproc.read_env(os.path.join(self.dir, "ec2sim.env"))
            self._ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL_EC2"], verify=env["AWS_CA_BUNDLE"],
                                     aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"],
                                     config=botocore.config.Config(retries={"total_max_attempts": 1}))
        return self._ec2

    def launch(self, itype="m5.large", user_data=None, count=1, volume_gib=None, tags=None):
        """RunInstances as stratosd does it; returns [(instance id, node name)]."""
        kw = {"ImageId": "ami-0123456789abcdef0", "InstanceType": itype, "MinCount": count, "MaxCount": count,
              "SubnetId": "subnet-12345678"}
        if user_data is not None:
            kw["UserData"] = user_data
        if volume_gib:
            kw["BlockDeviceMappings"] = [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": volume_gib,
                                                                             "VolumeType": "gp3"}}]
        if tags:
            kw["TagSpecifications"] = [{"ResourceType": "instance",
                                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        r = self.ec2.run_instances(**kw)
        return [(i["InstanceId"], i["PrivateDnsName"]) for i in r["Instances"]]

    def instance_state(self, iid):
        st, doc = simproc.control(simproc.read_env(os.path.join(self.dir, "ec2sim.env"))["STRATOS_SIM_EC2_CONTROL"],
                                  "GET", "instances/" + iid,
                                  ca=simproc.read_env(os.path.join(self.dir, "ec2sim.env"))["AWS_CA_BUNDLE"])
        return doc["state"]

    # ---- Kubernetes

    def node(self, name):
        st, n = self.api.get("/api/v1/nodes/" + name)
        return n if st == 200 else None

    def pod(self, ns, name):
        st, p = self.api.get("/api/v1/namespaces/%s/pods/%s" % (ns, name))
        return p if st == 200 else None

    def namespace(self, name):
        st, body = self.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}})
        assert st in (201, 409), body

    def create(self, path, obj):
        st, body = self.api.post(path, obj)
        assert st == 201, (st, body)
        return body

    def timeline(self, kind, key):
        st, doc = self.api.get("/_sim/timeline?kind=%s&key=%s" % (kind, key))
        items = doc["pods" if kind == "pod" else "nodes"]
        return items[0]["events"] if items else []

    def control(self, name, method, path, body=None):
        return simproc.control("http://127.0.0.1:%d" % self.ports[name], method, path, body)

    def wait(self, fn, timeout=20.0, what="condition"):
        return wait_for(fn, timeout, what=what)

    def s(self, seconds):
        """Simulated seconds in real seconds."""
        return seconds * self.scale


def pod(name, image="registry.example/app:1.0", requests=None, node_selector=None, **spec):
    c = {"name": "c", "image": image}
    if requests:
        c["resources"] = {"requests": requests}
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": dict({"containers": [c]}, **spec)}
    if node_selector:
        p["spec"]["nodeSelector"] = node_selector
    return p


def static_node(name, labels=None, taints=None, allocatable=None, unschedulable=False, ready=True, images=None):
    """A Node object created directly in the API server (no kubelet behind it)."""
    alloc = {"cpu": "2", "memory": "8Gi", "ephemeral-storage": "20Gi", "pods": "110"}
    alloc.update(allocatable or {})
    n = {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": name, "labels": dict({"kubernetes.io/hostname": name}, **(labels or {}))},
         "spec": {"taints": taints or []},
         "status": {"allocatable": alloc, "capacity": alloc,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "images": images or []}}
    if unschedulable:
        n["spec"]["unschedulable"] = True
    return n


# ---------------------------------------------------------------------------
# A fake scheduler extender.

class FakeExtender:
    """An HTTP(S) server answering <prefix>/filter and <prefix>/prioritize with
    self.filter(args) / self.prioritize(args) (defaults: pass everything, score
    0), recording every call: (time, verb, args, headers). `status` forces an
    HTTP status, `delay` a slow answer."""

    def __init__(self, tls=None, prefix="/scheduler"):
        self.calls = []
        self.lock = threading.Lock()
        self.prefix = prefix
        self.status = 200
        self.delay = 0.0
        self.filter = lambda args: {"NodeNames": args["NodeNames"], "Nodes": args["Nodes"], "FailedNodes": {},
                                    "Error": ""}
        self.prioritize = lambda args: []
        self.peer_certs = []
        self.sni = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                args = json.loads(self.rfile.read(n))
                verb = self.path.rsplit("/", 1)[-1]
                cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
                with outer.lock:
                    outer.calls.append((time.time(), verb, args, dict(self.headers)))
                    if cert:
                        outer.peer_certs.append(cert)
                if outer.delay:
                    time.sleep(outer.delay)
                if outer.status != 200:
                    body = b'{"error": "forced"}'
                    self.send_response(outer.status)
                else:
                    body = json.dumps(outer.filter(args) if verb == "filter" else outer.prioritize(args)).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass        # the scheduler gave up (a timeout case)

            def handle(self):
                try:
                    super().handle()
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.tls = tls
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            if tls.get("client_ca"):
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(tls["client_ca"])

            def sni_cb(sock, name, c):
                outer.sni.append(name)
            ctx.sni_callback = sni_cb
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "%s://127.0.0.1:%d%s" % ("https" if self.tls else "http", self.port, self.prefix)

    def filter_calls(self, pod=None):
        with self.lock:
            return [c for c in self.calls if c[1] == "filter" and
                    (pod is None or c[2]["Pod"]["metadata"]["name"] == pod)]

    def clear(self):
        with self.lock:
            self.calls.clear()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def write_config(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


__all__ = ["Sim", "FakeExtender", "wait_for", "cond", "taint_set", "pod", "static_node", "seed_user_data",
           "gen_certs", "mount_secret",
           "write_config", "REPO", "b64"]
