"""`stratosd doctor` against the whole simulated environment (scripts/sim up):
the EC2 rows and the Kubernetes RBAC rows (SelfSubjectAccessReview), and the
exit status an operator's script relies on."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "sim"))
sys.path.insert(0, HERE)

import simclient  # noqa: E402
import simproc  # noqa: E402
import stratos_testlib as tl  # noqa: E402


class DoctorWithClusterTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stratos-doctor-")
        subprocess.run([os.path.join(REPO, "scripts", "sim"), "up", "--dir", cls.dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cls.simenv = simproc.read_env(os.path.join(cls.dir, "env"))
        cls.api = simclient.Client(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.api.close()
        subprocess.run([os.path.join(REPO, "scripts", "sim"), "down", "--dir", cls.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tearDown(self):
        st, body = self.api.post("/_sim/ssar", {"deny": []})
        self.assertEqual(st, 200, body)

    def doctor(self, *args, kubeconfig=True):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.dir}
        for key in ("AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS", "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_CA_BUNDLE"):
            env[key] = self.simenv[key]
        args = list(args)
        if kubeconfig:
            args += ["--kubeconfig", os.path.join(self.dir, "kubeconfig")]
        return tl.run_doctor(self, args, env)

    def test_everything_granted(self):
        code, rows, out = self.doctor()
        self.assertEqual(code, 0, out.stdout + out.stderr)
        self.assertEqual(rows["kubernetes api"][0], "ok")
        self.assertIn(self.simenv["STRATOS_SIM_APISERVER"], rows["kubernetes api"][1])
        self.assertEqual(rows["kubernetes rbac"][0], "ok", rows)
        self.assertIn("stratos-system", rows["kubernetes rbac"][1])
        self.assertEqual(rows["ec2:StartInstances"][0], "ok")
        self.assertEqual(rows["identity"], ("ok", "arn:aws:iam::123456789012:user/stratos-sim "
                                                  "(account 123456789012)"))

    def test_a_missing_permission_names_it_and_exits_1(self):
        st, body = self.api.post("/_sim/ssar", {"deny": [
            {"verb": "create", "resource": "pods", "subresource": "eviction"},
            {"verb": "update", "resource": "leases", "name": "stratos-controller"}]})
        self.assertEqual(st, 200, body)
        code, rows, out = self.doctor("--namespace", "ops")
        self.assertEqual(code, 1, out.stdout)
        self.assertEqual(rows["kubernetes rbac"][0], "FAIL")
        self.assertIn("create pods/eviction", rows["kubernetes rbac"][1])
        self.assertIn("update leases.coordination.k8s.io in ops", rows["kubernetes rbac"][1])
        self.assertEqual(rows["ec2:StartInstances"][0], "ok")   # EC2 rows unaffected

    def test_rbac_is_checked_even_when_aws_is_missing(self):
        env_backup = dict(self.simenv)
        try:
            self.simenv["AWS_ACCESS_KEY_ID"] = ""
            self.simenv["AWS_SECRET_ACCESS_KEY"] = ""
            code, rows, out = self.doctor()
        finally:
            self.simenv.update(env_backup)
        self.assertEqual(code, 1)
        self.assertEqual(rows["credentials"][0], "FAIL")
        self.assertEqual(rows["kubernetes rbac"][0], "ok", out.stdout)

    def test_no_cluster_configured_is_skipped(self):
        code, rows, out = self.doctor(kubeconfig=False)
        self.assertEqual(code, 0, out.stdout)
        self.assertEqual(rows["kubernetes api"][0], "skipped")

    def test_unreachable_api_server_fails(self):
        bad = os.path.join(self.dir, "bad-kubeconfig")
        with open(os.path.join(self.dir, "kubeconfig")) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace(self.simenv["STRATOS_SIM_APISERVER"], "https://127.0.0.1:1"))
        code, rows, out = self.doctor("--kubeconfig", bad, kubeconfig=False)
        self.assertEqual(code, 1)
        self.assertEqual(rows["kubernetes api"][0], "FAIL")
        self.assertIn("127.0.0.1:1", rows["kubernetes api"][1])

    def exec_kubeconfig(self, name, script):
        """The sim's kubeconfig with its user replaced by an exec plugin (a shell script)."""
        import yaml
        plugin = os.path.join(self.dir, name + ".sh")
        with open(plugin, "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(plugin, 0o755)
        with open(os.path.join(self.dir, "kubeconfig")) as f:
            cfg = yaml.safe_load(f)
        cfg["users"][0]["user"] = {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "./" + name + ".sh",
            "args": [os.path.join(self.dir, "apiserver.token")], "interactiveMode": "Never"}}
        path = os.path.join(self.dir, name + "-kubeconfig")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        return path

    def test_exec_credential_plugin(self):
        # As `aws eks update-kubeconfig` writes it: the token comes from a command.
        path = self.exec_kubeconfig("plugin", """printf '{"apiVersion":"client.authentication.k8s.io/v1beta1",\
"kind":"ExecCredential","status":{"token":"%s"}}' "$(cat "$1")"\n""")
        code, rows, out = self.doctor("--kubeconfig", path, kubeconfig=False)
        self.assertEqual(code, 0, out.stdout + out.stderr)
        self.assertEqual(rows["kubernetes api"][0], "ok")
        self.assertEqual(rows["kubernetes rbac"][0], "ok")

        path = self.exec_kubeconfig("broken", "echo 'error: the SSO session has expired' >&2\nexit 255\n")
        code, rows, out = self.doctor("--kubeconfig", path, kubeconfig=False)
        self.assertEqual(code, 1)
        self.assertEqual(rows["kubernetes api"][0], "FAIL")
        self.assertIn("exited with status 255: error: the SSO session has expired",
                      rows["kubernetes api"][1])


if __name__ == "__main__":
    unittest.main()
