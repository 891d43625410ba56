"""Integration tests of the C EC2 client (src/ec2.c, src/aws_credentials.c, src/sigv4.c).

They start the emulated EC2 (tests/sim/ec2sim.py: moto behind a SigV4-verifying,
fault-injecting layer) and the credential stubs (tests/sim/awsauth.py), and drive
the client through the test-only driver build/ec2_driver (JSON lines in and out)
and through `stratosd doctor`. What EC2 stored is read back with the AWS CLI.

Run from the repository root after a build:
    STRATOS_BUILD_DIR=build STRATOSD=build/stratosd python3 -m unittest -v tests/integration/test_ec2_client.py
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))
sys.path.insert(0, HERE)
import simproc  # noqa: E402
import stratos_testlib as tl  # noqa: E402

DRIVER = tl.build_path("ec2_driver")
AMI = "ami-0123456789abcdef0"
SUBNET = "subnet-12345678"
SG = "sg-12345678"
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/inference-node-role"
PENDING, STOPPING, SHUTTING = 0.5, 0.5, 0.3


def base_env(extra):
    """A clean environment: nothing AWS_* leaks in from the caller's shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("STRATOS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"   # never probe 169.254.169.254 from a test
    env.update(extra)
    return env


class Driver:
    """One ec2_driver process; call() sends a JSON command and returns the JSON answer."""

    def __init__(self, env, args=()):
        self.proc = subprocess.Popen([DRIVER] + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     text=True, bufsize=1)
        self.ready = json.loads(self.proc.stdout.readline() or "{}")
        self._stderr = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    def stderr(self):
        return "".join(self._stderr)

    def call(self, cmd, **kw):
        cmd = dict(cmd, **kw)
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("ec2_driver died: %s" % self.stderr()[-2000:])
        return json.loads(line)

    def close(self):
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._t.join(5)
        self.proc.stderr.close()
        return self.proc.returncode


