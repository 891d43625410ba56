#!/usr/bin/env bash
# Loads /admission/mutate-pod of stratosd with wrk over TLS keep-alive, and
# nginx answering a static JSON reply of the same size on the same machine,
# in the same run; prints requests/s, p50 and p99 for both and the ratio.
#
# usage: bench/webhook_vs_nginx.sh [-d SECONDS] [-c CONNECTIONS] [-r ROUNDS]
#   -d  seconds per measurement (default 10, after a 2 s warm-up)
#   -c  connections of the high-concurrency run (default 32)
#   -r  rounds (default 3): stratosd and nginx alternate, the median is shown,
#       so a burst of other work on a shared machine skews one round, not both
# env:  STRATOSD (default build/stratosd), BENCH_THREADS (server threads and
#       nginx workers, default 1: "one core's worth")
#
# Both servers are pinned to CPU 0 and wrk to CPU 1 when the machine has two
# or more CPUs, so each server gets one core and never competes with wrk.
# Prints figures; passes or fails nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
DURATION=10
CONNS=32
ROUNDS=3
while getopts "d:c:r:h" opt; do
	case $opt in
	d) DURATION=$OPTARG ;;
	c) CONNS=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	*) sed -n '2,18p' "$0"; exit 2 ;;
	esac
done
STRATOSD=${STRATOSD:-$REPO/build/stratosd}
THREADS=${BENCH_THREADS:-1}
FIXTURE=$REPO/tests/fixtures/admission/pod-create-pool.json
POOLS=$REPO/tests/fixtures/seed-examples.yaml

