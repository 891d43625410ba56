"""The extender's world for the integration tests and the decision benchmark:
the simulated cluster (ec2sim, the fake API server, kubeletsim, schedsim run
with the scheduler configuration shipped in manifests/), stratosd with the
mutating webhook of manifests/ registered, standby nodes made the way the
pool controller makes them (warmed up by their user data, stopped, labelled
standby, tainted), and a stand-in for the controller's startup-taint removal
(DESIGN §5.3) while the controller is written on its own branch.

Only the extender's address and the certificate paths are substituted in the
shipped files (--extender-host-map, --path-map), as in test_schedsim."""

import base64
import http.client
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))
import simproc  # noqa: E402
from simcluster import Sim, cond, gen_certs, mount_secret, seed_user_data, wait_for  # noqa: E402
from stratos_testlib import Stratosd  # noqa: E402

SECOND_SCHEDULER = os.path.join(REPO, "manifests", "components", "second-scheduler", "scheduler-config.yaml")
MANAGED_RESOURCE = os.path.join(REPO, "manifests", "components", "managed-resource",
                                "kube-scheduler-extender.yaml")
WEBHOOKS = os.path.join(REPO, "manifests", "base", "webhooks.yaml")
SERVICE_HOST = "stratos-webhook.stratos-system.svc"
STARTUP_TAINT = "node.eks.amazonaws.com/not-ready"
# NoSchedule taints of a node that is not up yet (the extender's "booting" taints).
BOOTING_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                  "node.cloudprovider.kubernetes.io/shutdown")

POOL_TEMPLATE = """apiVersion: stratos.sh/v1alpha1
kind: AWSNodeClass
metadata:
  name: {name}
spec:
  instanceType: {itype}
  ami: ami-0123456789abcdef0
  subnetIds: ["subnet-12345678"]
  securityGroupIds: ["sg-12345678"]
  iamInstanceProfile: arn:aws:iam::123456789012:instance-profile/ci-node-role
  userData: |
    #!/bin/bash
    /etc/eks/bootstrap.sh my-cluster
---
apiVersion: stratos.sh/v1alpha1
kind: NodePool
metadata:
  name: {name}
spec:
  poolSize: 40
  minStandby: 0
  template:
    nodeClassRef:
      kind: AWSNodeClass
      name: {name}
    labels:
      stratos.sh/pool: {name}
    startupTaints:
      - key: {taint}
        value: "true"
        effect: NoSchedule
    startupTaintRemoval: WhenNetworkReady
  preWarm:
    timeout: 10m
"""


def pool_pod(name, pool, cpu="1", owner=None, **spec):
    """A pod selecting pool P by nodeSelector (a pool pod, DESIGN §6.2)."""
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
         "spec": dict({"containers": [{"name": "c", "image": "registry.example/app:1.0",
                                       "resources": {"requests": {"cpu": cpu}}}],
                       "nodeSelector": {"stratos.sh/pool": pool},
                       "terminationGracePeriodSeconds": 0}, **spec)}
    if owner:
        p["metadata"]["labels"] = {"pod-template-hash": "5d9f8c6b7"}
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                             "name": owner + "-5d9f8c6b7", "uid": "rs-" + owner,
                                             "controller": True}]
    return p