class SimCase(unittest.TestCase):
    """Starts one ec2sim for the class; each test starts from a reset emulator."""

    extra_sims = ()

    @classmethod
    def setUpClass(cls):
        tl.driver_path("ec2_driver")
        cls.dir = tempfile.mkdtemp(prefix="stratos-ec2-")
        cls.ec2sim, _ = simproc.start("ec2sim", cls.dir, [
            "--pending-seconds", str(PENDING), "--stopping-seconds", str(STOPPING),
            "--shutting-down-seconds", str(SHUTTING)])
        cls.simenv = simproc.read_env(os.path.join(cls.dir, "ec2sim.env"))
        cls.ca = cls.simenv["AWS_CA_BUNDLE"]
        cls.endpoint = cls.simenv["AWS_ENDPOINT_URL_EC2"]
        cls.control_url = cls.simenv["STRATOS_SIM_EC2_CONTROL"]
        cls.awsauth = None
        if "awsauth" in cls.extra_sims:
            cls.awsauth, _ = simproc.start("awsauth", cls.dir, [
                "--ec2sim-control", cls.control_url, "--ec2sim-ca", cls.ca,
                "--expiration-seconds", "3600"])
            cls.authenv = simproc.read_env(os.path.join(cls.dir, "awsauth.env"))

    @classmethod
    def tearDownClass(cls):
        if cls.awsauth is not None:
            simproc.stop(cls.awsauth)
        simproc.stop(cls.ec2sim)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        status, _ = self.control("POST", "reset")
        self.assertEqual(status, 200)
        self.drivers = []

    def tearDown(self):
        # A clean exit, and nothing from the sanitizers (scripts/test runs this with ASan/UBSan).
        for d in self.drivers:
            rc = d.close()
            self.assertEqual(rc, 0 if d.ready.get("ok") else 1, d.stderr()[-3000:])
            self.assertNotIn("Sanitizer", d.stderr())
            self.assertNotIn("runtime error:", d.stderr())

    def control(self, method, path, body=None):
        return simproc.control(self.control_url, method, path, body, ca=self.ca)

    def fault(self, **rule):
        status, out = self.control("POST", "faults", rule)
        self.assertEqual(status, 200, out)

    def requests(self, action=None):
        path = "requests" + ("?action=%s" % action if action else "")
        return self.control("GET", path)[1]["requests"]

    def sim_env(self, **extra):
        env = {k: self.simenv[k] for k in ("AWS_ENDPOINT_URL_EC2", "AWS_ACCESS_KEY_ID",
                                           "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_CA_BUNDLE")}
        env.update(extra)
        return base_env(env)

    def driver(self, env=None, args=()):
        d = Driver(env if env is not None else self.sim_env(), ["--log-level", "debug"] + list(args))
        self.drivers.append(d)
        self.assertTrue(d.ready.get("ok"), d.ready)
        return d

    def aws(self, *args):
        env = self.sim_env()
        out = subprocess.run(["aws", "--endpoint-url", self.endpoint, "--ca-bundle", self.ca,
                              "--region", "us-east-1", "--output", "json", "ec2"] + list(args),
                             env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout or "null")

    def launch(self, d, **params):
        p = {"image_id": AMI, "instance_type": "m5.large", "subnet_id": SUBNET,
             "security_group_ids": [SG], "tags": {"stratos.sh/cluster": "test"}}
        p.update(params)
        r = d.call({"op": "run", "params": p})
        self.assertTrue(r["ok"], r)
        return r["instances"]

    def wait_state(self, d, iid, state, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = d.call({"op": "describe", "ids": [iid]})
            self.assertTrue(r["ok"], r)
            last = r["instances"][0]["state"]
            if last == state:
                return
            time.sleep(0.1)
        self.fail("%s stayed %s, wanted %s" % (iid, last, state))


class Ec2CallsTest(SimCase):

    def test_every_request_carries_a_signature_the_emulator_verifies(self):
        d = self.driver()
        [inst] = self.launch(d)
        for op in ("describe", "create_tags", "delete_tags", "stop", "start", "terminate"):
            r = d.call({"op": op, "ids": [inst["id"]], "tags": {"k": "v"}, "force": True})
            self.assertIn(r["class"], ("none", "wrong-state"), r)
        log = self.requests()
        self.assertGreaterEqual(len(log), 7)
        for e in log:
            self.assertEqual(e["signature"], "verified", e)
            self.assertEqual(e["access_key_id"], "AKIASTRATOSSIM000001")

    def test_wrong_secret_and_session_token_are_auth_errors(self):
        d = self.driver(self.sim_env(AWS_SECRET_ACCESS_KEY="not-the-secret"))
        r = d.call({"op": "start", "ids": ["i-0123456789abcdef0"]})
        self.assertFalse(r["ok"])
        self.assertEqual(r["class"], "auth")
        self.assertEqual(r["code"], "SignatureDoesNotMatch")
        self.assertEqual(r["attempts"], 1)
        # Temporary keys: the session token is signed and sent.
        status, _ = self.control("POST", "credentials", {
            "access_key_id": "ASIATEMPORARY0000001", "secret_access_key": "tempsecret",
            "session_token": "tok/with+chars=", "expiration": time.time() + 600})
        self.assertEqual(status, 200)
        d2 = self.driver(self.sim_env(AWS_ACCESS_KEY_ID="ASIATEMPORARY0000001",
                                      AWS_SECRET_ACCESS_KEY="tempsecret",
                                      AWS_SESSION_TOKEN="tok/with+chars="))
        r = d2.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        self.assertTrue(r["ok"], r)
        self.assertEqual(self.requests()[-1]["signature"], "verified")

    def test_run_instances_every_parameter_read_back_with_the_aws_cli(self):
        d = self.driver()
        user_data = "#!/bin/bash\nset -e\necho 'stratos \u2713'\npoweroff\n"
        params = {
            "image_id": AMI, "instance_type": "g5.2xlarge", "subnet_id": SUBNET,
            "security_group_ids": [SG], "iam_instance_profile": PROFILE_ARN,
            "block_devices": [
                {"device_name": "/dev/xvda", "volume_size": 500, "volume_type": "gp3",
                 "iops": 16000, "throughput": 1000, "encrypted": True,
                 "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                 "delete_on_termination": True},
                # (moto 5.2.1 refuses io1/io2 in a launch: InvalidParameterDependency.)
                {"device_name": "/dev/xvdb", "volume_size": 100, "volume_type": "st1",
                 "encrypted": False, "delete_on_termination": False},
            ],
            "user_data": user_data, "metadata_http_tokens": "required", "metadata_hop_limit": 2,
            "tags": {"stratos.sh/cluster": "test", "stratos.sh/pool": "inference",
                     "stratos.sh/state": "warmup", "managed-by": "stratos",
                     "Name": "stratos-inference", "team": "ml & infra"},
            "client_token": "inference-launch-0001",
        }
        r = d.call({"op": "run", "params": params})
        self.assertTrue(r["ok"], r)
        [inst] = r["instances"]
        self.assertEqual(inst["client_token"], "inference-launch-0001")

        out = self.aws("describe-instances", "--instance-ids", inst["id"])
        [res] = out["Reservations"]
        [i] = res["Instances"]
        self.assertEqual(i["InstanceType"], "g5.2xlarge")
        self.assertEqual(i["ImageId"], AMI)
        self.assertEqual(i["SubnetId"], SUBNET)
        self.assertEqual([g["GroupId"] for g in i["SecurityGroups"]], [SG])
        self.assertEqual(i["IamInstanceProfile"]["Arn"], PROFILE_ARN)
        self.assertEqual(i["ClientToken"], "inference-launch-0001")
        self.assertEqual(i["MetadataOptions"]["HttpTokens"], "required")
        self.assertEqual(i["MetadataOptions"]["HttpPutResponseHopLimit"], 2)
        self.assertEqual({t["Key"]: t["Value"] for t in i["Tags"]}, params["tags"])

        ud = self.aws("describe-instance-attribute", "--instance-id", inst["id"], "--attribute", "userData")
        self.assertEqual(base64.b64decode(ud["UserData"]["Value"]).decode(), user_data)

        vols = self.aws("describe-volumes", "--filters", "Name=attachment.instance-id,Values=" + inst["id"])
        by_dev = {v["Attachments"][0]["Device"]: v for v in vols["Volumes"]}
        self.assertEqual(set(by_dev), {"/dev/xvda", "/dev/xvdb"})
        a, b = by_dev["/dev/xvda"], by_dev["/dev/xvdb"]
        self.assertEqual((a["Size"], a["VolumeType"], a["Iops"], a["Throughput"], a["Encrypted"]),
                         (500, "gp3", 16000, 1000, True))
        self.assertEqual(a["KmsKeyId"], params["block_devices"][0]["kms_key_id"])
        # DeleteOnTermination is in the instance's block device mappings.
        dot = {m["DeviceName"]: m["Ebs"]["DeleteOnTermination"] for m in i["BlockDeviceMappings"]}
        self.assertEqual(dot, {"/dev/xvda": True, "/dev/xvdb": False})
        self.assertEqual((b["Size"], b["VolumeType"], b["Encrypted"]), (100, "st1", False))

        # The instance profile by name, tags on the volumes too.
        r = d.call({"op": "run", "params": {"image_id": AMI, "instance_type": "t3.micro",
                                            "iam_instance_profile": "ci-node-role",
                                            "tags": {"stratos.sh/pool": "ci"}, "tag_volumes": True}})
        self.assertTrue(r["ok"], r)
        sent = self.requests("RunInstances")[-1]["params"]
        self.assertEqual(sent["IamInstanceProfile.Name"], "ci-node-role")
        self.assertEqual(sent["TagSpecification.2.ResourceType"], "volume")

    def test_start_stop_terminate_change_state(self):
        d = self.driver()
        [inst] = self.launch(d)
        iid = inst["id"]
        self.assertEqual(inst["state"], "pending")
        self.wait_state(d, iid, "running")
        r = d.call({"op": "stop", "ids": [iid], "force": True})
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["changes"], [{"id": iid, "previous": "running", "current": "stopping"}])
        self.assertEqual(self.requests("StopInstances")[-1]["params"].get("Force"), "true")
        self.wait_state(d, iid, "stopped")
        cli = self.aws("describe-instances", "--instance-ids", iid)
        self.assertEqual(cli["Reservations"][0]["Instances"][0]["State"]["Name"], "stopped")
        r = d.call({"op": "start", "ids": [iid]})
        self.assertEqual(r["changes"], [{"id": iid, "previous": "stopped", "current": "pending"}])
        self.wait_state(d, iid, "running")
        # Starting a stopping instance is refused: a definite, wrong-state failure.
        d.call({"op": "stop", "ids": [iid]})
        r = d.call({"op": "start", "ids": [iid]})
        self.assertEqual((r["class"], r["code"], r["attempts"]), ("wrong-state", "IncorrectInstanceState", 1))
        self.assertTrue(r["request_id"])
        r = d.call({"op": "terminate", "ids": [iid]})
        self.assertTrue(r["ok"], r)
        self.wait_state(d, iid, "terminated")
        cli = self.aws("describe-instances", "--instance-ids", iid)
        self.assertEqual(cli["Reservations"][0]["Instances"][0]["State"]["Name"], "terminated")
        r = d.call({"op": "start", "ids": ["i-0123456789abcdef9"]})
        self.assertEqual((r["class"], r["code"]), ("not-found", "InvalidInstanceID.NotFound"))

    def test_describe_paginates_over_250_instances(self):
        d = self.driver(args=["--page-size", "100"])
        r = d.call({"op": "run", "params": {"image_id": AMI, "instance_type": "t3.micro",
                                            "count": 250, "tags": {"stratos.sh/cluster": "big"}}})
        self.assertTrue(r["ok"], r)
        self.assertEqual(len(r["instances"]), 250)
        self.launch(d, tags={"stratos.sh/cluster": "other"})
        self.control("DELETE", "requests")
        r = d.call({"op": "describe_cluster", "cluster": "big"})
        self.assertTrue(r["ok"], r)
        ids = [i["id"] for i in r["instances"]]
        self.assertEqual(len(ids), 250)
        self.assertEqual(len(set(ids)), 250)
        log = self.requests("DescribeInstances")
        self.assertEqual(len(log), 3)
        self.assertEqual([e["params"].get("MaxResults") for e in log], ["100"] * 3)
        self.assertNotIn("NextToken", log[0]["params"])
        self.assertIn("NextToken", log[1]["params"])
        # The AWS CLI sees the same 250.
        cli = self.aws("describe-instances", "--filters", "Name=tag:stratos.sh/cluster,Values=big")
        self.assertEqual(sorted(i["InstanceId"] for res in cli["Reservations"] for i in res["Instances"]),
                         sorted(ids))
        # A state filter with the cluster filter: the controller's usual query.
        r = d.call({"op": "describe_cluster", "cluster": "other", "states": ["pending", "running"]})
        self.assertEqual(len(r["instances"]), 1)

    def test_throttling_is_retried_with_backoff(self):
        d = self.driver()
        [inst] = self.launch(d)
        self.wait_state(d, inst["id"], "running")
        self.fault(action="StopInstances", error="RequestLimitExceeded", count=2)
        t0 = time.monotonic()
        r = d.call({"op": "stop", "ids": [inst["id"]]})
        took = time.monotonic() - t0
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["attempts"], 3)
        self.assertLess(took, 3.5)   # full jitter: [0,1 s) then [0,2 s)
        log = self.requests("StopInstances")
        self.assertEqual([e["error_code"] for e in log], ["RequestLimitExceeded"] * 2 + [None])
        self.assertIn("EC2 attempt failed, retrying", d.stderr())
        # Throttled every time: three attempts, then the class and code.
        self.fault(action="StartInstances", error="RequestLimitExceeded")
        r = d.call({"op": "start", "ids": [inst["id"]]})
        self.assertEqual((r["class"], r["code"], r["attempts"], r["http_status"]),
                         ("throttled", "RequestLimitExceeded", 3, 503))

    def test_retry_quota_stops_a_retry_storm(self):
        d = self.driver(args=["--rate-limits", "Describe=0"])
        self.fault(action="DescribeInstances", error="InternalError")
        calls, attempts = 0, []
        while calls < 80:
            r = d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["q"]}]})
            self.assertEqual(r["code"], "InternalError")
            attempts.append(r["attempts"])
            calls += 1
            if r["attempts"] == 1:
                break
        # 500 tokens at 5 per retry: 50 calls retried twice each, then no more retries.
        self.assertEqual(attempts[:50], [3] * 50)
        self.assertEqual(attempts[-1], 1)
        self.assertEqual(calls, 51)
        self.control("DELETE", "requests")
        for _ in range(20):
            r = d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["q"]}]})
            self.assertEqual(r["attempts"], 1)
        self.assertEqual(len(self.requests("DescribeInstances")), 20)   # no storm: one request per call
        self.assertEqual(d.call({"op": "stats"})["quota"], 0)

    def test_run_instances_after_a_dropped_connection_makes_one_instance(self):
        d = self.driver()
        # EC2 launches, then the connection drops before the answer: the client retries
        # with the same ClientToken and EC2 returns the same reservation.
        self.fault(action="RunInstances", count=1, drop="after")
        [inst] = self.launch(d, client_token="pool-a-launch-7")
        status, out = self.control("GET", "instances")
        self.assertEqual([i["instance_id"] for i in out["instances"]], [inst["id"]])
        log = self.requests("RunInstances")
        self.assertEqual(len(log), 2)
        self.assertEqual([e["outcome"] for e in log], ["dropped-after", "response"])
        self.assertEqual({e["client_token"] for e in log}, {"pool-a-launch-7"})
        self.assertTrue(log[1]["idempotent_replay"])
        # The same without a caller token: the client's own token makes its retry safe.
        self.fault(action="RunInstances", count=1, drop="after")
        [inst2] = self.launch(d, tags={"stratos.sh/cluster": "test", "n": "2"})
        status, out = self.control("GET", "instances")
        self.assertEqual(len(out["instances"]), 2)
        # A crash between the call and its answer: the caller gets "unknown outcome",
        # and its own retry with the recorded token finds the instance that was made.
        # (count 2: libcurl itself resends once when a reused connection dies unanswered.)
        self.fault(action="RunInstances", count=2, drop="after")
        p = {"image_id": AMI, "instance_type": "m5.large", "client_token": "pool-a-launch-8"}
        r = d.call({"op": "run", "params": p, "max_attempts": 1})
        self.assertEqual((r["ok"], r["class"]), (False, "unknown-outcome"), r)
        r = d.call({"op": "run", "params": p})
        self.assertTrue(r["ok"], r)
        status, out = self.control("GET", "instances")
        self.assertEqual(len(out["instances"]), 3)
        # Dropped before EC2 saw it: nothing made, the retry makes one.
        self.fault(action="RunInstances", count=1, drop="before", reset=True)
        self.launch(d, client_token="pool-a-launch-9")
        status, out = self.control("GET", "instances")
        self.assertEqual(len(out["instances"]), 4)

    def test_fast_path_start_never_exceeds_its_deadline(self):
        d = self.driver()
        [inst] = self.launch(d)
        self.wait_state(d, inst["id"], "running")
        d.call({"op": "stop", "ids": [inst["id"]]})
        self.wait_state(d, inst["id"], "stopped")
        cases = [
            ({"action": "StartInstances", "delay_ms": 5000}, "unknown-outcome"),
            ({"action": "StartInstances", "response_delay_ms": 5000}, "unknown-outcome"),
            ({"action": "StartInstances", "error": "RequestLimitExceeded"}, "throttled"),
            ({"action": "StartInstances", "error": "InternalError"}, "other"),
            ({"action": "StartInstances", "drop": "before"}, "unknown-outcome"),
        ]
        for rule, cls in cases:
            with self.subTest(rule=rule):
                self.control("DELETE", "faults")
                self.fault(**rule)
                t0 = time.monotonic()
                r = d.call({"op": "start", "ids": [inst["id"]], "budget_ms": 2000})
                took = time.monotonic() - t0
                self.assertFalse(r["ok"], r)
                self.assertEqual(r["class"], cls, r)
                self.assertLessEqual(r["elapsed_ms"], 2050, r)
                self.assertLess(took, 2.3)
        # A definite EC2 refusal comes back at once, for the extender to roll back.
        self.control("DELETE", "faults")
        self.fault(action="StartInstances", error="InsufficientInstanceCapacity", count=1)
        r = d.call({"op": "start", "ids": [inst["id"]], "budget_ms": 2000})
        self.assertEqual((r["class"], r["code"], r["attempts"], r["http_status"]),
                         ("capacity", "InsufficientInstanceCapacity", 1, 500))
        self.assertEqual(r["request_id"], self.requests("StartInstances")[-1]["request_id"])
        self.assertIn("capacity", r["message"])

    def test_a_warm_connection_serves_every_call(self):
        d = self.driver(args=["--connections", "2"])
        self.assertEqual(d.call({"op": "warm"})["open"], 2)
        [inst] = self.launch(d)
        self.control("DELETE", "requests")
        for _ in range(10):
            d.call({"op": "describe", "ids": [inst["id"]]})
        log = self.requests()
        self.assertEqual(len(log), 10)
        self.assertEqual(len({e["conn"] for e in log}), 1)
        self.assertTrue(all(e["conn_request"] > 1 for e in log))
        st = d.call({"op": "stats"})
        self.assertEqual(st["new_connections"], 2)   # the two warmed ones, nothing since
        self.assertEqual(st["reused"], 11)

    def test_idle_connections_are_kept_warm(self):
        d = self.driver(args=["--connections", "1", "--keepalive-ms", "400"])
        d.call({"op": "warm"})
        d.call({"op": "sleep", "ms": 1500})
        st = d.call({"op": "stats"})
        self.assertGreaterEqual(st["keepalive_pings"], 3)
        self.assertEqual(st["new_connections"], 1)
        self.control("DELETE", "requests")
        d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        [e] = self.requests("DescribeInstances")
        self.assertGreater(e["conn_request"], 3)

    def test_endpoint_from_flag_env_and_generic_env(self):
        env = self.sim_env()
        del env["AWS_ENDPOINT_URL_EC2"]
        env["AWS_ENDPOINT_URL"] = self.endpoint
        d = self.driver(env)
        self.assertEqual(d.ready["endpoint"], self.endpoint)
        self.assertTrue(d.call({"op": "describe", "ids": ["i-0123456789abcdef0"]})["code"]
                        in ("InvalidInstanceID.NotFound",))
        env = self.sim_env(AWS_ENDPOINT_URL_EC2="https://127.0.0.1:1")
        d = self.driver(env, ["--endpoint", self.endpoint])
        self.assertEqual(d.ready["endpoint"], self.endpoint)
        r = d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        self.assertTrue(r["ok"], r)
        env = self.sim_env()
        del env["AWS_ENDPOINT_URL_EC2"]
        d = self.driver(env, ["--region", "eu-west-3"])
        self.assertEqual(d.ready["endpoint"], "https://ec2.eu-west-3.amazonaws.com")
        self.assertEqual(d.ready["region_source"], "flag")

    def test_metrics_count_requests_by_operation_and_result(self):
        d = self.driver()
        self.fault(action="StartInstances", error="IncorrectInstanceState", count=1)
        d.call({"op": "start", "ids": ["i-0123456789abcdef0"]})
        d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        text = d.call({"op": "metrics"})["text"]
        self.assertIn('stratos_cloud_requests_total{operation="StartInstances",result="wrong-state"} 1', text)
        self.assertIn('stratos_cloud_requests_total{operation="DescribeInstances",result="success"} 1', text)
        self.assertIn('stratos_cloud_request_seconds_count{operation="DescribeInstances"} 1', text)

    def test_secrets_never_reach_the_logs(self):
        d = self.driver()
        self.fault(action="DescribeInstances", error="InternalError", count=2)
        d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        d.call({"op": "run", "params": {"image_id": AMI, "instance_type": "t3.micro",
                                        "user_data": "SECRET-USER-DATA"}})
        d.close()
        err = d.stderr()
        self.assertIn("EC2 attempt failed", err)
        for secret in (self.simenv["AWS_SECRET_ACCESS_KEY"], "SECRET-USER-DATA",
                       base64.b64encode(b"SECRET-USER-DATA").decode()):
            self.assertNotIn(secret, err)


