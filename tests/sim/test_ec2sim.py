"""Tests of the emulated EC2 (tests/sim/ec2sim.py) with boto3, the AWS CLI and raw requests.

Run from the repository root:  python3 -m unittest tests/sim/test_ec2sim.py
"""

import base64
import http.client
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
import unittest.mock
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ec2sim  # noqa: E402
import simproc  # noqa: E402

import boto3  # noqa: E402
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.config  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.exceptions  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "sigv4", "vectors.json")
AMI = "ami-0123456789abcdef0"
SUBNET = "subnet-12345678"
SG = "sg-12345678"
PENDING = 0.6
STOPPING = 0.6
SHUTTING = 0.4


def local(tag):
    return tag.rsplit("}", 1)[-1]


def find(root, name):
    return [e for e in root.iter() if local(e.tag) == name]


class SigV4VectorTest(unittest.TestCase):
    """The verifier against the fixture vectors (two from the AWS suite, one EC2 call)."""

    def setUp(self):
        with open(FIXTURES) as f:
            self.vectors = json.load(f)
        self.assertGreaterEqual(len(self.vectors), 3)

    def _headers(self, v):
        h = [("Host", v["host"]), ("X-Amz-Date", v["x_amz_date"])]
        h += list(v["headers"].items())
        if v["session_token"]:
            h.append(("X-Amz-Security-Token", v["session_token"]))
        return h

    def test_intermediate_strings_match(self):
        for v in self.vectors:
            with self.subTest(v["name"]):
                _, fields = ec2sim.sigv4_parse_authorization(v["authorization"])
                signed = fields["SignedHeaders"].split(";")
                canonical, missing = ec2sim.sigv4_canonical_request(
                    v["method"], v["path"], "", self._headers(v), signed, v["body"].encode())
                self.assertIsNone(missing)
                self.assertEqual(canonical, v["canonical_request"])
                scope = fields["Credential"].split("/", 1)[1]
                sts = ec2sim.sigv4_string_to_sign(v["x_amz_date"], scope, canonical)
                self.assertEqual(sts, v["string_to_sign"])
                sig = ec2sim.sigv4_signature(v["secret_access_key"], v["x_amz_date"][:8], v["region"],
                                             v["service"], sts)
                self.assertEqual(sig, fields["Signature"])

    def _verifier(self, v):
        signed_at = time.mktime(time.strptime(v["x_amz_date"], "%Y%m%dT%H%M%SZ")) - time.timezone
        ver = ec2sim.SigV4Verifier(v["region"], v["service"], clock=lambda: signed_at + 60)
        cred = ec2sim.Credential(v["access_key_id"], v["secret_access_key"], v["session_token"])
        ver.add_static(cred)
        return ver

    def test_verifier_accepts_vectors(self):
        for v in self.vectors:
            with self.subTest(v["name"]):
                ver = self._verifier(v)
                headers = self._headers(v) + [("Authorization", v["authorization"])]
                self.assertEqual(ver.verify(v["method"], v["path"], "", headers, v["body"].encode()),
                                 v["access_key_id"])

    def test_verifier_rejects_tampering(self):
        v = next(x for x in self.vectors if x["service"] == "ec2")
        base = self._headers(v) + [("Authorization", v["authorization"])]
        cases = {
            "body": (base, v["body"].replace("i-0123456789abcdef0", "i-0123456789abcdef1")),
            "content-type": ([(k, "text/plain" if k == "Content-Type" else x) for k, x in base], v["body"]),
            "token": ([(k, x + "x" if k == "X-Amz-Security-Token" else x) for k, x in base], v["body"]),
            "host": ([(k, "ec2.us-east-1.amazonaws.com" if k == "Host" else x) for k, x in base], v["body"]),
        }
        expect = {"body": "SignatureDoesNotMatch", "content-type": "SignatureDoesNotMatch",
                  "token": "AuthFailure", "host": "SignatureDoesNotMatch"}
        for name, (headers, body) in cases.items():
            with self.subTest(name):
                with self.assertRaises(ec2sim.SigV4Error) as cm:
                    self._verifier(v).verify(v["method"], v["path"], "", headers, body.encode())
                self.assertEqual(cm.exception.code, expect[name])

    def test_verifier_malformed_authorization(self):
        v = next(x for x in self.vectors if x["service"] == "ec2")
        auth = v["authorization"]
        cases = {
            "other algorithm": (auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), "IncompleteSignature"),
            "no signature": (auth.split(", Signature=")[0], "IncompleteSignature"),
            "short scope": (auth.replace("/us-west-2/ec2/", "/us-west-2/"), "IncompleteSignature"),
            "host unsigned": (auth.replace("content-type;host;", "content-type;"), "IncompleteSignature"),
            "wrong service": (auth.replace("/ec2/", "/sts/"), "SignatureDoesNotMatch"),
            "wrong terminator": (auth.replace("aws4_request", "aws4_requests"), "SignatureDoesNotMatch"),
            "scope date": (auth.replace("/20261128/", "/20261127/"), "SignatureDoesNotMatch"),
        }
        for name, (value, code) in cases.items():
            with self.subTest(name):
                headers = self._headers(v) + [("Authorization", value)]
                with self.assertRaises(ec2sim.SigV4Error) as cm:
                    self._verifier(v).verify(v["method"], v["path"], "", headers, v["body"].encode())
                self.assertEqual(cm.exception.code, code)

    def test_canonical_query_and_path(self):
        self.assertEqual(ec2sim.sigv4_canonical_query("b=2&a=x y&a=1&c"), "a=1&a=x%20y&b=2&c=")
        self.assertEqual(ec2sim.sigv4_canonical_query("k=%2F%7E"), "k=%2F~")
        self.assertEqual(ec2sim.sigv4_canonical_uri("/a/./b/../c//d"), "/a/c/d")
        self.assertEqual(ec2sim.sigv4_canonical_uri("/a%20b"), "/a%2520b")
        self.assertEqual(ec2sim.sigv4_canonical_uri(""), "/")

    def test_verifier_clock_skew(self):
        v = next(x for x in self.vectors if x["service"] == "ec2")
        ver = self._verifier(v)
        signed_at = ver.clock() - 60
        ver.clock = lambda: signed_at + 16 * 60
        headers = self._headers(v) + [("Authorization", v["authorization"])]
        with self.assertRaises(ec2sim.SigV4Error) as cm:
            ver.verify(v["method"], v["path"], "", headers, v["body"].encode())
        self.assertEqual((cm.exception.code, cm.exception.status), ("RequestExpired", 400))