class TaintRemover(threading.Thread):
    """The controller's startup-taint removal (DESIGN §5.3) for running nodes
    of the given pools: as soon as a node is Ready and network ready, its
    pool's startup taint goes, in one guarded update."""

    def __init__(self, sim, pools):
        super().__init__(daemon=True)
        self.sim = sim
        self.pools = set(pools)
        self.stop_ev = threading.Event()
        from simclient import Client
        self.api = Client(sim.dir)
        self.removed = {}          # node -> time.time() of the removal

    def run(self):
        while not self.stop_ev.is_set():
            try:
                st, lst = self.api.get("/api/v1/nodes")
            except Exception:
                time.sleep(0.05)
                continue
            for n in (lst or {}).get("items", []) if st == 200 else []:
                labels = n["metadata"].get("labels") or {}
                if labels.get("stratos.sh/pool") not in self.pools or labels.get("stratos.sh/state") != "running":
                    continue
                taints = (n.get("spec") or {}).get("taints") or []
                if not any(t["key"] == STARTUP_TAINT for t in taints):
                    continue
                net = cond(n, "NetworkUnavailable").get("status")
                if cond(n, "Ready").get("status") != "True" or net == "True":
                    continue
                body = {"metadata": {"resourceVersion": n["metadata"]["resourceVersion"]},
                        "spec": {"taints": [t for t in taints if t["key"] != STARTUP_TAINT]}}
                st, _ = self.api.patch("/api/v1/nodes/" + n["metadata"]["name"], body)
                if st == 200:
                    self.removed[n["metadata"]["name"]] = time.time()
            self.stop_ev.wait(0.02)

    def stop(self):
        self.stop_ev.set()
        self.join(5)
        self.api.close()


