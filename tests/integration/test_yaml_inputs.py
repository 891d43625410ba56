"""Hostile YAML in every YAML input of the real stratosd: alias bombs and deep nesting.

`stratosd validate`, `serve --pools-file`, `serve --config` and a kubeconfig
(`--kubeconfig`, `$KUBECONFIG`) all read YAML through yamljson. A few hundred
bytes of nested aliases ("billion laughs") used to expand to gigabytes; each
input must now refuse them at once, naming the file, line and limit, and the
process must stay small (peak RSS from wait4, not wall time).
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stratos_testlib as tl  # noqa: E402

# Named in include/stratos/limits.h; the messages quote them.
ALIAS_NODES = 100000
DEPTH = 64
# The bomb expands to 10^10 nodes (the old parser took 14 s and 2.6 GB for 10^6
# of them); refused, it costs a few MiB above an idle stratosd. The bound leaves
# room for ASan's shadow memory in the sanitizer pass.
RSS_BOUND_KIB = 256 * 1024


def bomb_text():
    """Ten levels, nine of them ten aliases of the level below: 580 bytes, 10^10 empty maps."""
    lines = ["l0: &l0 [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}]"]
    for i in range(1, 10):
        lines.append("l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * 10)))
    return "\n".join(lines) + "\n"


def deep_text():
    return "spec: " + "[" * 100000 + "\n"


def run_measured(args, env=None, timeout=60):
    """Runs args alone; returns (exit status, stdout, stderr, its own peak RSS in KiB).

    wait4() gives this child's rusage, not the maximum over every child the
    test process ever had (RUSAGE_CHILDREN).
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STRATOS_")
                or k == "STRATOS_BUILD_DIR"}
    full_env.update(env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.posix_spawn(args[0], args, full_env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        deadline = time.monotonic() + timeout
        while True:
            got, status, ru = os.wait4(pid, os.WNOHANG)
            if got == pid:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.wait4(pid, 0)
                raise AssertionError("%s did not finish in %d s" % (args, timeout))
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode(),
                ru.ru_maxrss)


class TestHostileYaml(unittest.TestCase):
    def setUp(self):
        self.dir = tl.tempdir(self)
        self.bomb = os.path.join(self.dir, "bomb.yaml")
        self.deep = os.path.join(self.dir, "deep.yaml")
        with open(self.bomb, "w") as f:
            f.write(bomb_text())
        with open(self.deep, "w") as f:
            f.write(deep_text())

    def assert_refused(self, status, text, path, what, want_status):
        self.assertEqual(status, want_status, text)
        self.assertNotIn("Sanitizer", text)
        if what == "alias":
            # l0..l3 copy 12,330 nodes; the eighth alias on line 5 crosses the budget.
            self.assertRegex(text, r"%s:5:\d+: YAML alias expansion exceeds %d nodes"
                             % (path, ALIAS_NODES))
        else:
            # "spec: " is the mapping, level 1; the 64th "[" is level 65, at column 70.
            self.assertRegex(text, r"%s:1:%d: YAML nesting deeper than %d"
                             % (path, 6 + DEPTH, DEPTH))

    def test_validate_refuses_quickly_and_stays_small(self):
        for path, what in ((self.bomb, "alias"), (self.deep, "depth")):
            status, out, err, rss = run_measured(
                [tl.stratosd_path(), "validate", path])
            self.assert_refused(status, out + err, path, what, 1)
            self.assertLess(rss, RSS_BOUND_KIB, "peak RSS %d KiB on %s" % (rss, what))
            print("validate %s: peak RSS %d KiB" % (what, rss), file=sys.stderr)

    def test_validate_stdin_names_stdin(self):
        p = subprocess.run([tl.stratosd_path(), "validate", "-"], input=bomb_text(),
                           capture_output=True, text=True, timeout=60)
        self.assert_refused(p.returncode, p.stdout + p.stderr, "<stdin>", "alias", 1)

    def test_pools_file_stops_start_up(self):
        certs = tl.make_certs(self.dir)
        for path, what in ((self.bomb, "alias"), (self.deep, "depth")):
            status, out, err, rss = run_measured(
                [tl.stratosd_path(), "serve"] + tl.serve_args(certs, "--pools-file", path))
            self.assert_refused(status, err, path, what, 2)
            self.assertLess(rss, RSS_BOUND_KIB)

    def test_config_file_stops_start_up(self):
        for path, what in ((self.bomb, "alias"), (self.deep, "depth")):
            status, out, err, rss = run_measured(
                [tl.stratosd_path(), "serve", "--config", path])
            self.assert_refused(status, err, path, what, 2)
            self.assertLess(rss, RSS_BOUND_KIB)

    def test_kubeconfig_stops_start_up(self):
        certs = tl.make_certs(self.dir)
        for path, what in ((self.bomb, "alias"), (self.deep, "depth")):
            status, out, err, rss = run_measured(
                [tl.stratosd_path(), "serve"] + tl.serve_args(certs, "--kubeconfig", path))
            self.assert_refused(status, err, path, what, 2)
            self.assertLess(rss, RSS_BOUND_KIB)
            status, out, err, rss = run_measured(
                [tl.stratosd_path(), "serve"] + tl.serve_args(certs), env={"KUBECONFIG": path})
            self.assert_refused(status, err, path, what, 2)


if __name__ == "__main__":
    unittest.main()