class DoctorTest(SimCase):

    def doctor(self, *args, env=None):
        code, rows, out = tl.run_doctor(self, args, env or self.sim_env())
        self.assertIn(code, (0, 1), out.stderr)
        return code, rows, out

    def test_everything_permitted(self):
        code, rows, out = self.doctor()
        self.assertEqual(code, 0, out.stdout + out.stderr)
        self.assertEqual(rows["region"][0], "ok")
        self.assertIn("environment", rows["credentials"][1])
        self.assertIn("AKIA", rows["credentials"][1])
        self.assertNotIn(self.simenv["AWS_SECRET_ACCESS_KEY"], out.stdout + out.stderr)
        self.assertEqual(rows["ec2 endpoint"][0], "ok")
        self.assertIn(self.endpoint, rows["ec2 endpoint"][1])
        for action in ("RunInstances", "StartInstances", "StopInstances", "TerminateInstances",
                       "DescribeInstances", "CreateTags"):
            self.assertEqual(rows["ec2:" + action][0], "ok", rows)
        dry = [e for e in self.requests() if e["action"] and e["action"] != "DescribeInstances"]
        self.assertTrue(dry and all(e["dry_run"] for e in dry), dry)
        status, out2 = self.control("GET", "instances")
        self.assertEqual(out2["instances"], [])   # a dry run changes nothing

    def test_a_denied_action_fails_with_exit_1(self):
        self.control("POST", "deny", {"actions": ["StartInstances"]})
        code, rows, out = self.doctor()
        self.assertEqual(code, 1)
        self.assertEqual(rows["ec2:StartInstances"][0], "FAIL")
        self.assertIn("UnauthorizedOperation", rows["ec2:StartInstances"][1])
        self.assertEqual(rows["ec2:StopInstances"][0], "ok")

    def test_pools_file_and_cluster_instance_are_the_dry_run_targets(self):
        d = self.driver()
        [inst] = self.launch(d, tags={"stratos.sh/cluster": "prod"})
        code, rows, out = self.doctor("--pools-file", os.path.join(ROOT, "tests", "fixtures", "seed-examples.yaml"),
                                      "--cluster-name", "prod")
        self.assertEqual(code, 0, out.stdout)
        self.assertIn(inst["id"], rows["dry-run targets"][1])
        self.assertIn("AWSNodeClass", rows["dry-run targets"][1])
        run = [e for e in self.requests("RunInstances") if e["dry_run"]][-1]["params"]
        self.assertEqual((run["ImageId"], run["InstanceType"], run["SubnetId"]), (AMI, "m5.2xlarge", SUBNET))
        self.assertEqual(run["IamInstanceProfile.Arn"], "arn:aws:iam::123456789012:instance-profile/ci-node-role")
        start = [e for e in self.requests("StartInstances") if e["dry_run"]][-1]
        self.assertEqual(start["instance_ids"], [inst["id"]])

    def test_no_credentials_is_a_clear_failure(self):
        env = base_env({"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_EC2": self.endpoint})
        code, rows, out = self.doctor(env=env)
        self.assertEqual(code, 1)
        self.assertEqual(rows["credentials"][0], "FAIL")
        self.assertIn("no AWS credentials", rows["credentials"][1])
        env = base_env({"AWS_ACCESS_KEY_ID": "AKIA0000", "AWS_SECRET_ACCESS_KEY": "x"})
        code, rows, out = self.doctor(env=env)
        self.assertEqual((code, rows["region"][0]), (1, "FAIL"))
        self.assertIn("--aws-region", rows["region"][1])

    def test_unreachable_endpoint(self):
        code, rows, out = self.doctor("--aws-endpoint-url", "https://127.0.0.1:1")
        self.assertEqual(code, 1)
        self.assertEqual(rows["ec2 endpoint"][0], "FAIL")
        self.assertIn("https://127.0.0.1:1", rows["ec2 endpoint"][1])