class Balancer:
    """An HTTPS front for several stratosd replicas that sends each request
    to the next replica in turn (the worst case of a Service: every call may
    land on a replica whose watch has not seen the last one's writes). It
    presents stratosd's serving certificate to the scheduler and the
    scheduler's client certificate to the replicas."""

    def __init__(self, certs, ports):
        self.ports = list(ports)
        self.i = 0
        self.lock = threading.Lock()
        self.calls = [0] * len(self.ports)
        outer = self
        up = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        up.check_hostname = False
        up.load_cert_chain(os.path.join(certs, "client.crt"), os.path.join(certs, "client.key"))
        local = threading.local()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    k = outer.i % len(outer.ports)
                    outer.i += 1
                    outer.calls[k] += 1
                conns = getattr(local, "conns", None)
                if conns is None:
                    conns = local.conns = {}
                for attempt in (0, 1):
                    c = conns.get(k)
                    if c is None:
                        c = conns[k] = http.client.HTTPSConnection("127.0.0.1", outer.ports[k], context=up,
                                                                   timeout=30)
                    try:
                        c.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
                        r = c.getresponse()
                        data = r.read()
                        break
                    except (OSError, http.client.HTTPException):
                        c.close()
                        conns.pop(k, None)
                        if attempt:
                            raise
                self.send_response(r.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Env:
    """One simulated cluster with stratosd replicas and (optionally) schedsim."""

    def __init__(self, pools, scale=0.2, itype="m5.large", kubelet_args=(), ec2_args=()):
        self.scale = scale
        self.itype = itype
        self.pools = list(pools)
        self.replicas = []
        self.balancer = None
        self.remover = None
        self.sim = Sim(components=("ec2sim", "apiserver", "kubeletsim"), scale=scale,
                       kubelet_args=["--node-monitor-period", "1", "--node-monitor-grace-seconds", "5"] +
                       list(kubelet_args), ec2_args=ec2_args)
        try:
            self.api = self.sim.api
            self.certs = os.path.join(self.sim.tmp, "certs")
            gen_certs(self.certs)
            self.sched_tls = mount_secret(os.path.join(self.certs, "secrets.yaml"),
                                          "stratos-scheduler-client-tls", os.path.join(self.sim.tmp, "sched-tls"))
            self.pools_file = os.path.join(self.sim.tmp, "pools.yaml")
            with open(self.pools_file, "w") as f:
                f.write("---\n".join(POOL_TEMPLATE.format(name=p, itype=itype, taint=STARTUP_TAINT)
                                     for p in self.pools))
            self.ec2env = simproc.read_env(os.path.join(self.sim.dir, "ec2sim.env"))
        except Exception:
            self.sim.close()
            raise

    # ---- stratosd

    def start_stratosd(self, *extra, scheduler_name="stratos-scheduler"):
        """A replica; scheduler_name None for deployment 2 (pass --managed-resource)."""
        env = {k: v for k, v in self.ec2env.items() if k.startswith("AWS_")}
        args = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                "--tls-cert", os.path.join(self.certs, "tls.crt"), "--tls-key", os.path.join(self.certs, "tls.key"),
                "--client-ca", os.path.join(self.certs, "client-ca.crt"),
                "--kubeconfig", os.path.join(self.sim.dir, "kubeconfig"), "--pools-file", self.pools_file,
                "--cluster-name", "sim"] + (["--scheduler-name", scheduler_name] if scheduler_name else []) + \
            list(extra)
        d = Stratosd(args, env=env)
        self.replicas.append(d)
        wait_for(lambda: self.ready(d), 30, what="stratosd ready (caches synced)")
        return d

    def ready(self, d):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", d.metrics_port, timeout=5)
            conn.request("GET", "/readyz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def register_webhook(self, port):
        """The MutatingWebhookConfiguration of manifests/, its Service mapped to port."""
        import yaml
        with open(WEBHOOKS) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        with open(os.path.join(self.certs, "ca.crt"), "rb") as f:
            bundle = base64.b64encode(f.read()).decode()
        for d in docs:
            if d["kind"] == "MutatingWebhookConfiguration":
                for wh in d["webhooks"]:
                    wh["clientConfig"]["caBundle"] = bundle
                st, body = self.api.post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", d)
                assert st == 201, body
        st, body = self.api.post("/_sim/webhook-services",
                                 {"services": {"stratos-system/stratos-webhook": "127.0.0.1:%d" % port}})
        assert st == 200, body

    def start_schedsim(self, port, config=SECOND_SCHEDULER, host=SERVICE_HOST + ":443",
                       tls_dir="/etc/stratos-scheduler/tls"):
        self.sim.start("schedsim", ["--time-scale", str(self.scale), "--scheduler-config", config,
                                    "--extender-host-map", "%s=127.0.0.1:%d" % (host, port),
                                    "--path-map", "%s=%s" % (tls_dir, self.sched_tls)])
        wait_for(lambda: set(self.sim.control("schedsim", "GET", "/_sim/health")[1]["synced"]) >= {"nodes", "pods"},
                 what="schedsim synced")

    def start_remover(self):
        self.remover = TaintRemover(self.sim, self.pools)
        self.remover.start()
        return self.remover

    def close(self):
        if self.remover:
            self.remover.stop()
        if self.balancer:
            self.balancer.stop()
        if "schedsim" in self.sim.procs:
            simproc.stop(self.sim.procs.pop("schedsim"))
        for d in self.replicas:
            if d.alive():
                d.stop()
        self.sim.close()

    # ---- standby nodes

    def standby(self, pool, n, zone_subnets=None):
        """n instances of pool warmed up by their user data (which registers
        the Node with the pool label and startup taint and powers the machine
        off), then marked standby as the controller does (§5.1): label
        standby + instance id, state-since, the standby taint. Returns
        [(instance id, node name)]."""
        ud = seed_user_data(sleep=1, labels={"stratos.sh/pool": pool})
        made = self.sim.launch(self.itype, user_data=ud, count=n,
                               tags={"stratos.sh/pool": pool, "stratos.sh/cluster": "sim"})
        for iid, node in made:
            wait_for(lambda: self.sim.instance_state(iid) == "stopped", 60, what="%s stopped by its user data" % iid)
        for i, (iid, node) in enumerate(made):
            # Stopped long enough for the node lifecycle controller to see it (Ready Unknown).
            wait_for(lambda: cond(self.sim.node(node), "Ready").get("status") == "Unknown", 60,
                     what="%s NotReady" % node)
            cur = self.sim.node(node)
            taints = [t for t in (cur["spec"].get("taints") or []) if t["key"] != "stratos.sh/standby"]
            taints.append({"key": "stratos.sh/standby", "value": "true", "effect": "NoExecute"})
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60 * (n - i)))
            st, body = self.api.patch("/api/v1/nodes/" + node, {
                "metadata": {"labels": {"stratos.sh/state": "standby", "stratos.sh/instance-id": iid},
                             "annotations": {"stratos.sh/state-since": since}},
                "spec": {"taints": taints}})
            assert st == 200, body
        return made

    # ---- what happened

    def ec2_requests(self, action="StartInstances"):
        st, doc = simproc.control(self.ec2env["STRATOS_SIM_EC2_CONTROL"], "GET", "requests?action=" + action,
                                  ca=self.ec2env["AWS_CA_BUNDLE"])
        return doc["requests"]

    def started_instances(self):
        """Instance ids StartInstances was asked for, one entry per request that reached the emulator."""
        out = []
        for r in self.ec2_requests():
            out += r.get("instance_ids") or []
        return out

    def ec2_faults(self, rules):
        st, doc = simproc.control(self.ec2env["STRATOS_SIM_EC2_CONTROL"], "POST", "faults", rules,
                                  ca=self.ec2env["AWS_CA_BUNDLE"])
        assert st == 200, doc
        return doc

    def ec2_clear_faults(self):
        simproc.control(self.ec2env["STRATOS_SIM_EC2_CONTROL"], "DELETE", "faults", ca=self.ec2env["AWS_CA_BUNDLE"])

    def timeline(self, kind, key):
        st, doc = self.api.get("/_sim/timeline?kind=%s&key=%s" % (kind, key))
        items = doc["pods" if kind == "pod" else "nodes"]
        return items[0]["events"] if items else []

    def bound_time(self, ns, name):
        for e in self.timeline("pod", "%s/%s" % (ns, name)):
            if e["event"] == "bound":
                return e["t"], e["detail"].get("node")
        return None, None

    def usable_time(self, node, after):
        """When the node became usable after `after` (epoch): the last of Ready=True,
        the startup taint's removal and the booting NoSchedule taints' removal."""
        t_ready = t_startup = None
        t_booting = after
        for e in self.timeline("node", node):
            if e["t"] < after:
                continue
            ev = e["event"]
            if ev == "Ready=True":
                t_ready = e["t"]
            elif ev.startswith("taint removed " + STARTUP_TAINT):
                t_startup = e["t"]
            elif ev.startswith("taint removed ") and ev.endswith(":NoSchedule") and \
                    ev[len("taint removed "):].split(":")[0].split("=")[0] in BOOTING_TAINTS:
                t_booting = max(t_booting, e["t"])
        if t_ready is None or t_startup is None:
            return None
        return max(t_ready, t_startup, t_booting)

    def claimed_time(self, node):
        for e in self.timeline("node", node):
            if e["event"] == "state running":
                return e["t"]
        return None

    def metrics(self, d):
        conn = http.client.HTTPConnection("127.0.0.1", d.metrics_port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        return text

    def create_pod(self, ns, p):
        return self.sim.create("/api/v1/namespaces/%s/pods" % ns, p)

    def wait_bound(self, ns, name, timeout=60):
        return wait_for(lambda: (self.sim.pod(ns, name) or {}).get("spec", {}).get("nodeName"), timeout,
                        what="%s bound" % name)


def filter_call(port, certs, body, timeout=30):
    """One /scheduler/filter call as the scheduler makes it (client certificate, TLS)."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(certs, "client.crt"), os.path.join(certs, "client.key"))
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        c.request("POST", "/scheduler/filter", body=json.dumps(body) if not isinstance(body, (str, bytes)) else body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


__all__ = ["Env", "Balancer", "TaintRemover", "pool_pod", "filter_call", "wait_for", "cond", "socket",
           "SECOND_SCHEDULER", "MANAGED_RESOURCE", "STARTUP_TAINT"]
