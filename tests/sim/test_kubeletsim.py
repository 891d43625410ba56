"""Fidelity tests of kubeletsim (tests/sim/kubeletsim.py): an emulated
instance's life as the cluster sees it, one case per rule (registration as
EKS computes it, taints and labels only at creation, conditions, the node
lifecycle controllers' taints, self-poweroff, pods, images kept on the disk,
the network gate, DaemonSets). Time runs 20 times faster (--time-scale 0.05).

Run from the repository root:  python3 -m unittest tests/sim/test_kubeletsim.py
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simcluster import Sim, cond, pod, seed_user_data, taint_set, wait_for  # noqa: E402

SCALE = 0.05
SUBNETS = ["--subnet", "subnet-12345678:us-east-1a", "--subnet", "subnet-87654321:us-east-1b"]
UNREACHABLE_NS = ("node.kubernetes.io/unreachable", "NoSchedule")
UNREACHABLE_NE = ("node.kubernetes.io/unreachable", "NoExecute")
SHUTDOWN = ("node.cloudprovider.kubernetes.io/shutdown", "NoSchedule")
STARTUP = ("node.eks.amazonaws.com/not-ready", "NoSchedule")


def first(events, name, after=0.0):
    for e in events:
        if e["event"] == name and e["t"] >= after:
            return e["t"]
    return None


class KubeletCase(unittest.TestCase):
    components = ("ec2sim", "apiserver", "kubeletsim", "schedsim")

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(components=cls.components, scale=SCALE, ec2_args=SUBNETS)
        cls.api = cls.sim.api
        cls.sim.namespace("work")

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()

    def ready_node(self, node, timeout=15):
        def ok():
            n = self.sim.node(node)
            if n and cond(n, "Ready").get("status") == "True" and cond(n, "NetworkUnavailable").get("status") == "False":
                return n
        return wait_for(ok, timeout, what="%s Ready" % node)

    def wait_taints(self, node, present=(), absent=(), timeout=15):
        def ok():
            ts = taint_set(self.sim.node(node) or {})
            if all(t in ts for t in present) and not any(t in ts for t in absent):
                return (ts,)
        return wait_for(ok, timeout, what="%s taints %s without %s" % (node, present, absent))

    def state(self, iid, want, timeout=15):
        wait_for(lambda: self.sim.instance_state(iid) == want, timeout, what="%s %s" % (iid, want))

    def bind(self, ns, name, node):
        st, body = self.api.post("/api/v1/namespaces/%s/pods/%s/binding" % (ns, name), {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        self.assertEqual(st, 201, body)

    def running(self, ns, name, timeout=15):
        def ok():
            p = self.sim.pod(ns, name)
            if p and p["status"].get("phase") == "Running" and cond(p, "Ready").get("status") == "True":
                return p
        return wait_for(ok, timeout, what="%s/%s Running and Ready" % (ns, name))


class NodeTest(KubeletCase):

    def test_registration_as_eks_computes_it(self):
        """Node name = private DNS name, providerID aws:///<az>/<id>, the
        well-known labels, capacity/allocatable per instance type from the
        EKS AMI's bootstrap.sh (max pods from the ENI limits, kubeReserved,
        evictionHard), the GPU from the device plugin."""
        table = {
            # instance type: (vCPUs, kube-reserved cpu in m, max pods, GPUs)
            "m5.large": (2, 70, 29, 0), "m5.2xlarge": (8, 90, 58, 0), "g5.2xlarge": (8, 90, 58, 1),
            "c5.xlarge": (4, 80, 58, 0), "r5.large": (2, 70, 29, 0), "m5.4xlarge": (16, 110, 234, 0),
        }
        launched = {t: self.sim.launch(t, volume_gib=20)[0] for t in table}
        for itype, (iid, name) in launched.items():
            with self.subTest(instance_type=itype):
                n = self.ready_node(name)
                vcpu, res_cpu, max_pods, gpus = table[itype]
                self.assertRegex(name, r"^ip-10-0-\d+-\d+\.ec2\.internal$")
                self.assertEqual(n["spec"]["providerID"], "aws:///us-east-1a/%s" % iid)
                lab = n["metadata"]["labels"]
                self.assertEqual((lab["kubernetes.io/hostname"], lab["node.kubernetes.io/instance-type"],
                                  lab["topology.kubernetes.io/zone"], lab["topology.kubernetes.io/region"],
                                  lab["kubernetes.io/os"], lab["kubernetes.io/arch"]),
                                 (name, itype, "us-east-1a", "us-east-1", "linux", "amd64"))
                cap, alloc = n["status"]["capacity"], n["status"]["allocatable"]
                self.assertEqual(cap["cpu"], str(vcpu))
                self.assertEqual(alloc["cpu"], "%dm" % (vcpu * 1000 - res_cpu))
                self.assertEqual((cap["pods"], alloc["pods"]), (str(max_pods), str(max_pods)))
                cap_ki = int(cap["memory"][:-2])
                self.assertEqual(int(alloc["memory"][:-2]), cap_ki - (11 * max_pods + 255 + 100) * 1024)
                self.assertEqual(cap["ephemeral-storage"], "20959212Ki")
                self.assertEqual(alloc["ephemeral-storage"], "18242267956")
                if itype == "m5.large":
                    # The figures an m5.large shows on EKS.
                    self.assertEqual((cap["memory"], alloc["memory"], alloc["cpu"]), ("7934460Ki", "7244284Ki", "1930m"))
                if gpus:
                    n = wait_for(lambda: (self.sim.node(name)["status"]["allocatable"].get("nvidia.com/gpu") == "1"
                                          and self.sim.node(name)), what="GPU advertised")
                    self.assertEqual(n["status"]["capacity"]["nvidia.com/gpu"], "1")
                else:
                    self.assertNotIn("nvidia.com/gpu", alloc)
                self.assertEqual({a["type"]: a["address"] for a in n["status"]["addresses"]}["InternalDNS"], name)
        self.sim.ec2.terminate_instances(InstanceIds=[iid for iid, _ in launched.values()])

    def test_conditions_taints_and_lease_at_first_boot(self):
        """Registered with Ready False and NetworkUnavailable True (so
        not-ready, network-unavailable and uninitialized taints); Ready True
        after --ready-seconds, NetworkUnavailable False --cni-seconds later,
        each taint going with its condition; the node Lease is renewed."""
        (iid, node), = self.sim.launch("m5.large")
        self.ready_node(node)
        ev = self.sim.timeline("node", node)
        names = [e["event"] for e in ev]
        t_reg = first(ev, "registered")
        for e in ("Ready=False", "NetworkUnavailable=True", "taint added node.kubernetes.io/not-ready:NoSchedule",
                  "taint added node.kubernetes.io/network-unavailable:NoSchedule",
                  "taint added node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule"):
            self.assertIn(e, names)
        t_ready = first(ev, "Ready=True")
        t_net = first(ev, "NetworkUnavailable=False")
        self.assertLess(t_reg, t_ready)
        self.assertLess(t_ready, t_net)
        self.assertGreater(t_ready - first(ev, "kubelet started"), self.sim.s(3) * 0.8)
        self.assertGreater(t_net - t_ready, self.sim.s(2) * 0.8)
        # The NoSchedule taints follow the conditions at once (an API round trip).
        self.assertLess(first(ev, "taint removed node.kubernetes.io/not-ready:NoSchedule") - t_ready, 1.0)
        self.assertLess(first(ev, "taint removed node.kubernetes.io/network-unavailable:NoSchedule") - t_net, 1.0)
        self.assertIn("instance running", names)
        self.assertLess(first(ev, "instance running"), t_reg)
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + node
        lease = wait_for(lambda: self.api.get(path)[1]["metadata"].get("ownerReferences") and self.api.get(path)[1],
                         5, what="lease owned by the Node")      # set on a renewal once the Node exists
        self.assertEqual(lease["spec"]["holderIdentity"], node)
        self.assertEqual(lease["metadata"]["ownerReferences"][0]["kind"], "Node")
        t0 = lease["spec"]["renewTime"]
        wait_for(lambda: self.api.get(path)[1]["spec"]["renewTime"] != t0, 5, what="lease renewed")
        self.sim.ec2.terminate_instances(InstanceIds=[iid])

    def test_stop_and_restart(self):
        """Stopped: after the grace period Unknown, unreachable NoSchedule and
        NoExecute (another node of the zone is Ready), shutdown from the cloud
        controller, pods not Ready. Started: the same Node, whose register-time
        taint and label, once removed, do not come back; the unreachable
        NoSchedule taint goes when Ready, the NoExecute one on the next 5 s
        pass, the shutdown taint on the cloud controller's."""
        (keep, keep_node), = self.sim.launch("m5.large")          # keeps the zone healthy
        (iid, node), = self.sim.launch("m5.large", user_data=seed_user_data(
            labels={"stratos.sh/pool": "ci-runners"}, poweroff=False))
        self.ready_node(keep_node)
        n = self.ready_node(node)
        self.assertIn(STARTUP, taint_set(n))
        self.assertEqual(n["metadata"]["labels"]["stratos.sh/pool"], "ci-runners")
        # What the pool controller does when the node is running: drop the startup taint,
        # and (here) the label too, to show that neither comes back.
        self.api.patch("/api/v1/nodes/" + node, {"metadata": {"labels": {"stratos.sh/pool": None}},
                                                 "spec": {"taints": None}})
        self.sim.create("/api/v1/namespaces/work/pods", pod("on-stopped", nodeSelector={"kubernetes.io/hostname": node}))
        self.running("work", "on-stopped")
        self.sim.ec2.stop_instances(InstanceIds=[iid])
        self.state(iid, "stopped")
        n = self.sim.node(node)
        self.assertEqual(cond(n, "Ready")["status"], "True")          # before the grace period
        self.wait_taints(node, present=(UNREACHABLE_NS, SHUTDOWN, UNREACHABLE_NE), timeout=20)
        n = self.sim.node(node)
        self.assertEqual(cond(n, "Ready")["status"], "Unknown")
        self.assertEqual(cond(n, "Ready")["reason"], "NodeStatusUnknown")
        p = wait_for(lambda: cond(self.sim.pod("work", "on-stopped"), "Ready").get("status") == "False"
                     and self.sim.pod("work", "on-stopped"), what="MarkPodsNotReady")
        self.assertEqual(p["status"]["phase"], "Running")
        ev = self.sim.timeline("node", node)
        t_stop = first(ev, "kubelet stopped")
        self.assertGreater(first(ev, "Ready=Unknown") - t_stop, self.sim.s(50) - self.sim.s(10) - 0.1)
        uid = n["metadata"]["uid"]
        # Restart.
        t_start = time.time()
        self.sim.ec2.start_instances(InstanceIds=[iid])
        self.ready_node(node)
        self.wait_taints(node, absent=(UNREACHABLE_NS, UNREACHABLE_NE, SHUTDOWN,
                                       ("node.kubernetes.io/not-ready", "NoSchedule"),
                                       ("node.kubernetes.io/not-ready", "NoExecute")), timeout=10)
        n = self.sim.node(node)
        self.assertEqual(n["metadata"]["uid"], uid)                   # the same Node
        self.assertNotIn(STARTUP, taint_set(n))                       # --register-with-taints: creation only
        self.assertNotIn("stratos.sh/pool", n["metadata"]["labels"])  # --node-labels: creation only
        self.assertEqual(n["metadata"]["labels"]["kubernetes.io/hostname"], node)
        ev = [e for e in self.sim.timeline("node", node) if e["t"] >= t_start]
        t_ready = first(ev, "Ready=True")
        ns_gone = max(e["t"] for e in ev if e["event"].startswith("taint removed node.kubernetes.io/")
                      and e["event"].endswith(":NoSchedule"))
        ne_gone = max(e["t"] for e in ev if e["event"].startswith("taint removed node.kubernetes.io/")
                      and e["event"].endswith(":NoExecute"))
        self.assertLess(ns_gone - t_ready, 1.0)                          # at once
        self.assertLess(ne_gone - t_ready, self.sim.s(5) + 1.0)           # on the next monitor pass
        self.assertGreaterEqual(ne_gone, t_ready)
        # The pod's containers died with the machine: restarted, after the network.
        p = self.running("work", "on-stopped")
        self.assertEqual(p["status"]["containerStatuses"][0]["restartCount"], 1)
        self.sim.ec2.terminate_instances(InstanceIds=[keep, iid])

    def test_terminated_instance_node_deleted(self):
        """The cloud node lifecycle controller deletes a Node whose instance is
        terminated, once the node is not Ready; the pod GC then deletes its pods."""
        (iid, node), = self.sim.launch("m5.large")
        self.ready_node(node)
        self.sim.create("/api/v1/namespaces/work/pods", pod("doomed", nodeSelector={"kubernetes.io/hostname": node}))
        self.running("work", "doomed")
        self.sim.ec2.terminate_instances(InstanceIds=[iid])
        wait_for(lambda: self.sim.node(node) is None, 20, what="Node deleted")
        ev = wait_for(lambda: [e["event"] for e in self.sim.timeline("node", node)
                               if e["event"] == "cloud controller deletes the Node"] and
                      self.sim.timeline("node", node), 5, what="timeline entry")
        self.assertIn("deleted", [e["event"] for e in ev])
        wait_for(lambda: self.sim.pod("work", "doomed") is None, 10, what="pod GC")

    def test_self_poweroff_on_first_boot_only(self):
        """The seed's user data: until the kubelet's /healthz answers (polled
        every 5 s), then sleep 30, then poweroff; user data runs only on the
        first boot."""
        (iid, node), = self.sim.launch("m5.large", user_data=seed_user_data(sleep=30))
        self.state(iid, "stopped", timeout=20)
        ev = self.sim.timeline("node", node)
        t_kubelet = first(ev, "kubelet started")
        t_off = first(ev, "user data powers the instance off")
        self.assertGreaterEqual(t_off - t_kubelet, self.sim.s(5 + 30) - 0.05)
        self.assertLess(t_off - t_kubelet, self.sim.s(5 + 30) + 1.0)
        self.assertIn("poweroff called", [e["event"] for e in ev])
        st, m = self.sim.control("kubeletsim", "GET", "/_sim/machines/" + iid)
        self.assertTrue(m["user_data_ran"])
        self.sim.ec2.start_instances(InstanceIds=[iid])
        self.ready_node(node)
        time.sleep(self.sim.s(5 + 30) + 0.5)
        self.assertEqual(self.sim.instance_state(iid), "running")
        self.sim.ec2.terminate_instances(InstanceIds=[iid])

    def test_kubectl_get_nodes_and_pods_wide(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl not installed")
        (iid, node), = self.sim.launch("m5.large")
        self.ready_node(node)
        self.sim.create("/api/v1/namespaces/work/pods", pod("shown", nodeSelector={"kubernetes.io/hostname": node}))
        self.running("work", "shown")
        out = subprocess.run([kubectl, "--kubeconfig", os.path.join(self.sim.dir, "kubeconfig"), "get",
                              "nodes,pods", "-o", "wide", "-A"], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("node/" + node))
        self.assertIn("Ready", line)
        self.assertIn("v1.32", line)
        self.assertIn("Amazon Linux", line)
        line = next(ln for ln in out.stdout.splitlines() if "pod/shown" in ln)
        self.assertIn("Running", line)
        self.assertIn(node, line)
        self.sim.ec2.terminate_instances(InstanceIds=[iid])


class PodTest(KubeletCase):

    def test_images_pulled_kept_across_stop_start(self):
        """Pulls take size / --pull-bandwidth (100Mi/s); imageID appears once
        pulled; node.status.images lists it; the disk keeps it across
        stop/start, so the second boot starts the container without a pull."""
        st, body = self.sim.control("kubeletsim", "POST", "/_sim/images",
                                    {"sizes": {"my-registry.com/llama-3:70b": "2Gi"}})
        self.assertEqual(st, 200, body)
        (iid, node), = self.sim.launch("g5.2xlarge", volume_gib=500)
        self.ready_node(node)
        p = pod("model", image="my-registry.com/llama-3:70b", nodeSelector={"kubernetes.io/hostname": node})
        self.sim.create("/api/v1/namespaces/work/pods", p)
        p = self.running("work", "model")
        cs = p["status"]["containerStatuses"][0]
        self.assertEqual(cs["image"], "my-registry.com/llama-3:70b")
        self.assertRegex(cs["imageID"], r"^my-registry\.com/llama-3@sha256:[0-9a-f]{64}$")
        self.assertTrue(cs["containerID"].startswith("containerd://"))
        nev = wait_for(lambda: first(self.sim.timeline("node", node), "pull finished") and
                       self.sim.timeline("node", node), 5, what="pull in the timeline")
        t_pull, t_done = first(nev, "pull started"), first(nev, "pull finished")
        self.assertGreaterEqual(t_done - t_pull, self.sim.s(0.5 + 2048 / 100.0) - 0.05)
        self.assertLess(t_done - t_pull, self.sim.s(0.5 + 2048 / 100.0) + 1.0)
        wait_for(lambda: any("my-registry.com/llama-3:70b" in img["names"]
                             for img in self.sim.node(node)["status"].get("images") or []), 10,
                 what="image in node.status.images")
        self.sim.ec2.stop_instances(InstanceIds=[iid])
        self.state(iid, "stopped")
        t_restart = time.time()
        self.sim.ec2.start_instances(InstanceIds=[iid])
        # The machine's containers died with it: the kubelet starts it again (restartCount 1).
        wait_for(lambda: self.sim.pod("work", "model")["status"]["containerStatuses"][0]["restartCount"] == 1 and
                 "running" in self.sim.pod("work", "model")["status"]["containerStatuses"][0]["state"], 15,
                 what="container restarted")
        self.assertIsNone(first(self.sim.timeline("node", node), "pull started", after=t_restart))
        st, m = self.sim.control("kubeletsim", "GET", "/_sim/machines/" + iid)
        self.assertIn("my-registry.com/llama-3:70b", m["images"])
        self.sim.ec2.terminate_instances(InstanceIds=[iid])

    def test_run_seconds_then_succeeded(self):
        (iid, node), = self.sim.launch("m5.large")
        self.ready_node(node)
        p = pod("job", image="busybox", nodeSelector={"kubernetes.io/hostname": node}, restartPolicy="Never")
        p["metadata"]["annotations"] = {"sim.stratos.sh/run-seconds": "10"}
        self.sim.create("/api/v1/namespaces/work/pods", p)
        self.running("work", "job")
        p = wait_for(lambda: self.sim.pod("work", "job")["status"].get("phase") == "Succeeded"
                     and self.sim.pod("work", "job"), 10, what="Succeeded")
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((term["exitCode"], term["reason"]), (0, "Completed"))
        self.assertEqual((cond(p, "Ready")["status"], cond(p, "Ready")["reason"]), ("False", "PodCompleted"))
        ev = self.sim.timeline("pod", "work/job")
        ran = first(ev, "Succeeded") - first(ev, "container started")
        self.assertGreaterEqual(ran, self.sim.s(10) - 0.05)
        self.assertLess(ran, self.sim.s(10) + 1.0)
        self.sim.ec2.terminate_instances(InstanceIds=[iid])

    def test_pod_bound_before_network_ready_waits_for_the_volume_backoff(self):
        """A pod bound to a stopped machine is synced when the kubelet starts,
        stops at "network is not ready", and its volume mounts back off
        0.5 s, 1 s, 2 s, 4 s...: failed attempts at 0, 0.5, 1.5, 3.5, 7.5,
        15.5 s; with the runtime network ready 20 s after the kubelet starts,
        the mount succeeds at 31.5 s, not at 20 s."""
        (iid, node), = self.sim.launch("m5.large", user_data=seed_user_data(sleep=1))
        self.state(iid, "stopped", timeout=20)
        # schedulerName "manual": no scheduler of the sim takes them; the test binds them.
        self.sim.create("/api/v1/namespaces/work/pods", pod("early", image="busybox", schedulerName="manual"))
        self.bind("work", "early", node)
        self.sim.create("/api/v1/namespaces/work/pods", pod("late", image="busybox", schedulerName="manual"))
        st, cfg = self.sim.control("kubeletsim", "POST", "/_sim/config", {"ready_seconds": 20})
        self.addCleanup(self.sim.control, "kubeletsim", "POST", "/_sim/config", {"ready_seconds": 3})
        t0 = time.time()
        self.sim.ec2.start_instances(InstanceIds=[iid])
        self.running("work", "early")
        nev = [e for e in self.sim.timeline("node", node) if e["t"] >= t0]
        t_kubelet = first(nev, "kubelet started")
        t_net = first(nev, "runtime network ready")
        self.assertGreaterEqual(t_net - t_kubelet, self.sim.s(20) - 0.05)
        pev = wait_for(lambda: first(self.sim.timeline("pod", "work/early"), "volumes mounted") and
                       self.sim.timeline("pod", "work/early"), 5, what="mount in the timeline")
        self.assertIn("network not ready", [e["event"] for e in pev])
        t_mount = first(pev, "volumes mounted")
        self.assertGreaterEqual(t_mount - t_kubelet, self.sim.s(31.5) - 0.05)
        self.assertLess(t_mount - t_kubelet, self.sim.s(31.5) + 0.5)
        self.assertGreater(t_mount - t_net, self.sim.s(8))
        # A pod bound once the network is ready mounts at once.
        self.bind("work", "late", node)
        t_bind = time.time()
        self.running("work", "late")
        t_late = wait_for(lambda: first(self.sim.timeline("pod", "work/late"), "volumes mounted"), 5)
        self.assertLess(t_late - t_bind, 1.0)
        self.sim.ec2.terminate_instances(InstanceIds=[iid])

    def test_gpu_pod_rejected_before_the_device_plugin_reregisters(self):
        """After a restart the node still advertises nvidia.com/gpu, but until
        the device plugin registers again a GPU pod fails admission
        (UnexpectedAdmissionError)."""
        (iid, node), = self.sim.launch("g5.2xlarge")
        self.ready_node(node)
        wait_for(lambda: self.sim.node(node)["status"]["allocatable"].get("nvidia.com/gpu") == "1", what="GPU")
        self.sim.create("/api/v1/namespaces/work/pods", pod("gpu", requests={"nvidia.com/gpu": "1"}, image="busybox",
                                                            schedulerName="manual"))
        self.bind("work", "gpu", node)
        self.running("work", "gpu")
        self.sim.ec2.stop_instances(InstanceIds=[iid])
        self.state(iid, "stopped")
        self.sim.ec2.start_instances(InstanceIds=[iid])
        p = wait_for(lambda: self.sim.pod("work", "gpu")["status"].get("phase") == "Failed"
                     and self.sim.pod("work", "gpu"), 15, what="GPU pod rejected")
        self.assertEqual(p["status"]["reason"], "UnexpectedAdmissionError")
        self.assertIn("Allocate failed due to no healthy devices present", p["status"]["message"])
        self.sim.ec2.terminate_instances(InstanceIds=[iid])

    def test_daemonset_pods_on_every_node_they_tolerate(self):
        """Every DaemonSet gets a pod per node it selects and tolerates, with
        the tolerations the controller adds and a metadata.name node affinity
        the scheduler binds by; a stopped node (unreachable NoSchedule) gets
        none, but keeps the one it had."""
        nodes = [n for _, n in self.sim.launch("m5.large", count=2)]
        for n in nodes:
            self.ready_node(n)
        ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "work"},
              "spec": {"selector": {"matchLabels": {"app": "agent"}},
                       "template": {"metadata": {"labels": {"app": "agent"}},
                                    "spec": {"hostNetwork": True, "nodeSelector": {"kubernetes.io/os": "linux"},
                                             "containers": [{"name": "a", "image": "busybox"}]}}}}
        self.sim.create("/apis/apps/v1/namespaces/work/daemonsets", ds)

        def agents():
            st, body = self.api.get("/api/v1/namespaces/work/pods?labelSelector=app%3Dagent")
            return body["items"]
        wait_for(lambda: {p["spec"].get("nodeName") for p in agents()} >= set(nodes) and
                 all(cond(p, "Ready").get("status") == "True" for p in agents() if p["spec"].get("nodeName") in nodes),
                 20, what="a Ready daemon pod on each node")
        p = next(p for p in agents() if p["spec"]["nodeName"] == nodes[0])
        tols = {(t.get("key"), t.get("operator"), t.get("effect")) for t in p["spec"]["tolerations"]}
        for key, eff in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                         ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                         ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                         ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                         ("node.kubernetes.io/unschedulable", "NoSchedule"),
                         ("node.kubernetes.io/network-unavailable", "NoSchedule")):
            self.assertIn((key, "Exists", eff), tols)
        self.assertNotIn("tolerationSeconds", json.dumps([t for t in p["spec"]["tolerations"]
                                                          if t.get("key") == "node.kubernetes.io/unreachable"]))
        self.assertEqual(p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
                         {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                  "values": [nodes[0]]}]}]})
        self.assertEqual(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet")
        self.assertIn("controller-revision-hash", p["metadata"]["labels"])
        self.assertEqual(p["metadata"]["labels"]["pod-template-generation"], "1")
        st, d = self.api.get("/apis/apps/v1/namespaces/work/daemonsets/agent")
        self.assertGreaterEqual(d["status"]["desiredNumberScheduled"], 2)
        wait_for(lambda: self.api.get("/apis/apps/v1/namespaces/work/daemonsets/agent")[1]["status"]
                 .get("numberReady", 0) >= 2, 10, what="DaemonSet status")
        # A new node while another is stopped: the stopped one keeps its pod.
        iid0 = self.sim.node(nodes[0])["spec"]["providerID"].rsplit("/", 1)[1]
        self.sim.ec2.stop_instances(InstanceIds=[iid0])
        self.wait_taints(nodes[0], present=(UNREACHABLE_NS,), timeout=20)
        (iid2, n2), = self.sim.launch("m5.large")
        self.ready_node(n2)
        wait_for(lambda: n2 in {p["spec"].get("nodeName") for p in agents()}, 15, what="daemon pod on the new node")
        self.assertIn(nodes[0], {p["spec"].get("nodeName") for p in agents()})
        self.api.delete("/apis/apps/v1/namespaces/work/daemonsets/agent")
        ids = [self.sim.node(n)["spec"]["providerID"].rsplit("/", 1)[1] for n in nodes] + [iid2]
        self.sim.ec2.terminate_instances(InstanceIds=ids)


class ZoneDisruptionTest(KubeletCase):
    """pkg/controller/nodelifecycle handleDisruption: with every node of every
    zone not Ready the controller assumes its own connectivity is at fault
    and adds no NoExecute taints; once a node of the zone is Ready again the
    stopped node gets its unreachable NoExecute taint (rate-limited)."""
    components = ("ec2sim", "apiserver", "kubeletsim")

    def test_full_disruption_then_normal(self):
        (iid, node), = self.sim.launch("m5.large")
        self.ready_node(node)
        self.sim.ec2.stop_instances(InstanceIds=[iid])
        self.wait_taints(node, present=(UNREACHABLE_NS, SHUTDOWN), timeout=20)
        time.sleep(self.sim.s(20))
        self.assertNotIn(UNREACHABLE_NE, taint_set(self.sim.node(node)))
        (iid2, node2), = self.sim.launch("m5.large")
        self.ready_node(node2)
        self.wait_taints(node, present=(UNREACHABLE_NE,), timeout=15)
        self.assertNotIn(UNREACHABLE_NE, taint_set(self.sim.node(node2)))


if __name__ == "__main__":
    unittest.main()