class CredentialSourcesTest(SimCase):
    """Each source against the local stubs of STS, the container endpoint and IMDS."""

    extra_sims = ("awsauth",)

    def setUp(self):
        super().setUp()
        simproc.control(self.authenv["STRATOS_SIM_AWSAUTH_CONTROL"], "POST", "reset")
        self.tokfile = os.path.join(self.dir, "web-identity-token")
        with open(self.tokfile, "w") as f:
            f.write("jwt-one\n")

    def auth(self, method, path, body=None):
        return simproc.control(self.authenv["STRATOS_SIM_AWSAUTH_CONTROL"], method, path, body)

    def env_for(self, source, **extra):
        env = {"AWS_ENDPOINT_URL_EC2": self.endpoint, "AWS_CA_BUNDLE": self.ca, "AWS_REGION": "us-east-1"}
        if source == "web-identity":
            env.update(AWS_ROLE_ARN="arn:aws:iam::123456789012:role/stratos",
                       AWS_WEB_IDENTITY_TOKEN_FILE=self.tokfile,
                       AWS_ENDPOINT_URL_STS=self.authenv["AWS_ENDPOINT_URL_STS"])
        elif source == "container":
            env.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=self.authenv["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=self.authenv["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
        env.update(extra)
        e = base_env(env)
        if source == "imds":
            del e["AWS_EC2_METADATA_DISABLED"]
            e["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.authenv["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        return e

    def check_source(self, source, count_key):
        # Keys live 5 min 2 s: inside the 5 min refresh window after 2 s.
        self.auth("PUT", "config", {"expiration_seconds": 302, "fractional_digits": 3})
        d = self.driver(self.env_for(source), ["--refresh-ahead-ms", "300000"])
        self.assertEqual(d.ready["credential_source"], source)
        first = d.call({"op": "creds"})
        self.assertTrue(first["ok"] and first["has_session_token"], first)
        self.assertTrue(first["access_key_id"].startswith("ASIA"))
        issued = self.auth("GET", "issued")[1]["credentials"][-1]
        self.assertRegex(issued["Expiration"], r"\.\d{3}Z$")
        self.assertEqual(first["expiration_ms"] % 1000, int(issued["Expiration"][-4:-1]))
        r = d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        self.assertTrue(r["ok"], r)
        self.assertEqual(self.requests()[-1]["access_key_id"], first["access_key_id"])
        if source == "web-identity":
            with open(self.tokfile, "w") as f:
                f.write("jwt-two\n")
        # The refresh happens in the background; calls never wait for it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            r = d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
            self.assertTrue(r["ok"], r)
            self.assertLess(time.monotonic() - t0, 1.0)
            if d.call({"op": "creds"})["access_key_id"] != first["access_key_id"]:
                break
            time.sleep(0.2)
        second = d.call({"op": "creds"})
        self.assertNotEqual(second["access_key_id"], first["access_key_id"])
        self.assertGreater(second["expiration_ms"], first["expiration_ms"])
        r = d.call({"op": "describe", "filters": [{"name": "tag:stratos.sh/cluster", "values": ["x"]}]})
        self.assertTrue(r["ok"], r)
        self.assertEqual(self.requests()[-1]["access_key_id"], second["access_key_id"])
        counts = self.auth("GET", "requests")[1]
        self.assertGreaterEqual(counts["counts"][count_key], 2)
        self.assertIn("AWS credentials refreshed", d.stderr())
        issued = self.auth("GET", "issued")[1]["credentials"]
        self.assertGreaterEqual(len(issued), 2)
        for c in issued:
            for k, v in c.items():
                if "secret" in k.lower() or "token" in k.lower():
                    self.assertNotIn(str(v), d.stderr())
        return counts, d

    def test_web_identity(self):
        counts, d = self.check_source("web-identity", "sts")
        # The token file is read again for every fetch.
        self.assertEqual(counts["web_identity_tokens"][:2], ["jwt-one", "jwt-two"])

    def test_container_credentials(self):
        self.check_source("container", "container")

    def test_imds(self):
        counts, d = self.check_source("imds", "imds-credentials")
        self.assertGreaterEqual(counts["counts"]["imds-token"], 1)

    def test_region_from_imds(self):
        self.auth("PUT", "config", {"region": "eu-west-3"})
        env = self.env_for("imds")
        del env["AWS_REGION"]
        d = self.driver(env)
        self.assertEqual((d.ready["region"], d.ready["region_source"]), ("eu-west-3", "imds"))

    def test_refresh_failures_are_retried_with_backoff(self):
        self.auth("PUT", "config", {"expiration_seconds": 302})
        d = self.driver(self.env_for("web-identity"), ["--refresh-ahead-ms", "300000"])
        first = d.call({"op": "creds"})
        self.auth("POST", "fail", {"endpoint": "sts", "count": 2, "status": 500, "code": "InternalFailure"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if d.call({"op": "creds"})["access_key_id"] != first["access_key_id"]:
                break
            r = d.call({"op": "describe", "ids": ["i-0123456789abcdef0"]})
            self.assertEqual(r["code"], "InvalidInstanceID.NotFound")   # still signing with the old keys
            time.sleep(0.2)
        st = d.call({"op": "stats"})
        self.assertEqual(st["credential_failures"], 2)
        self.assertGreaterEqual(st["credential_fetches"], 2)
        self.assertIn("AWS credentials refresh failed", d.stderr())
        self.assertIn("InternalFailure", d.stderr())

    def test_revoked_keys_are_replaced_at_once(self):
        d = self.driver(self.env_for("container"))
        first = d.call({"op": "creds"})["access_key_id"]
        status, _ = self.control("DELETE", "credentials/" + first)
        self.assertEqual(status, 200)
        r = d.call({"op": "describe", "ids": ["i-0123456789abcdef0"]})
        self.assertEqual((r["class"], r["code"]), ("auth", "AuthFailure"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and d.call({"op": "creds"})["access_key_id"] == first:
            time.sleep(0.05)
        self.assertNotEqual(d.call({"op": "creds"})["access_key_id"], first)
        r = d.call({"op": "describe", "ids": ["i-0123456789abcdef0"]})
        self.assertEqual(r["code"], "InvalidInstanceID.NotFound")   # signed with the new keys

    def test_expired_credentials_fail_without_network(self):
        # Keys valid 3 s, and STS failing from then on: the keys expire.
        self.auth("PUT", "config", {"expiration_seconds": 3})
        d = self.driver(self.env_for("web-identity"))
        self.auth("POST", "fail", {"endpoint": "sts", "count": 100, "status": 503, "code": "ServiceUnavailable"})
        time.sleep(3.5)
        self.control("DELETE", "requests")
        t0 = time.monotonic()
        r = d.call({"op": "start", "ids": ["i-0123456789abcdef0"], "budget_ms": 2000})
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual((r["class"], r["code"], r["attempts"]), ("auth", "CredentialsExpired", 1))
        self.assertEqual(self.requests(), [])

    def test_sts_refusal_and_missing_sources_are_clear(self):
        self.auth("PUT", "config", {"accept_tokens": ["something-else"]})
        d = Driver(self.env_for("web-identity"))
        self.drivers.append(d)
        self.assertFalse(d.ready["ok"])
        self.assertEqual(d.ready["stage"], "credentials")
        self.assertIn("InvalidIdentityToken", d.ready["message"])
        self.assertNotIn("jwt-one", d.ready["message"])
        d = Driver(base_env({"AWS_REGION": "us-east-1"}))
        self.drivers.append(d)
        self.assertFalse(d.ready["ok"])
        self.assertIn("no AWS credentials", d.ready["message"])
        self.assertIn("AWS_WEB_IDENTITY_TOKEN_FILE", d.ready["message"])
        # Container endpoint with a wrong token: the stub's 403 is named.
        bad = os.path.join(self.dir, "bad-token")
        with open(bad, "w") as f:
            f.write("wrong")
        d = Driver(self.env_for("container", AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=bad))
        self.drivers.append(d)
        self.assertFalse(d.ready["ok"])
        self.assertIn("HTTP 403", d.ready["message"])


if __name__ == "__main__":
    unittest.main()