for tool in wrk nginx curl python3; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found (scripts/install-deps)" >&2; exit 1; }
done
[ -x "$STRATOSD" ] || { echo "bench: $STRATOSD not built (cmake --build build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/stratos-bench.XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	SERVER_CPU=(taskset -c 0)
	CLIENT_CPU=(taskset -c 1)
	PINNING="servers on CPU 0, wrk on CPU 1"
else
	SERVER_CPU=()
	CLIENT_CPU=()
	PINNING="no CPU pinning"
fi

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Certificates for the run (certs/gen.sh when the repository has it).
PYTHONPATH=$REPO/tests/integration python3 -c '
import sys, stratos_testlib as tl
tl.make_certs(sys.argv[1])' "$WORK"
CURL_TLS=(--cacert "$WORK/ca.crt" --resolve "localhost:0:127.0.0.1")

# stratosd on a port the kernel picks; its start-up line says which.
serve_args=(--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --tls-cert "$WORK/tls.crt"
	--tls-key "$WORK/tls.key" --threads "$THREADS" --log-level info)
ROUTE=/admission/mutate-pod
if "$STRATOSD" help 2>/dev/null | grep -q -- "--pools-file"; then
	serve_args+=(--pools-file "$POOLS")
fi
"${SERVER_CPU[@]}" "$STRATOSD" serve "${serve_args[@]}" 2>"$WORK/stratosd.log" &
PIDS+=($!)
for _ in $(seq 100); do
	grep -q '"stratosd serving' "$WORK/stratosd.log" && break
	sleep 0.05
done
PORT=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("msg", "").startswith("stratosd serving"):
        print(o["listen"].rsplit(":", 1)[1])' "$WORK/stratosd.log")
[ -n "$PORT" ] || { echo "bench: stratosd did not start:" >&2; cat "$WORK/stratosd.log" >&2; exit 1; }

# The reply nginx serves is stratosd's own reply to the same request.
status=$(curl -sS -o "$WORK/reply.json" -w '%{http_code}' --cacert "$WORK/ca.crt" \
	-H 'Content-Type: application/json' --data-binary "@$FIXTURE" \
	"https://localhost:$PORT$ROUTE" --resolve "localhost:$PORT:127.0.0.1")
METHOD=POST
NOTE="POST $ROUTE with tests/fixtures/admission/pod-create-pool.json"
if [ "$status" != 200 ]; then
	# Until the admission handlers are registered: measure the server alone.
	NOTE="$ROUTE answered $status (admission handlers not registered in this build):
  measuring GET /healthz instead, so the figures are the server's, not the webhook's"
	ROUTE=/healthz
	METHOD=GET
	curl -sS -o "$WORK/reply.json" --cacert "$WORK/ca.crt" \
		"https://localhost:$PORT$ROUTE" --resolve "localhost:$PORT:127.0.0.1"
fi
if [ "$METHOD" = POST ] && ! grep -q '"patchType":"JSONPatch"' "$WORK/reply.json"; then
	NOTE="$NOTE
  (warning: the reply carries no patch: is the fixture's pool in --pools-file?)"
fi
REPLY_BYTES=$(wc -c <"$WORK/reply.json")

# nginx: foreground, own prefix and config, same certificate, keep-alive.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/logs"
python3 - "$WORK" "$NGINX_PORT" "$ROUTE" "$THREADS" <<'PY'
import sys
work, port, route, workers = sys.argv[1:5]
body = open(work + "/reply.json").read()
quoted = body.replace("\\", "\\\\").replace("'", "\\'")
conf = f"""
daemon off;
master_process on;
worker_processes {workers};
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx/body;
    proxy_temp_path {work}/nginx/proxy;
    fastcgi_temp_path {work}/nginx/fastcgi;
    uwsgi_temp_path {work}/nginx/uwsgi;
    scgi_temp_path {work}/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_max_body_size 4m;
    client_body_buffer_size 64k;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {work}/tls.crt;
        ssl_certificate_key {work}/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = {route} {{
            default_type application/json;
            return 200 '{quoted}';
        }}
    }}
}}
"""
open(work + "/nginx/nginx.conf", "w").write(conf)
PY
"${SERVER_CPU[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" &
PIDS+=($!)
for _ in $(seq 100); do
	curl -s -o /dev/null --cacert "$WORK/ca.crt" --resolve "localhost:$NGINX_PORT:127.0.0.1" \
		-X "$METHOD" "https://localhost:$NGINX_PORT$ROUTE" && break
	sleep 0.05
done
NGINX_BYTES=$(curl -sS --cacert "$WORK/ca.crt" --resolve "localhost:$NGINX_PORT:127.0.0.1" \
	-X "$METHOD" -H 'Content-Type: application/json' --data-binary "@$FIXTURE" \
	"https://localhost:$NGINX_PORT$ROUTE" | wc -c)

cat >"$WORK/bench.lua" <<'LUA'
-- POSTs (or GETs) one body over keep-alive; prints one machine-readable line.
local method = os.getenv("BENCH_METHOD") or "POST"
wrk.method = method
if method == "POST" then
	local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
	wrk.body = f:read("*a")
	f:close()
	wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT %.1f %d %d %d %d %d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99), latency.max,
		e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

# run NAME PORT CONNECTIONS -> "rps p50_us p99_us max_us errors non2xx"
run() {
	local port=$2 conns=$3 url
	url="https://127.0.0.1:$port$ROUTE"
	BENCH_METHOD=$METHOD BENCH_BODY=$FIXTURE "${CLIENT_CPU[@]}" \
		wrk -t1 -c"$conns" -d2s -s "$WORK/bench.lua" "$url" >/dev/null
	BENCH_METHOD=$METHOD BENCH_BODY=$FIXTURE "${CLIENT_CPU[@]}" \
		wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$WORK/bench.lua" "$url" |
		awk '/^RESULT/ { print $2, $3, $4, $5, $6, $7 }'
}

# median VALUES... (numbers)
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "stratosd webhook vs nginx static reply (TLS, keep-alive, wrk -t1)"
echo "  request:  $NOTE"
echo "  reply:    stratosd $REPLY_BYTES bytes, nginx $NGINX_BYTES bytes"
echo "  servers:  stratosd --threads $THREADS, nginx worker_processes $THREADS; $PINNING"
echo "  runs:     ${DURATION}s each after 2s warm-up, $ROUNDS rounds, medians shown"
echo "  load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average before the runs)"
echo
printf '%-10s %6s %12s %10s %10s %10s %8s\n' server conns "requests/s" "p50 ms" "p99 ms" "max ms" errors
declare -A RPS P50 P99 MAX ERRS
for conns in 1 "$CONNS"; do
	for round in $(seq "$ROUNDS"); do
		for name in stratosd nginx; do
			port=$PORT
			[ $name = nginx ] && port=$NGINX_PORT
			read -r rps p50 p99 max errs non2xx < <(run "$name" "$port" "$conns")
			k=$name.$conns
			RPS[$k]="${RPS[$k]:-} $rps"
			P50[$k]="${P50[$k]:-} $p50"
			P99[$k]="${P99[$k]:-} $p99"
			MAX[$k]="${MAX[$k]:-} $max"
			ERRS[$k]=$(( ${ERRS[$k]:-0} + errs + non2xx ))
		done
	done
	for name in stratosd nginx; do
		k=$name.$conns
		# shellcheck disable=SC2086
		printf '%-10s %6d %12.0f %10.3f %10.3f %10.3f %8s\n' "$name" "$conns" \
			"$(median ${RPS[$k]})" "$(echo "$(median ${P50[$k]}) / 1000" | bc -l)" \
			"$(echo "$(median ${P99[$k]}) / 1000" | bc -l)" \
			"$(echo "$(median ${MAX[$k]}) / 1000" | bc -l)" "${ERRS[$k]}"
	done
done
echo
for conns in 1 "$CONNS"; do
	# shellcheck disable=SC2086
	printf 'throughput ratio stratosd/nginx at %d connection(s): %.2f (rounds:%s vs%s)\n' \
		"$conns" "$(echo "$(median ${RPS[stratosd.$conns]}) / $(median ${RPS[nginx.$conns]})" | bc -l)" \
		"${RPS[stratosd.$conns]}" "${RPS[nginx.$conns]}"
done
