"""Start and stop a simulator (tests/sim/<name>.py) from a test, the way scripts/sim does."""

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def start(name, directory, args=(), timeout=60.0):
    """Run tests/sim/<name>.py --dir directory; wait for <name>.port. Returns (proc, port)."""
    os.makedirs(directory, exist_ok=True)
    port_file = os.path.join(directory, name + ".port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    log_path = os.path.join(directory, name + ".log")
    logf = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, name + ".py"), "--dir", directory] + list(args),
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, int(f.read().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    with open(log_path) as f:
        raise RuntimeError("%s did not start:\n%s" % (name, f.read()[-3000:]))


def stop(proc, timeout=15.0):
    """SIGTERM, then SIGKILL; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def read_env(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                out[k] = v
    return out


def control(base, method, path, body=None, ca=None, timeout=60):
    """Call a JSON control API; returns (status, decoded JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + "/" + path.lstrip("/"), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