class EC2SimTest(unittest.TestCase):
    """One emulator for the class; every test starts from a reset."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ec2sim-test-")
        cls.proc, cls.port = simproc.start("ec2sim", cls.dir, [
            "--pending-seconds", str(PENDING), "--stopping-seconds", str(STOPPING),
            "--shutting-down-seconds", str(SHUTTING), "--seed", "7"])
        cls.env = simproc.read_env(os.path.join(cls.dir, "ec2sim.env"))
        cls.url = cls.env["AWS_ENDPOINT_URL_EC2"]
        cls.ca = cls.env["AWS_CA_BUNDLE"]
        cls.ctl = cls.env["STRATOS_SIM_EC2_CONTROL"]
        cls.session = boto3.session.Session(
            aws_access_key_id=cls.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=cls.env["AWS_SECRET_ACCESS_KEY"], region_name=cls.env["AWS_REGION"])
        cls.ec2 = cls.client(retries=1)

    @classmethod
    def tearDownClass(cls):
        moto_pid = cls.moto_pid()
        rc = simproc.stop(cls.proc)
        try:
            assert rc == 0, "ec2sim exited with %s on SIGTERM" % rc
            if moto_pid:
                assert not pid_alive(moto_pid), "moto child %d outlived ec2sim" % moto_pid
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def moto_pid(cls):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == cls.proc.pid:
                return int(pid)
        return None

    @classmethod
    def client(cls, retries=1, session=None, **kw):
        opts = {"connect_timeout": 5, "read_timeout": 30}
        opts.update(kw)
        cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": retries}, **opts)
        return (session or cls.session).client("ec2", endpoint_url=cls.url, verify=cls.ca, config=cfg)

    def setUp(self):
        self.sim("POST", "reset")
        self.sim("PUT", "timings", {"pending_seconds": PENDING, "stopping_seconds": STOPPING,
                                    "shutting_down_seconds": SHUTTING})

    # -- helpers -------------------------------------------------------------

    def sim(self, method, path, body=None, expect=200):
        status, doc = simproc.control(self.ctl, method, path, body, ca=self.ca)
        if expect is not None:
            self.assertEqual(status, expect, doc)
        return doc

    def requests_log(self, action=None):
        q = "requests" + ("?action=" + action if action else "")
        return self.sim("GET", q)["requests"]

    def run_one(self, client=None, **kw):
        args = dict(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=SUBNET,
                    SecurityGroupIds=[SG])
        args.update(kw)
        r = (client or self.ec2).run_instances(**args)
        return r["Instances"][0]["InstanceId"]

    def state(self, iid):
        r = self.ec2.describe_instances(InstanceIds=[iid])
        return r["Reservations"][0]["Instances"][0]["State"]["Name"]

    def wait_state(self, iid, want, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.state(iid) == want:
                return
            time.sleep(0.05)
        self.fail("%s never reached %s (is %s)" % (iid, want, self.state(iid)))

    def running(self, **kw):
        iid = self.run_one(**kw)
        self.sim("POST", "instances/%s/state" % iid, {"state": "running"})
        return iid

    def assert_error(self, fn, code, status=None, **kw):
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            fn(**kw)
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], code, err)
        if status is not None:
            self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], status)
        return err

    def raw(self, params, creds=None, tamper=None, headers=None, conn=None, date=None, keep=False,
            path="/"):
        """POST a Query request signed by botocore (an independent signer); returns (status, body, conn)."""
        body = urllib.parse.urlencode(params)
        req = botocore.awsrequest.AWSRequest(
            method="POST", url=self.url + path, data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        c = creds or botocore.credentials.Credentials(self.env["AWS_ACCESS_KEY_ID"],
                                                      self.env["AWS_SECRET_ACCESS_KEY"])
        signer = botocore.auth.SigV4Auth(c, "ec2", self.env["AWS_REGION"])
        if date is not None:
            with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=date):
                signer.add_auth(req)
        else:
            signer.add_auth(req)
        data = req.body if isinstance(req.body, bytes) else req.body.encode()
        if tamper:
            data = tamper(data)
        hdrs = dict(req.headers.items())
        hdrs.update(headers or {})
        if conn is None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                               context=ssl.create_default_context(cafile=self.ca))
        try:
            conn.request("POST", path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.read(), conn
        finally:
            if not keep:
                conn.close()

    # -- signature ---------------------------------------------------------------

    def test_signed_requests_accepted_and_logged(self):
        self.ec2.describe_instances()
        entry = self.requests_log("DescribeInstances")[-1]
        self.assertEqual(entry["signature"], "verified")
        self.assertEqual(entry["access_key_id"], self.env["AWS_ACCESS_KEY_ID"])
        self.assertEqual(entry["status"], 200)

    def test_tampered_body_rejected(self):
        status, body, _ = self.raw({"Action": "DescribeInstances", "Version": "2016-11-15"},
                                   tamper=lambda d: d + b"&MaxResults=5")
        self.assertEqual(status, 403)
        root = ET.fromstring(body)
        self.assertEqual(root.tag, "Response")          # no namespace, like EC2
        self.assertEqual(root.find("Errors/Error/Code").text, "SignatureDoesNotMatch")
        self.assertIn("signature we calculated does not match", root.find("Errors/Error/Message").text)
        self.assertTrue(root.find("RequestID").text)
        entry = self.requests_log()[-1]
        self.assertEqual(entry["signature"], "bad-signature")
        self.assertFalse(entry["forwarded"])
        self.assertIn("canonical_request", entry["signature_detail"])

    def test_auth_failures(self):
        p = {"Action": "DescribeInstances", "Version": "2016-11-15"}
        status, body, _ = self.raw(p, creds=botocore.credentials.Credentials("AKIAUNKNOWN000000000", "x" * 40))
        self.assertEqual(status, 401)
        self.assertIn(b"<Code>AuthFailure</Code>", body)
        status, body, _ = self.raw(p, creds=botocore.credentials.Credentials(self.env["AWS_ACCESS_KEY_ID"],
                                                                              "wrong" * 8))
        self.assertEqual(status, 403)
        self.assertIn(b"SignatureDoesNotMatch", body)
        import datetime as dt
        old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=20)
        status, body, _ = self.raw(p, date=old)
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>RequestExpired</Code>", body)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ssl.create_default_context(cafile=self.ca))
        conn.request("POST", "/", body=urllib.parse.urlencode(p),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 401)
        self.assertIn(b"MissingAuthenticationToken", resp.read())
        conn.close()
        wrong_region = self.session.client("ec2", endpoint_url=self.url, verify=self.ca, region_name="us-west-2",
                                           config=botocore.config.Config(retries={"total_max_attempts": 1}))
        err = self.assert_error(wrong_region.describe_instances, "SignatureDoesNotMatch", 403)
        self.assertIn("region", err["Error"]["Message"])
        self.assertEqual([e["signature"] for e in self.requests_log()],
                         ["unknown-key", "bad-signature", "expired", "missing", "bad-scope"])

    def test_temporary_credentials(self):
        exp = time.time() + 3600
        self.sim("POST", "credentials", {"access_key_id": "ASIATEMP000000000001", "secret_access_key": "s" * 40,
                                         "session_token": "tok/+=", "expiration": exp})
        good = boto3.session.Session("ASIATEMP000000000001", "s" * 40, "tok/+=", region_name="us-east-1")
        self.client(session=good).describe_instances()
        self.assertEqual(self.requests_log()[-1]["access_key_id"], "ASIATEMP000000000001")
        no_token = boto3.session.Session("ASIATEMP000000000001", "s" * 40, region_name="us-east-1")
        self.assert_error(self.client(session=no_token).describe_instances, "AuthFailure", 401)
        bad_token = boto3.session.Session("ASIATEMP000000000001", "s" * 40, "other", region_name="us-east-1")
        self.assert_error(self.client(session=bad_token).describe_instances, "AuthFailure", 401)
        self.sim("POST", "credentials", {"access_key_id": "ASIATEMP000000000002", "secret_access_key": "t" * 40,
                                         "session_token": "tok2", "expiration": "2001-01-01T00:00:00.5Z"})
        expired = boto3.session.Session("ASIATEMP000000000002", "t" * 40, "tok2", region_name="us-east-1")
        self.assert_error(self.client(session=expired).describe_instances, "RequestExpired", 400)
        keys = {c["access_key_id"]: c for c in self.sim("GET", "credentials")["credentials"]}
        self.assertTrue(keys["ASIATEMP000000000001"]["temporary"])
        self.assertFalse(keys[self.env["AWS_ACCESS_KEY_ID"]]["temporary"])

    def test_sts_get_caller_identity(self):
        cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})

        def sts(session):
            return session.client("sts", endpoint_url=self.env["AWS_ENDPOINT_URL_STS"],
                                  verify=self.ca, config=cfg)
        me = sts(self.session).get_caller_identity()
        self.assertEqual(me["Arn"], "arn:aws:iam::123456789012:user/stratos-sim")
        self.assertEqual(me["Account"], "123456789012")
        self.assertEqual(me["UserId"], self.env["AWS_ACCESS_KEY_ID"])
        self.sim("POST", "credentials", {"access_key_id": "ASIATEMP000000000003", "secret_access_key": "u" * 40,
                                         "session_token": "tok3", "expiration": time.time() + 3600})
        temp = boto3.session.Session("ASIATEMP000000000003", "u" * 40, "tok3", region_name="us-east-1")
        self.assertIn(":assumed-role/", sts(temp).get_caller_identity()["Arn"])
        wrong = boto3.session.Session(self.env["AWS_ACCESS_KEY_ID"], "x" * 40, region_name="us-east-1")
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            sts(wrong).get_caller_identity()
        self.assertEqual(cm.exception.response["Error"]["Code"], "SignatureDoesNotMatch")
        # A key signed for EC2 is not good for STS: the scope names the service.
        status, body, _ = self.raw({"Action": "GetCallerIdentity", "Version": "2011-06-15"}, path="/sts")
        self.assertEqual(status, 403, body)
        self.assertIn(b"scoped to correct service: 'sts'", body)

    # -- parameters and XML ------------------------------------------------------

    def test_run_instances_keeps_every_parameter(self):
        user_data = "#!/bin/bash\nset -e\n/etc/eks/bootstrap.sh my-cluster\npoweroff\n"
        iid = self.run_one(
            InstanceType="g5.2xlarge",
            IamInstanceProfile={"Arn": "arn:aws:iam::123456789012:instance-profile/inference-node-role"},
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {
                "VolumeSize": 500, "VolumeType": "gp3", "Iops": 16000, "Throughput": 1000, "Encrypted": True,
                "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "DeleteOnTermination": True}}],
            UserData=user_data,
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "stratos.sh/pool", "Value": "inference"}, {"Key": "Name", "Value": "stratos-inference"}]}],
            ClientToken="pool-inference-0001")
        inst = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        self.assertEqual(inst["InstanceType"], "g5.2xlarge")
        self.assertEqual(inst["ImageId"], AMI)
        self.assertEqual(inst["SubnetId"], SUBNET)
        self.assertEqual([g["GroupId"] for g in inst["SecurityGroups"]], [SG])
        self.assertEqual(inst["IamInstanceProfile"]["Arn"],
                         "arn:aws:iam::123456789012:instance-profile/inference-node-role")
        self.assertTrue(inst["IamInstanceProfile"]["Id"].startswith("AIPA"))
        self.assertEqual(inst["MetadataOptions"]["HttpTokens"], "required")
        self.assertEqual(inst["MetadataOptions"]["HttpPutResponseHopLimit"], 2)
        self.assertEqual({t["Key"]: t["Value"] for t in inst["Tags"]},
                         {"stratos.sh/pool": "inference", "Name": "stratos-inference"})
        self.assertEqual(inst["ClientToken"], "pool-inference-0001")
        self.assertTrue(inst["PrivateDnsName"].endswith(".ec2.internal"))
        self.assertEqual(inst["Placement"]["AvailabilityZone"], "us-east-1a")
        ud = self.ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"]
        self.assertEqual(base64.b64decode(ud).decode(), user_data)
        bdm = inst["BlockDeviceMappings"]
        self.assertEqual(bdm[0]["DeviceName"], "/dev/xvda")
        self.assertTrue(bdm[0]["Ebs"]["DeleteOnTermination"])
        vol = self.ec2.describe_volumes(VolumeIds=[bdm[0]["Ebs"]["VolumeId"]])["Volumes"][0]
        self.assertEqual((vol["Size"], vol["VolumeType"], vol["Iops"], vol["Throughput"], vol["Encrypted"]),
                         (500, "gp3", 16000, 1000, True))
        self.assertEqual(vol["KmsKeyId"],
                         "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        kept = self.sim("GET", "instances/" + iid)
        self.assertEqual(kept["launch_params"]["BlockDeviceMapping.1.Ebs.Throughput"], "1000")
        self.assertEqual(kept["private_dns_name"], inst["PrivateDnsName"])

    def test_xml_shape(self):
        iid = self.run_one()
        status, body, _ = self.raw({"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId.1": iid})
        self.assertEqual(status, 200)
        root = ET.fromstring(body)
        self.assertEqual(root.tag, "{http://ec2.amazonaws.com/doc/2016-11-15/}DescribeInstancesResponse")
        self.assertEqual(len(find(root, "requestId")[0].text), 36)
        item = find(root, "instancesSet")[0][0]
        self.assertEqual([e.text for e in find(item, "instanceState")[0]], ["0", "pending"])
        self.assertFalse(find(item, "kernelId"))
        status, body, _ = self.raw({"Action": "StopInstances", "Version": "2016-11-15",
                                    "InstanceId.1": "i-0000000000000000f"})
        self.assertEqual(status, 400)
        root = ET.fromstring(body)
        self.assertEqual(root.tag, "Response")
        self.assertEqual(root.find("Errors/Error/Code").text, "InvalidInstanceID.NotFound")
        self.assertEqual(root.find("RequestID").text, self.requests_log()[-1]["request_id"])
        status, body, _ = self.raw({"Action": "DescribeWidgets", "Version": "2016-11-15"})
        self.assertEqual(status, 400)
        self.assertEqual(ET.fromstring(body).find("Errors/Error/Code").text, "InvalidAction")

    def test_stand_in_network_and_unknown_ids(self):
        self.sim("POST", "network", {"subnets": [{"id": "subnet-0abc0abc0abc0abc0",
                                                  "availability_zone": "us-east-1c"}]})
        iid = self.run_one(SubnetId="subnet-0abc0abc0abc0abc0")
        inst = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        self.assertEqual(inst["Placement"]["AvailabilityZone"], "us-east-1c")
        self.assertEqual(inst["SubnetId"], "subnet-0abc0abc0abc0abc0")
        subnets = self.ec2.describe_subnets(SubnetIds=[SUBNET, "subnet-0abc0abc0abc0abc0"])["Subnets"]
        self.assertEqual(sorted(s["SubnetId"] for s in subnets), sorted([SUBNET, "subnet-0abc0abc0abc0abc0"]))
        self.assertEqual(self.ec2.describe_images(ImageIds=[AMI])["Images"][0]["ImageId"], AMI)
        self.assert_error(self.run_one, "InvalidSubnetID.NotFound", 400, SubnetId="subnet-87654321")
        self.assert_error(self.run_one, "InvalidAMIID.NotFound", 400, ImageId="ami-0fedcba9876543210")
        self.assert_error(self.run_one, "InvalidGroup.NotFound", 400, SecurityGroupIds=["sg-87654321"])

    # -- state machine -------------------------------------------------------------

    def test_timed_transitions(self):
        t0 = time.time()
        iid = self.run_one()
        self.assertEqual(self.state(iid), "pending")
        self.wait_state(iid, "running")
        self.assertGreaterEqual(time.time() - t0, PENDING * 0.9)
        r = self.ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]
        self.assertEqual((r["PreviousState"], r["CurrentState"]),
                         ({"Code": 16, "Name": "running"}, {"Code": 64, "Name": "stopping"}))
        self.wait_state(iid, "stopped")
        inst = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        self.assertEqual(inst["StateReason"]["Code"], "Client.UserInitiatedShutdown")
        self.assertTrue(inst["StateTransitionReason"].startswith("User initiated ("))
        r = self.ec2.start_instances(InstanceIds=[iid])["StartingInstances"][0]
        self.assertEqual((r["PreviousState"]["Name"], r["CurrentState"]["Name"]), ("stopped", "pending"))
        self.wait_state(iid, "running")
        r = self.ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
        self.assertEqual((r["PreviousState"]["Code"], r["CurrentState"]["Code"]), (16, 32))
        self.wait_state(iid, "terminated")
        hist = [(h["from"], h["to"]) for h in self.sim("GET", "instances/" + iid)["history"]]
        self.assertEqual(hist, [(None, "pending"), ("pending", "pending"), ("pending", "running"),
                                ("running", "stopping"), ("stopping", "stopped"), ("stopped", "pending"),
                                ("pending", "running"), ("running", "shutting-down"),
                                ("shutting-down", "terminated")])
        # moto agrees in the end (its state is reached at once, ours after the timers).
        status, body, _ = self.raw({"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId.1": iid})
        self.assertIn(b"<name>terminated</name>", body)

    def test_incorrect_instance_state(self):
        iid = self.run_one()        # pending
        err = self.assert_error(self.ec2.stop_instances, "IncorrectInstanceState", 400, InstanceIds=[iid])
        self.assertEqual(err["Error"]["Message"],
                         "The instance '%s' is not in a state from which it can be stopped." % iid)
        r = self.ec2.start_instances(InstanceIds=[iid])["StartingInstances"][0]     # pending: no-op
        self.assertEqual((r["PreviousState"]["Name"], r["CurrentState"]["Name"]), ("pending", "pending"))
        self.wait_state(iid, "running")
        r = self.ec2.start_instances(InstanceIds=[iid])["StartingInstances"][0]     # running: no-op
        self.assertEqual((r["PreviousState"]["Name"], r["CurrentState"]["Name"]), ("running", "running"))
        self.ec2.stop_instances(InstanceIds=[iid])
        err = self.assert_error(self.ec2.start_instances, "IncorrectInstanceState", 400, InstanceIds=[iid])
        self.assertEqual(err["Error"]["Message"],
                         "The instance '%s' is not in a state from which it can be started." % iid)
        r = self.ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]     # stopping: no-op
        self.assertEqual(r["CurrentState"]["Name"], "stopping")
        self.wait_state(iid, "stopped")
        r = self.ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]     # stopped: no-op
        self.assertEqual((r["PreviousState"]["Name"], r["CurrentState"]["Name"]), ("stopped", "stopped"))
        self.assert_error(self.ec2.reboot_instances, "IncorrectInstanceState", 400, InstanceIds=[iid])
        self.ec2.terminate_instances(InstanceIds=[iid])
        self.assert_error(self.ec2.start_instances, "IncorrectInstanceState", 400, InstanceIds=[iid])
        self.wait_state(iid, "terminated")
        self.assert_error(self.ec2.start_instances, "IncorrectInstanceState", 400, InstanceIds=[iid])
        self.assert_error(self.ec2.stop_instances, "IncorrectInstanceState", 400, InstanceIds=[iid])
        self.assert_error(self.ec2.modify_instance_attribute, "IncorrectInstanceState", 400,
                          InstanceId=iid, InstanceType={"Value": "m5.xlarge"})
        r = self.ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
        self.assertEqual((r["PreviousState"]["Name"], r["CurrentState"]["Name"]), ("terminated", "terminated"))
        self.assert_error(self.ec2.start_instances, "InvalidInstanceID.NotFound", 400,
                          InstanceIds=["i-0123456789abcdef0"])
        # A failed multi-instance call changes nothing.
        other = self.running()
        self.assert_error(self.ec2.stop_instances, "IncorrectInstanceState", 400, InstanceIds=[other, iid])
        self.assertEqual(self.state(other), "running")

    def test_state_filter_honours_overlay(self):
        a = self.run_one()
        b = self.running()
        def ids(**kw):
            r = self.ec2.describe_instances(**kw)
            return sorted(i["InstanceId"] for res in r["Reservations"] for i in res["Instances"])
        self.assertEqual(ids(Filters=[{"Name": "instance-state-name", "Values": ["pending"]}]), [a])
        self.assertEqual(ids(Filters=[{"Name": "instance-state-name", "Values": ["running"]}]), [b])
        self.assertEqual(ids(Filters=[{"Name": "instance-state-code", "Values": ["0", "16"]}]), sorted([a, b]))
        self.assertEqual(ids(Filters=[{"Name": "instance-state-name", "Values": ["pending"]},
                                      {"Name": "instance-id", "Values": [b]}]), [])

    def test_terminated_visible_for_configured_time(self):
        self.sim("PUT", "timings", {"terminated_visible_seconds": 1.0, "shutting_down_seconds": 0.1})
        iid = self.run_one()
        keep = self.run_one()
        self.ec2.terminate_instances(InstanceIds=[iid])
        self.wait_state(iid, "terminated")
        time.sleep(1.2)
        self.assert_error(self.ec2.describe_instances, "InvalidInstanceID.NotFound", 400, InstanceIds=[iid])
        all_ids = [i["InstanceId"] for r in self.ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        self.assertEqual(all_ids, [keep])
        self.assert_error(self.ec2.terminate_instances, "InvalidInstanceID.NotFound", 400, InstanceIds=[iid])

    def test_poweroff(self):
        iid = self.running()
        before = len(self.requests_log())
        doc = self.sim("POST", "instances/%s/poweroff" % iid)
        self.assertEqual(doc["state"], "stopping")
        self.assertEqual(self.state(iid), "stopping")
        self.wait_state(iid, "stopped")
        inst = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        self.assertEqual(inst["StateReason"]["Code"], "Client.InstanceInitiatedShutdown")
        self.assertNotIn("StopInstances", [e["action"] for e in self.requests_log()[before:]])
        self.sim("POST", "instances/%s/poweroff" % iid, expect=409)
        term = self.running(InstanceInitiatedShutdownBehavior="terminate")
        self.sim("POST", "instances/%s/poweroff" % term)
        self.assertEqual(self.state(term), "shutting-down")
        self.wait_state(term, "terminated")

    def test_lose_capacity(self):
        iid = self.running()
        self.ec2.stop_instances(InstanceIds=[iid])
        self.wait_state(iid, "stopped")
        self.sim("PUT", "timings", {"pending_seconds": 30})
        self.ec2.start_instances(InstanceIds=[iid])
        doc = self.sim("POST", "instances/%s/lose-capacity" % iid)
        self.assertEqual(doc["state"], "stopped")
        inst = self.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        self.assertEqual(inst["State"]["Name"], "stopped")
        self.assertEqual(inst["StateReason"]["Code"], "Server.InsufficientInstanceCapacity")
        self.sim("POST", "instances/%s/lose-capacity" % iid, expect=409)
        fresh = self.run_one()
        self.assertEqual(self.sim("POST", "instances/%s/lose-capacity" % fresh)["state"], "terminated")
        fresh = self.run_one()
        self.assertEqual(self.sim("POST", "instances/%s/lose-capacity" % fresh, {"to": "stopped"})["state"],
                         "stopped")
        # The same through a fault rule: the start is accepted, the instance never runs.
        self.sim("PUT", "timings", {"pending_seconds": 0.3})
        self.sim("POST", "faults", {"action": "StartInstances", "count": 1, "lose_capacity": True})
        r = self.ec2.start_instances(InstanceIds=[iid])["StartingInstances"][0]
        self.assertEqual(r["CurrentState"]["Name"], "pending")
        self.wait_state(iid, "stopped")
        self.ec2.start_instances(InstanceIds=[iid])
        self.wait_state(iid, "running")

    def test_transitions_feed(self):
        last = self.sim("GET", "transitions")["last_seq"]
        iid = self.run_one()
        doc = self.sim("GET", "transitions?since=%d&wait=5" % last)
        self.assertEqual(doc["transitions"][0]["instance_id"], iid)
        last = doc["last_seq"]
        t0 = time.time()
        doc = self.sim("GET", "transitions?since=%d&wait=5" % last)
        self.assertEqual([(t["from"], t["to"]) for t in doc["transitions"]], [("pending", "running")])
        self.assertLess(time.time() - t0, PENDING + 1.0)

    # -- ClientToken ------------------------------------------------------------------

    def test_client_token_idempotency(self):
        a = self.run_one(ClientToken="tok-a")
        b = self.run_one(ClientToken="tok-a")
        self.assertEqual(a, b)
        self.assertEqual(len(self.sim("GET", "requests?action=RunInstances&forwarded=1")["requests"]), 1)
        self.assertTrue(self.requests_log("RunInstances")[-1]["idempotent_replay"])
        self.assert_error(self.run_one, "IdempotentParameterMismatch", 400, ClientToken="tok-a",
                          InstanceType="m5.xlarge")
        c = self.run_one(ClientToken="tok-c")
        self.assertNotEqual(a, c)
        self.assert_error(self.run_one, "InvalidParameterValue", 400, ClientToken="x" * 65)
        # The replay shows the instance's current state.
        self.sim("POST", "instances/%s/state" % a, {"state": "stopped"})
        r = self.ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="m5.large",
                                   SubnetId=SUBNET, SecurityGroupIds=[SG], ClientToken="tok-a")
        self.assertEqual(r["Instances"][0]["State"]["Name"], "stopped")

    def test_drop_after_forward_then_retry_same_token(self):
        self.sim("POST", "faults", {"action": "RunInstances", "count": 1, "drop": "after"})
        retrying = self.client(retries=3)
        iid = self.run_one(client=retrying, ClientToken="launch-7f3a")
        log = self.requests_log("RunInstances")
        self.assertEqual([e["outcome"] for e in log], ["dropped-after", "response"])
        self.assertEqual([e["forwarded"] for e in log], [True, False])
        self.assertEqual(log[0]["client_token"], log[1]["client_token"])
        self.assertEqual(log[1]["instance_ids"], [iid])
        all_ids = [i["InstanceId"] for r in self.ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        self.assertEqual(all_ids, [iid])

    def test_drop_before_and_after_raw(self):
        for when, created in (("before", 0), ("after", 1)):
            self.sim("POST", "reset")
            self.sim("POST", "faults", {"action": "RunInstances", "count": 1, "drop": when})
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
                self.raw({"Action": "RunInstances", "Version": "2016-11-15", "ImageId": AMI,
                          "MinCount": "1", "MaxCount": "1"})
            self.assertEqual(len(self.sim("GET", "instances")["instances"]), created)

    def test_reset_connection_fault(self):
        self.sim("POST", "faults", {"action": "DescribeInstances", "count": 1, "drop": "before", "reset": True})
        with self.assertRaises(ConnectionResetError):
            self.raw({"Action": "DescribeInstances", "Version": "2016-11-15"})
        status, _, _ = self.raw({"Action": "DescribeInstances", "Version": "2016-11-15"})
        self.assertEqual(status, 200)

    # -- faults ----------------------------------------------------------------------------

    def test_error_faults(self):
        iid = self.running()
        cases = [
            ({"code": "RequestLimitExceeded"}, "RequestLimitExceeded", 503, "Request limit exceeded."),
            ({"code": "InsufficientInstanceCapacity"}, "InsufficientInstanceCapacity", 500, "m5.large"),
            ({"code": "InternalError"}, "InternalError", 500, "internal error"),
            ({"code": "Unavailable"}, "Unavailable", 503, "overloaded"),
            ({"code": "UnauthorizedOperation"}, "UnauthorizedOperation", 403, "Encoded authorization failure"),
            ({"code": "VcpuLimitExceeded"}, "VcpuLimitExceeded", 400, "vCPU"),
            ({"code": "Custom.Thing", "status": 409, "message": "custom words"}, "Custom.Thing", 409, "custom words"),
        ]
        for spec, code, status, words in cases:
            with self.subTest(code):
                self.sim("POST", "faults", {"action": "StopInstances", "count": 1, "error": spec})
                err = self.assert_error(self.ec2.stop_instances, code, status, InstanceIds=[iid])
                self.assertIn(words, err["Error"]["Message"])
                self.assertEqual(self.state(iid), "running")
        self.assertFalse(any(e["forwarded"] for e in self.requests_log("StopInstances")))
        self.ec2.stop_instances(InstanceIds=[iid])           # every rule used up
        rules = self.sim("GET", "faults")["faults"]
        self.assertTrue(all(r["remaining"] == 0 for r in rules))

    def test_raw_fault(self):
        self.sim("POST", "faults", {"action": "*", "count": 1,
                                    "raw": {"status": 502, "body": "<html>Bad Gateway</html>"}})
        status, body, _ = self.raw({"Action": "DescribeInstances", "Version": "2016-11-15"})
        self.assertEqual((status, body), (502, b"<html>Bad Gateway</html>"))

    def test_delays(self):
        self.sim("POST", "faults", {"action": "DescribeInstances", "count": 1, "delay_ms": 400})
        t0 = time.time()
        self.ec2.describe_instances()
        self.assertGreaterEqual(time.time() - t0, 0.4)
        self.sim("POST", "faults", {"action": "RunInstances", "count": 1, "response_delay_ms": 500})
        got = {}
        def launch():
            got["id"] = self.run_one()
        th = threading.Thread(target=launch)
        t0 = time.time()
        th.start()
        # The action happened before the (late) answer: moto already has the instance.
        deadline = time.time() + 0.45
        seen = False
        while time.time() < deadline and not seen:
            seen = bool(self.sim("GET", "instances")["instances"])
            time.sleep(0.02)
        th.join()
        self.assertTrue(seen)
        self.assertGreaterEqual(time.time() - t0, 0.5)
        slow = self.client(read_timeout=0.3)
        self.sim("POST", "faults", {"action": "DescribeInstances", "count": 1, "delay_ms": 1000})
        with self.assertRaises(botocore.exceptions.ReadTimeoutError):
            slow.describe_instances()

    def test_fault_matching(self):
        a = self.running()
        b = self.running()
        self.sim("POST", "faults", {"action": "StopInstances", "instance_id": b, "error": "RequestLimitExceeded"})
        self.ec2.stop_instances(InstanceIds=[a])
        self.assert_error(self.ec2.stop_instances, "RequestLimitExceeded", 503, InstanceIds=[b])
        self.assert_error(self.ec2.stop_instances, "RequestLimitExceeded", 503, InstanceIds=[b])   # no count
        self.sim("DELETE", "faults")
        self.sim("POST", "faults", {"action": "DescribeInstances", "skip": 2, "count": 1, "error": "InternalError"})
        self.ec2.describe_instances()
        self.ec2.describe_instances()
        self.assert_error(self.ec2.describe_instances, "InternalError", 500)
        self.ec2.describe_instances()
        self.sim("DELETE", "faults")
        self.sim("POST", "faults/seed", {"seed": 1})
        rule = self.sim("POST", "faults", {"action": "DescribeInstances", "probability": 0.5,
                                           "error": "RequestLimitExceeded"})["faults"][0]
        outcomes = []
        for _ in range(30):
            try:
                self.ec2.describe_instances()
                outcomes.append(True)
            except botocore.exceptions.ClientError:
                outcomes.append(False)
        self.assertIn(True, outcomes)
        self.assertIn(False, outcomes)
        listed = self.sim("GET", "faults")["faults"][0]
        self.assertEqual(listed["hits"], outcomes.count(False))
        self.sim("DELETE", "faults/%d" % rule["id"])
        self.assertEqual(self.sim("GET", "faults")["faults"], [])
        self.sim("POST", "faults", {"action": "X"}, expect=400)
        self.sim("POST", "faults", {"action": "X", "drop": "sometimes"}, expect=400)

    def test_throttling_retried_by_sdk(self):
        self.sim("POST", "faults", {"action": "DescribeInstances", "count": 2, "error": "RequestLimitExceeded"})
        self.client(retries=3).describe_instances()
        log = self.requests_log("DescribeInstances")
        self.assertEqual([e["status"] for e in log], [503, 503, 200])
        self.assertGreater(log[2]["time"], log[1]["time"])

    # -- DryRun and permissions ---------------------------------------------------------------

    def test_dry_run(self):
        iid = self.running()
        self.assert_error(self.ec2.stop_instances, "DryRunOperation", 412, InstanceIds=[iid], DryRun=True)
        self.assertEqual(self.state(iid), "running")
        self.sim("POST", "deny", {"actions": ["StopInstances"]})
        err = self.assert_error(self.ec2.stop_instances, "UnauthorizedOperation", 403, InstanceIds=[iid],
                                DryRun=True)
        self.assertIn("Encoded authorization failure message: ", err["Error"]["Message"])
        self.assert_error(self.ec2.stop_instances, "UnauthorizedOperation", 403, InstanceIds=[iid])
        self.assert_error(self.ec2.start_instances, "DryRunOperation", 412, InstanceIds=[iid], DryRun=True)
        self.assert_error(self.ec2.run_instances, "DryRunOperation", 412, ImageId=AMI, MinCount=1, MaxCount=1,
                          DryRun=True)
        self.assertEqual(self.sim("GET", "deny")["actions"], ["StopInstances"])
        self.sim("DELETE", "deny")
        self.ec2.stop_instances(InstanceIds=[iid])
        self.assertFalse(any(e["forwarded"] for e in self.requests_log() if e["dry_run"]))
        self.assertEqual(len(self.sim("GET", "instances")["instances"]), 1)

    # -- pagination ------------------------------------------------------------------------------

    def test_pagination_250(self):
        self.sim("PUT", "timings", {"pending_seconds": 0})
        tags = [{"ResourceType": "instance", "Tags": [{"Key": "stratos.sh/cluster", "Value": "c1"}]}]
        made = []
        for _ in range(3):
            r = self.ec2.run_instances(ImageId=AMI, MinCount=60, MaxCount=60, SubnetId=SUBNET,
                                       TagSpecifications=tags)
            made += [i["InstanceId"] for i in r["Instances"]]
        for _ in range(70):
            made.append(self.run_one(TagSpecifications=tags))
        self.run_one()                                             # another cluster's instance
        stopped = made[::7]
        self.ec2.stop_instances(InstanceIds=stopped)
        self.assertEqual(len(set(made)), 250)

        cluster = [{"Name": "tag:stratos.sh/cluster", "Values": ["c1"]}]
        for page_size in (5, 7, 1000):
            with self.subTest(page_size=page_size):
                seen, token, pages = [], None, 0
                while True:
                    kw = {"Filters": cluster, "MaxResults": page_size}
                    if token:
                        kw["NextToken"] = token
                    r = self.ec2.describe_instances(**kw)
                    page = [i["InstanceId"] for res in r["Reservations"] for i in res["Instances"]]
                    self.assertLessEqual(len(page), page_size)
                    seen += page
                    pages += 1
                    token = r.get("NextToken")
                    if not token:
                        break
                self.assertEqual(sorted(seen), sorted(made))
                self.assertEqual(len(seen), len(set(seen)))
                self.assertEqual(pages, -(-250 // page_size))
        state_filter = cluster + [{"Name": "instance-state-name", "Values": ["stopping", "stopped"]}]
        paginator = self.ec2.get_paginator("describe_instances")
        got = [i["InstanceId"] for p in paginator.paginate(Filters=state_filter, PaginationConfig={"PageSize": 6})
               for res in p["Reservations"] for i in res["Instances"]]
        self.assertEqual(sorted(got), sorted(stopped))
        everything = self.ec2.describe_instances()
        self.assertEqual(sum(len(r["Instances"]) for r in everything["Reservations"]), 251)
        self.assertNotIn("NextToken", everything)
        self.assert_error(self.ec2.describe_instances, "InvalidParameterValue", 400, MaxResults=4)
        self.assert_error(self.ec2.describe_instances, "InvalidParameterCombination", 400, MaxResults=5,
                          InstanceIds=[made[0]])
        self.assert_error(self.ec2.describe_instances, "InvalidPaginationToken", 400, MaxResults=5,
                          NextToken="bogus")

    # -- connections, logs, tools --------------------------------------------------------------

    def test_keep_alive(self):
        p = {"Action": "DescribeInstances", "Version": "2016-11-15"}
        _, _, conn = self.raw(p, keep=True)
        _, _, conn2 = self.raw(p, conn=conn, keep=True)
        self.assertIs(conn, conn2)
        log = self.requests_log()
        self.assertEqual(log[-1]["conn"], log[-2]["conn"])
        self.assertEqual((log[-2]["conn_request"], log[-1]["conn_request"]), (1, 2))
        self.assertTrue(log[-1]["tls"])
        conn.close()

    def test_request_log(self):
        iid = self.run_one(ClientToken="log-token")
        self.ec2.describe_instances(InstanceIds=[iid])
        log = self.sim("GET", "requests")
        run = [e for e in log["requests"] if e["action"] == "RunInstances"][0]
        self.assertEqual(run["client_token"], "log-token")
        self.assertEqual(run["instance_ids"], [iid])
        self.assertEqual(run["params"]["InstanceType"], "m5.large")
        self.assertTrue(run["forwarded"])
        self.assertEqual(run["signature"], "verified")
        since = log["last_seq"]
        self.ec2.describe_instances()
        self.assertEqual(len(self.sim("GET", "requests?since=%d" % since)["requests"]), 1)
        self.sim("DELETE", "requests")
        self.assertEqual(self.sim("GET", "requests")["requests"], [])

    def test_tags_tracked(self):
        iid = self.run_one(TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "1"}]}])
        self.ec2.create_tags(Resources=[iid], Tags=[{"Key": "stratos.sh/state", "Value": "standby"}])
        self.ec2.delete_tags(Resources=[iid], Tags=[{"Key": "a"}])
        self.assertEqual(self.sim("GET", "instances/" + iid)["tags"], {"stratos.sh/state": "standby"})
        r = self.ec2.describe_instances(Filters=[{"Name": "tag:stratos.sh/state", "Values": ["standby"]}])
        self.assertEqual(r["Reservations"][0]["Instances"][0]["InstanceId"], iid)

    def test_reset_clears_moto(self):
        self.run_one()
        self.sim("POST", "faults", {"action": "*", "delay_ms": 1})
        self.sim("POST", "reset")
        self.assertEqual(self.ec2.describe_instances()["Reservations"], [])
        self.assertEqual(self.sim("GET", "faults")["faults"], [])
        status, body, _ = self.raw({"Action": "DescribeInstances", "Version": "2016-11-15"})
        self.assertNotIn(b"<instanceId>", body)

    def test_aws_cli(self):
        iid = self.run_one()
        env = dict(os.environ)
        env.update(self.env)
        env["AWS_DEFAULT_REGION"] = self.env["AWS_REGION"]
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(k, None)
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        out = subprocess.run(["aws", "--endpoint-url", self.url, "ec2", "describe-instances",
                              "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        doc = json.loads(out.stdout)
        self.assertEqual(doc["Reservations"][0]["Instances"][0]["InstanceId"], iid)
        # AWS_ENDPOINT_URL_EC2 from DIR/ec2sim.env alone is enough.
        out = subprocess.run(["aws", "ec2", "describe-instance-attribute", "--instance-id", iid,
                              "--attribute", "instanceType", "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["InstanceType"]["Value"], "m5.large")
        env["AWS_CA_BUNDLE"] = os.path.join(self.dir, "nonexistent.crt")
        out = subprocess.run(["aws", "ec2", "describe-instances"], env=env, capture_output=True, text=True,
                             timeout=60)
        self.assertNotEqual(out.returncode, 0)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class LifecycleTest(unittest.TestCase):
    def test_moto_dies_with_sigkilled_parent(self):
        d = tempfile.mkdtemp(prefix="ec2sim-life-")
        try:
            proc, port = simproc.start("ec2sim", d, ["--plain-http"])
            env = simproc.read_env(os.path.join(d, "ec2sim.env"))
            self.assertTrue(env["AWS_ENDPOINT_URL_EC2"].startswith("http://"))
            self.assertNotIn("AWS_CA_BUNDLE", env)
            status, doc = simproc.control(env["STRATOS_SIM_EC2_CONTROL"], "GET", "health")
            self.assertEqual(status, 200)
            moto_port = doc["moto_port"]
            with socket.create_connection(("127.0.0.1", moto_port), timeout=5):
                pass
            proc.kill()
            proc.wait()
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", moto_port), timeout=1).close()
                    time.sleep(0.1)
                except OSError:
                    break
            else:
                self.fail("moto still answers after its parent was killed")
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
