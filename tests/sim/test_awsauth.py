"""Tests of the credential stubs (tests/sim/awsauth.py) with raw HTTP, boto3 and the AWS CLI.

Run from the repository root:  python3 -m unittest tests/sim/test_awsauth.py
"""

import datetime
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simproc  # noqa: E402

import boto3  # noqa: E402
import botocore  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402

ROLE_ARN = "arn:aws:iam::123456789012:role/stratos"
STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


def jwt(sub, aud="sts.amazonaws.com"):
    import base64

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return "%s.%s.%s" % (b64({"alg": "RS256"}),
                         b64({"sub": sub, "aud": aud, "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/X"}),
                         "c2ln")


class AwsAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="awsauth-test-")
        cls.ec2proc, _ = simproc.start("ec2sim", cls.dir)
        cls.ec2env = simproc.read_env(os.path.join(cls.dir, "ec2sim.env"))
        cls.proc, cls.port = simproc.start("awsauth", cls.dir, [
            "--ec2sim-control", cls.ec2env["STRATOS_SIM_EC2_CONTROL"]])
        cls.env = simproc.read_env(os.path.join(cls.dir, "awsauth.env"))
        cls.ctl = cls.env["STRATOS_SIM_AWSAUTH_CONTROL"]
        with open(cls.env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]) as f:
            cls.container_token = f.read()

    @classmethod
    def tearDownClass(cls):
        try:
            assert simproc.stop(cls.proc) == 0
            assert simproc.stop(cls.ec2proc) == 0
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.auth("POST", "reset")
        simproc.control(self.ec2env["STRATOS_SIM_EC2_CONTROL"], "POST", "reset", ca=self.ec2env["AWS_CA_BUNDLE"])

    # -- helpers -------------------------------------------------------------

    def auth(self, method, path, body=None, expect=200):
        status, doc = simproc.control(self.ctl, method, path, body)
        if expect is not None:
            self.assertEqual(status, expect, doc)
        return doc

    def http(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def sts(self, params):
        return self.http("POST", "/", urllib.parse.urlencode(params),
                         {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def assume(self, token="tok", session="s1"):
        return self.sts({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": ROLE_ARN,
                         "RoleSessionName": session, "WebIdentityToken": token})

    def ec2_with(self, akid, secret, token):
        cfg = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})
        return boto3.client("ec2", endpoint_url=self.ec2env["AWS_ENDPOINT_URL_EC2"],
                            verify=self.ec2env["AWS_CA_BUNDLE"], region_name="us-east-1",
                            aws_access_key_id=akid, aws_secret_access_key=secret, aws_session_token=token,
                            config=cfg)

    def cli_env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        # A private HOME: the CLI caches assumed-role credentials under ~/.aws/cli/cache.
        home = tempfile.mkdtemp(prefix="home-", dir=self.dir)
        env.update({"HOME": home, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL_EC2": self.ec2env["AWS_ENDPOINT_URL_EC2"],
                    "AWS_CA_BUNDLE": self.ec2env["AWS_CA_BUNDLE"]})
        env.update(extra)
        return env

    def cli_describe(self, env):
        out = subprocess.run(["aws", "ec2", "describe-instances", "--output", "json"], env=env,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def last_ec2_key(self):
        _, doc = simproc.control(self.ec2env["STRATOS_SIM_EC2_CONTROL"], "GET", "requests",
                                 ca=self.ec2env["AWS_CA_BUNDLE"])
        return doc["requests"][-1]["access_key_id"]

    # -- STS ------------------------------------------------------------------------

    def test_sts_issues_registered_credentials(self):
        status, _, body = self.assume(jwt("system:serviceaccount:stratos-system:stratos"))
        self.assertEqual(status, 200)
        root = ET.fromstring(body)
        self.assertEqual(root.tag, STS_NS + "AssumeRoleWithWebIdentityResponse")
        creds = root.find("%sAssumeRoleWithWebIdentityResult/%sCredentials" % (STS_NS, STS_NS))
        akid = creds.find(STS_NS + "AccessKeyId").text
        secret = creds.find(STS_NS + "SecretAccessKey").text
        token = creds.find(STS_NS + "SessionToken").text
        exp = creds.find(STS_NS + "Expiration").text
        self.assertRegex(akid, r"^ASIA[A-Z2-7]{16}$")
        self.assertRegex(exp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        left = datetime.datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() - time.time()
        self.assertTrue(3500 < left <= 3600, left)
        self.assertEqual(root.find("%sAssumeRoleWithWebIdentityResult/%sSubjectFromWebIdentityToken"
                                   % (STS_NS, STS_NS)).text, "system:serviceaccount:stratos-system:stratos")
        self.ec2_with(akid, secret, token).describe_instances()
        self.assertEqual(self.last_ec2_key(), akid)
        self.assert_ec2_rejects(akid, secret, None, "AuthFailure")

    def assert_ec2_rejects(self, akid, secret, token, code):
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            self.ec2_with(akid, secret, token).describe_instances()
        self.assertEqual(cm.exception.response["Error"]["Code"], code)

    def test_sts_records_tokens_and_validates(self):
        self.assertEqual(self.assume("token-one")[0], 200)
        self.assertEqual(self.assume("token-two")[0], 200)
        status, _, body = self.sts({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                                    "RoleArn": ROLE_ARN})
        self.assertEqual(status, 400)
        err = ET.fromstring(body).find(STS_NS + "Error")
        self.assertEqual(err.find(STS_NS + "Code").text, "ValidationError")
        self.assertIn("roleSessionName", err.find(STS_NS + "Message").text)
        self.auth("PUT", "config", {"accept_tokens": ["good"]})
        status, _, body = self.assume("bad")
        self.assertEqual(status, 400)
        root = ET.fromstring(body)
        self.assertEqual(root.tag, STS_NS + "ErrorResponse")
        self.assertEqual(root.find("%sError/%sCode" % (STS_NS, STS_NS)).text, "InvalidIdentityToken")
        self.assertEqual(root.find("%sError/%sType" % (STS_NS, STS_NS)).text, "Sender")
        self.assertEqual(self.assume("good")[0], 200)
        doc = self.auth("GET", "requests")
        self.assertEqual(doc["web_identity_tokens"], ["token-one", "token-two", "bad", "good"])
        self.assertEqual(doc["counts"]["sts"], 5)

    def test_sts_expiration_and_failures(self):
        self.auth("PUT", "config", {"expiration_seconds": 1, "fractional_digits": 3})
        status, _, body = self.assume()
        creds = ET.fromstring(body).find("%sAssumeRoleWithWebIdentityResult/%sCredentials" % (STS_NS, STS_NS))
        exp = creds.find(STS_NS + "Expiration").text
        self.assertRegex(exp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        akid, secret, token = (creds.find(STS_NS + n).text for n in ("AccessKeyId", "SecretAccessKey",
                                                                     "SessionToken"))
        time.sleep(1.2)
        self.assert_ec2_rejects(akid, secret, token, "RequestExpired")
        self.auth("POST", "fail", {"endpoint": "sts", "count": 2, "status": 503, "code": "ServiceUnavailable"})
        self.assertEqual(self.assume()[0], 503)
        self.assertEqual(self.assume()[0], 503)
        self.assertEqual(self.assume()[0], 200)

    def test_sts_through_sdk_environment(self):
        token_file = os.path.join(self.dir, "web-identity-token")
        with open(token_file, "w") as f:
            f.write(jwt("system:serviceaccount:stratos-system:stratos"))
        env = self.cli_env(AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=token_file,
                           AWS_ROLE_SESSION_NAME="stratosd", AWS_ENDPOINT_URL_STS=self.env["AWS_ENDPOINT_URL_STS"])
        self.cli_describe(env)
        doc = self.auth("GET", "requests")
        self.assertEqual(doc["counts"]["sts"], 1)
        self.assertEqual(doc["log"][-1]["role_session_name"], "stratosd")
        self.assertEqual(self.last_ec2_key(), doc["log"][-1]["access_key_id"])

    # -- container credentials ----------------------------------------------------------------

    def test_container_credentials(self):
        path = urllib.parse.urlparse(self.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]).path
        self.assertEqual(self.http("GET", path)[0], 401)
        self.assertEqual(self.http("GET", path, headers={"Authorization": "wrong"})[0], 403)
        status, hdrs, body = self.http("GET", path, headers={"Authorization": self.container_token})
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["Content-Type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(set(doc), {"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"})
        self.ec2_with(doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"]).describe_instances()
        self.auth("POST", "fail", {"endpoint": "container", "count": 1, "status": 500})
        self.assertEqual(self.http("GET", path, headers={"Authorization": self.container_token})[0], 500)
        self.assertEqual(self.http("GET", path, headers={"Authorization": self.container_token})[0], 200)
        self.assertEqual(self.auth("GET", "requests")["counts"]["container"], 5)

    def test_container_through_sdk_environment(self):
        env = self.cli_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=self.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                           AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=self.env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
        self.cli_describe(env)
        doc = self.auth("GET", "requests")
        self.assertEqual(doc["counts"]["container"], 1)
        self.assertEqual(self.last_ec2_key(), doc["log"][-1]["access_key_id"])

    # -- IMDSv2 ---------------------------------------------------------------------------------

    def imds_token(self, ttl="21600"):
        status, hdrs, body = self.http("PUT", "/latest/api/token",
                                       headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["X-aws-ec2-metadata-token-ttl-seconds"], ttl)
        return body.decode()

    def test_imds(self):
        self.assertEqual(self.http("PUT", "/latest/api/token")[0], 400)
        self.assertEqual(self.http("PUT", "/latest/api/token",
                                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "21601"})[0], 400)
        self.assertEqual(self.http("GET", "/latest/api/token")[0], 405)
        tok = self.imds_token()
        h = {"X-aws-ec2-metadata-token": tok}
        status, _, role = self.http("GET", "/latest/meta-data/iam/security-credentials/", headers=h)
        self.assertEqual((status, role), (200, b"stratos-node"))
        status, _, body = self.http("GET", "/latest/meta-data/iam/security-credentials/stratos-node", headers=h)
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["Code"], "Success")
        self.assertEqual(doc["Type"], "AWS-HMAC")
        self.ec2_with(doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"]).describe_instances()
        self.assertEqual(self.http("GET", "/latest/meta-data/iam/security-credentials/other", headers=h)[0], 404)
        self.assertEqual(self.http("GET", "/latest/meta-data/placement/region", headers=h)[2], b"us-east-1")
        self.assertEqual(self.http("GET", "/latest/meta-data/placement/region",
                                   headers={"X-aws-ec2-metadata-token": "forged"})[0], 401)
        self.assertEqual(self.http("GET", "/latest/meta-data/placement/region")[0], 200)     # IMDSv1 allowed
        self.auth("PUT", "config", {"imds_v1_disabled": True})
        self.assertEqual(self.http("GET", "/latest/meta-data/placement/region")[0], 401)
        self.assertEqual(self.http("GET", "/latest/meta-data/placement/region", headers=h)[0], 200)
        short = self.imds_token("1")
        time.sleep(1.1)
        self.assertEqual(self.http("GET", "/latest/meta-data/placement/region",
                                   headers={"X-aws-ec2-metadata-token": short})[0], 401)
        self.auth("POST", "fail", {"endpoint": "imds", "count": 1, "status": 500})
        self.assertEqual(self.http("PUT", "/latest/api/token",
                                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})[0], 500)
        counts = self.auth("GET", "requests")["counts"]
        self.assertEqual(counts["imds-token"], 6)
        self.assertEqual(counts["imds-credentials"], 2)
        self.assertEqual(counts["imds-role"], 1)

    def test_imds_through_sdk_environment(self):
        self.auth("PUT", "config", {"imds_v1_disabled": True, "fractional_digits": 6})
        env = self.cli_env(AWS_EC2_METADATA_SERVICE_ENDPOINT=self.env["AWS_EC2_METADATA_SERVICE_ENDPOINT"])
        self.cli_describe(env)
        doc = self.auth("GET", "requests")
        self.assertGreaterEqual(doc["counts"]["imds-token"], 1)
        self.assertEqual(doc["counts"]["imds-credentials"], 1)
        issued = self.auth("GET", "issued")["credentials"]
        self.assertRegex(issued[-1]["Expiration"], r"\.\d{6}Z$")
        self.assertEqual(self.last_ec2_key(), issued[-1]["AccessKeyId"])

    def test_control_validation(self):
        self.auth("PUT", "config", {"nope": 1}, expect=400)
        self.auth("POST", "fail", {"endpoint": "nowhere"}, expect=400)
        self.auth("GET", "nothing", expect=404)
        self.assertEqual(self.http("GET", "/elsewhere")[0], 404)


if __name__ == "__main__":
    unittest.main()
