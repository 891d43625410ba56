#!/usr/bin/env bash
# extender_https.sh: /scheduler/filter over HTTPS keep-alive, as the
# scheduler calls it (one connection, one call at a time), with wrk:
# latency percentiles and calls per second for
#   - a pod of no pool with 5,000 NodeNames (pass-through),
#   - a pod of no pool with 500 full Node objects (pass-through),
#   - a pool pod whose pool has a usable node (answered from the caches).
# stratosd runs against the fake API server (scripts/sim, apiserver only),
# whose caches hold 5,000 plain Nodes and a pool of 40 (one usable).
#
#   bench/extender_https.sh [-d SECONDS] [-c CONNECTIONS]   (after cmake --build build)
#
# With PIN=1, stratosd runs on CPU 0 and wrk on CPU 1 (taskset), so neither
# waits for the other's time slice.
set -euo pipefail

DURATION=10
CONNS=1
while getopts "d:c:" o; do
	case $o in
	d) DURATION=$OPTARG ;;
	c) CONNS=$OPTARG ;;
	*) echo "usage: $0 [-d SECONDS] [-c CONNECTIONS]" >&2; exit 2 ;;
	esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd -P)
STRATOSD=${STRATOSD:-$REPO/build/stratosd}
command -v wrk >/dev/null || { echo "extender_https.sh: wrk is needed" >&2; exit 2; }
[ -x "$STRATOSD" ] || { echo "extender_https.sh: $STRATOSD not built" >&2; exit 2; }

WORK=$(mktemp -d /tmp/stratos-extender-https.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	"$REPO/scripts/sim" down --dir "$WORK/sim" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

"$REPO/scripts/sim" up --dir "$WORK/sim" --components apiserver --apiserver-opt=--quiet >/dev/null
"$REPO/certs/gen.sh" --days 1 "$WORK/certs" >/dev/null 2>&1

# The cluster, the pools file and the three bodies.
python3 - "$REPO" "$WORK" <<'EOF'
import json, sys
repo, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/tests/sim")
from simclient import Client
api = Client(work + "/sim")
items = []
for i in range(5000):
    name = "ip-10-1-%d-%d.ec2.internal" % (i // 250, i % 250)
    items.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                  "status": {"allocatable": {"cpu": "7910m", "memory": "30Gi", "pods": "58"},
                             "conditions": [{"type": "Ready", "status": "True"}]}})
for i in range(40):
    name = "ip-10-0-9-%d.ec2.internal" % i
    labels = {"stratos.sh/pool": "ci-runners", "stratos.sh/state": "running" if i == 0 else "standby"}
    items.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                  "spec": {"taints": [] if i == 0 else [{"key": "stratos.sh/standby", "value": "true", "effect": "NoExecute"}]},
                  "status": {"allocatable": {"cpu": "7910m", "memory": "30Gi", "pods": "58"},
                             "conditions": [{"type": "Ready", "status": "True" if i == 0 else "Unknown"}]}})
st, body = api.post("/_sim/bulk", {"items": items})
assert st == 200 and body["failed"] == 0, body
args = json.load(open(repo + "/tests/fixtures/extender/filter-args-nodenames.json"))
pool_pod = args["Pod"]
plain = json.loads(json.dumps(pool_pod))
del plain["metadata"]["annotations"]["stratos.sh/pool"]
def dump(name, obj):
    with open("%s/%s.json" % (work, name), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
dump("names5000", {"Pod": plain, "Nodes": None, "NodeNames": [n["metadata"]["name"] for n in items[:5000]]})
node = json.load(open(repo + "/tests/fixtures/extender/nodes-standby.json"))[0]
node["status"]["images"] = [{"names": ["registry.example/team/image-with-a-long-name@sha256:0123456789abcdef",
                                        "registry.example/team/image-with-a-long-name:v1.2.%d" % i],
                             "sizeBytes": 123456789 + i} for i in range(20)]
nodes = []
for i in range(500):
    n = json.loads(json.dumps(node))
    n["metadata"]["name"] = items[i]["metadata"]["name"]
    nodes.append(n)
dump("nodes500", {"Pod": plain, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None})
dump("pool40", {"Pod": pool_pod, "Nodes": None, "NodeNames": [n["metadata"]["name"] for n in items[5000:]]})
EOF

PIN_S=() PIN_W=()
if [ "${PIN:-0}" = 1 ]; then PIN_S=(taskset -c 0) PIN_W=(taskset -c 1); fi
"${PIN_S[@]}" "$STRATOSD" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
	--tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key" \
	--kubeconfig "$WORK/sim/kubeconfig" --pools-file "$REPO/tests/fixtures/seed-examples.yaml" \
	--max-body-bytes 16777216 2>"$WORK/stratosd.log" &
PID=$!
for _ in $(seq 100); do
	grep -q '"msg":"stratosd serving' "$WORK/stratosd.log" 2>/dev/null && break
	sleep 0.1
done
LINE=$(grep '"msg":"stratosd serving' "$WORK/stratosd.log" || true)
[ -n "$LINE" ] || { echo "stratosd did not start"; cat "$WORK/stratosd.log"; exit 1; }
PORT=$(echo "$LINE" | sed -E 's/.*"listen":"[^"]*:([0-9]+)".*/\1/')
MPORT=$(echo "$LINE" | sed -E 's/.*"metrics_listen":"[^"]*:([0-9]+)".*/\1/')
for _ in $(seq 200); do
	curl -sf "http://127.0.0.1:$MPORT/readyz" >/dev/null && break
	sleep 0.1
done

cat >"$WORK/post.lua" <<'EOF'
local f = io.open(os.getenv("BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
	io.write(string.format("p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  %.0f calls/s  (%d calls, %d errors)\n",
		latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
		latency.max / 1000, summary.requests / (summary.duration / 1e6), summary.requests,
		summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write +
		summary.errors.timeout))
end
EOF

echo "POST /scheduler/filter over TLS keep-alive, $CONNS connection(s), ${DURATION}s each (wrk${PIN_W:+, pinned})"
for b in names5000 nodes500 pool40; do
	size=$(stat -c %s "$WORK/$b.json")
	printf "  %-10s %8d bytes: " "$b" "$size"
	BODY="$WORK/$b.json" "${PIN_W[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" \
		"https://127.0.0.1:$PORT/scheduler/filter" | tail -1
done
