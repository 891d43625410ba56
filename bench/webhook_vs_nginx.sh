#!/usr/bin/env bash
# Loads /admission/mutate-pod of stratosd with wrk over TLS keep-alive, and
# nginx answering a static JSON reply of the same size on the same machine,
# in the same run; prints requests/s, p50 and p99 for both and the ratio,
# then the latency of both at constant request rates (bench_constant_rate).
#
# usage: bench/webhook_vs_nginx.sh [-d SECONDS] [-c CONNECTIONS] [-r ROUNDS] [-g] [-q]
#   -d  seconds per measurement (default 10, after a 2 s warm-up)
#   -c  connections of the high-concurrency run (default 32)
#   -r  rounds (default 3): the servers alternate, the median is shown, so a
#       burst of other work on a shared machine skews one round, not all
#   -g  GET /healthz instead (nginx serves the same reply): the server's own
#       cost, without the webhook's
#   -q  closed-loop runs only (no constant-rate part)
# env:  STRATOSD (default build/stratosd), BENCH_THREADS (server threads and
#       nginx workers, default 1: "one core's worth"), BASELINE (another
#       stratosd binary, e.g. main's, measured in the same rounds as a third
#       server), CONSTANT_RATES (requests/s for the constant-rate part; default
#       25%, 50% and 75% of stratosd's closed-loop throughput)
#
# Both servers are pinned to CPU 0 and the clients to CPU 1 when the machine
# has two or more CPUs, so each server gets one core and never competes with
# its client. Prints figures; passes or fails nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
DURATION=10
CONNS=32
ROUNDS=3
HEALTHZ=0
QUICK=0
while getopts "d:c:r:gqh" opt; do
	case $opt in
	d) DURATION=$OPTARG ;;
	c) CONNS=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	g) HEALTHZ=1 ;;
	q) QUICK=1 ;;
	*) sed -n '2,25p' "$0"; exit 2 ;;
	esac
done
STRATOSD=${STRATOSD:-$REPO/build/stratosd}
RATE_CLIENT=${RATE_CLIENT:-$(dirname "$STRATOSD")/bench_constant_rate}
THREADS=${BENCH_THREADS:-1}
FIXTURE=$REPO/tests/fixtures/admission/pod-create-pool.json
POOLS=$REPO/tests/fixtures/seed-examples.yaml

# Tools only this benchmark needs are its own business, not scripts/install-deps': wrk
# from Debian when missing, and when there is no nginx, the binary of Debian's nginx
# package unpacked into build/bench-tools (apt-get download + dpkg-deb -x). Installing
# the package would start and enable a distribution nginx on :80; this way no service
# exists, and the nginx below is the one this script starts on its own port and stops.
[ -x "$REPO/.venv/bin/python3" ] && export PATH="$REPO/.venv/bin:$PATH"
if ! command -v wrk >/dev/null; then
	echo "bench: installing wrk (Debian package)" >&2
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >&2
fi
NGINX=$(command -v nginx || true)
if [ -z "$NGINX" ]; then
	NGINX=$REPO/build/bench-tools/usr/sbin/nginx
	if [ ! -x "$NGINX" ]; then
		echo "bench: unpacking Debian's nginx binary into build/bench-tools (no service installed)" >&2
		mkdir -p "$REPO/build/bench-tools/deb"
		(cd "$REPO/build/bench-tools/deb" && rm -f nginx_*.deb && apt-get download nginx >&2)
		dpkg-deb -x "$REPO"/build/bench-tools/deb/nginx_*.deb "$REPO/build/bench-tools"
	fi
fi
for tool in wrk "$NGINX" curl python3 openssl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done
for bin in "$STRATOSD" ${BASELINE:+"$BASELINE"}; do
	[ -x "$bin" ] || { echo "bench: $bin not built (cmake --build build)" >&2; exit 1; }
done
if [ $QUICK -eq 0 ] && [ ! -x "$RATE_CLIENT" ]; then
	echo "bench: $RATE_CLIENT not built (cmake --build build), or use -q" >&2
	exit 1
fi

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
	PINNING="servers on CPU 0, clients on CPU 1"
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

# start_stratosd NAME BINARY -> sets PORT_<NAME>
start_stratosd() {
	local name=$1 bin=$2 args port
	args=(--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --tls-cert "$WORK/tls.crt"
		--tls-key "$WORK/tls.key" --threads "$THREADS" --log-level info)
	if "$bin" help 2>/dev/null | grep -q -- "--pools-file"; then
		args+=(--pools-file "$POOLS")
	fi
	"${SERVER_CPU[@]}" "$bin" serve "${args[@]}" 2>"$WORK/$name.log" &
	PIDS+=($!)
	printf -v "PID_$name" '%s' "$!"
	for _ in $(seq 100); do
		grep -q '"stratosd serving' "$WORK/$name.log" && break
		sleep 0.05
	done
	port=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("msg", "").startswith("stratosd serving"):
        print(o["listen"].rsplit(":", 1)[1])' "$WORK/$name.log")
	[ -n "$port" ] || { echo "bench: $name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
	printf -v "PORT_$name" '%s' "$port"
}

SERVERS=(stratosd)
start_stratosd stratosd "$STRATOSD"
if [ -n "${BASELINE:-}" ]; then
	SERVERS+=(baseline)
	start_stratosd baseline "$BASELINE"
fi
PORT=$PORT_stratosd

ROUTE=/admission/mutate-pod
METHOD=POST
NOTE="POST $ROUTE with tests/fixtures/admission/pod-create-pool.json"
if [ $HEALTHZ -eq 0 ]; then
	# The reply nginx serves is stratosd's own reply to the same request.
	status=$(curl -sS -o "$WORK/reply.json" -w '%{http_code}' --cacert "$WORK/ca.crt" \
		-H 'Content-Type: application/json' --data-binary "@$FIXTURE" \
		"https://localhost:$PORT$ROUTE" --resolve "localhost:$PORT:127.0.0.1")
	if [ "$status" != 200 ]; then
		NOTE="$ROUTE answered $status (admission handlers not registered in this build):
  measuring GET /healthz instead, so the figures are the server's, not the webhook's"
		HEALTHZ=1
	elif ! grep -q '"patchType":"JSONPatch"' "$WORK/reply.json"; then
		NOTE="$NOTE
  (warning: the reply carries no patch: is the fixture's pool in --pools-file?)"
	fi
fi
if [ $HEALTHZ -eq 1 ]; then
	ROUTE=/healthz
	METHOD=GET
	NOTE="${NOTE:+$NOTE; }GET /healthz (the server alone)"
	curl -sS -o "$WORK/reply.json" --cacert "$WORK/ca.crt" \
		"https://localhost:$PORT$ROUTE" --resolve "localhost:$PORT:127.0.0.1"
fi
REPLY_BYTES=$(wc -c <"$WORK/reply.json")

# nginx: foreground, own prefix and config, same certificate, keep-alive.
PORT_nginx=$(free_port)
mkdir -p "$WORK/nginx/logs"
python3 - "$WORK" "$PORT_nginx" "$ROUTE" "$THREADS" <<'PY'
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
"${SERVER_CPU[@]}" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
	-c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr.log" &
PIDS+=($!)
PID_nginx=$!
for _ in $(seq 100); do
	curl -s -o /dev/null --cacert "$WORK/ca.crt" --resolve "localhost:$PORT_nginx:127.0.0.1" \
		-X "$METHOD" "https://localhost:$PORT_nginx$ROUTE" && break
	sleep 0.05
done
ALL=("${SERVERS[@]}" nginx)

# What each side sends back (header and body bytes) and the TLS it negotiates
# with an OpenSSL client (wrk and bench_constant_rate use OpenSSL too).
describe() {
	local name=$1 port sizes tls data=()
	port=PORT_$name
	port=${!port}
	[ "$METHOD" = POST ] && data=(-H 'Content-Type: application/json' --data-binary "@$FIXTURE")
	sizes=$(curl -sS -o /dev/null -w '%{size_header} %{size_download}' --cacert "$WORK/ca.crt" \
		--resolve "localhost:$port:127.0.0.1" -X "$METHOD" "${data[@]}" "https://localhost:$port$ROUTE")
	tls=$(openssl s_client -connect "127.0.0.1:$port" -brief </dev/null 2>&1 |
		awk -F': ' '/Protocol version/ { v = $2 } /Ciphersuite/ { c = $2 } /Server Temp Key/ { k = $2 }
			END { print v ", " c ", key exchange " k }')
	printf '  %-9s reply %s header + %s body bytes; TLS %s\n' "$name" ${sizes} "$tls"
}

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

# CPU time (clock ticks, user + system) of a server: every thread of the
# process and of its children (nginx's workers).
cpu_ticks() {
	local pid=$1 p t total=0
	for p in "$pid" $(pgrep -P "$pid" || true); do
		for t in /proc/"$p"/task/*/stat; do
			[ -r "$t" ] && total=$(( total + $(awk '{ print $14 + $15 }' "$t") ))
		done
	done
	echo "$total"
}

# run NAME CONNECTIONS -> "rps p50_us p99_us max_us errors non2xx cpu_us_per_request"
run() {
	local name=$1 conns=$2 port pid url t0 out
	port=PORT_$name
	pid=PID_$name
	url="https://127.0.0.1:${!port}$ROUTE"
	BENCH_METHOD=$METHOD BENCH_BODY=$FIXTURE "${CLIENT_CPU[@]}" \
		wrk -t1 -c"$conns" -d2s -s "$WORK/bench.lua" "$url" >/dev/null
	t0=$(cpu_ticks "${!pid}")
	out=$(BENCH_METHOD=$METHOD BENCH_BODY=$FIXTURE "${CLIENT_CPU[@]}" \
		wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$WORK/bench.lua" "$url" |
		awk '/^RESULT/ { print $2, $3, $4, $5, $6, $7 }')
	echo "$out" | awk -v ticks=$(( $(cpu_ticks "${!pid}") - t0 )) -v hz="$(getconf CLK_TCK)" \
		-v d="$DURATION" '{ print $0, ticks / hz * 1e6 / ($1 * d) }'
}

# rate_run PORT RATE -> "p50_us p99_us achieved errors"
rate_run() {
	local port=$1 rate=$2 body=()
	[ "$METHOD" = POST ] && body=(--body "$FIXTURE")
	"${CLIENT_CPU[@]}" "$RATE_CLIENT" --port "$port" --path "$ROUTE" "${body[@]}" --rate "$rate" \
		--duration "$DURATION" --warmup 2 --connections 16 |
		awk '/^RESULT/ { print $6, $8, $3, $5 }'
}

# median VALUES... (numbers)
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ms() { echo "$1 / 1000" | bc -l; }

echo "stratosd webhook vs nginx static reply (TLS, keep-alive)"
echo "  request:  $NOTE"
echo "  reply:    stratosd $REPLY_BYTES bytes of body; nginx serves the same bytes"
for name in "${ALL[@]}"; do describe "$name"; done
echo "  servers:  stratosd --threads $THREADS${BASELINE:+ (and baseline $BASELINE)}, nginx worker_processes $THREADS; $PINNING"
echo "  runs:     ${DURATION}s each after a warm-up, $ROUNDS rounds alternating the servers, medians shown"
echo "  load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average before the runs; the machine is shared)"
echo
echo "closed loop: wrk -t1, each connection sends its next request when the last is answered"
echo "(CPU us/request: the server's user + system CPU time over the run, all threads and workers,"
echo " divided by the requests answered: the cost per request, whatever else the core was doing)"
printf '%-10s %6s %12s %10s %10s %10s %8s %14s\n' server conns "requests/s" "p50 ms" "p99 ms" "max ms" errors \
	"CPU us/request"
declare -A RPS P50 P99 MAX ERRS CPU
for conns in 1 "$CONNS"; do
	for round in $(seq "$ROUNDS"); do
		for name in "${ALL[@]}"; do
			read -r rps p50 p99 max errs non2xx cpu < <(run "$name" "$conns")
			k=$name.$conns
			RPS[$k]="${RPS[$k]:-} $rps"
			P50[$k]="${P50[$k]:-} $p50"
			P99[$k]="${P99[$k]:-} $p99"
			MAX[$k]="${MAX[$k]:-} $max"
			CPU[$k]="${CPU[$k]:-} $cpu"
			ERRS[$k]=$(( ${ERRS[$k]:-0} + errs + non2xx ))
		done
	done
	for name in "${ALL[@]}"; do
		k=$name.$conns
		# shellcheck disable=SC2086
		printf '%-10s %6d %12.0f %10.3f %10.3f %10.3f %8s %14.1f\n' "$name" "$conns" \
			"$(median ${RPS[$k]})" "$(ms "$(median ${P50[$k]})")" "$(ms "$(median ${P99[$k]})")" \
			"$(ms "$(median ${MAX[$k]})")" "${ERRS[$k]}" "$(median ${CPU[$k]})"
	done
done
echo
for conns in 1 "$CONNS"; do
	for name in "${SERVERS[@]}"; do
		# shellcheck disable=SC2086
		printf 'throughput ratio %s/nginx at %d connection(s): %.2f (rounds:%s vs%s)\n' \
			"$name" "$conns" "$(echo "$(median ${RPS[$name.$conns]}) / $(median ${RPS[nginx.$conns]})" | bc -l)" \
			"${RPS[$name.$conns]}" "${RPS[nginx.$conns]}"
	done
done
for name in "${SERVERS[@]}"; do
	# shellcheck disable=SC2086
	printf 'CPU-cost ratio nginx/%s at %d connections (throughput each would reach alone on a core): %.2f\n' \
		"$name" "$CONNS" "$(echo "$(median ${CPU[nginx.$CONNS]}) / $(median ${CPU[$name.$CONNS]})" | bc -l)"
done
[ $QUICK -eq 1 ] && exit 0

# Constant rate: latency as the API server would see it at a given load,
# counted from when each request was due (a stalled server is not hidden by
# a client that waits for it). Rates are fractions of stratosd's capacity.
# shellcheck disable=SC2086
CAP=$(median ${RPS[stratosd.$CONNS]})
RATES=${CONSTANT_RATES:-$(awk -v c="$CAP" 'BEGIN { printf "%d %d %d", c * 0.25, c * 0.5, c * 0.75 }')}
echo
echo "constant rate: bench_constant_rate, 16 connections, ${DURATION}s after 2s, latency from the scheduled send"
echo "(stratosd's closed-loop capacity above: $CAP requests/s at $CONNS connections)"
printf '%-10s %10s %12s %10s %10s %8s\n' server "rate/s" "achieved/s" "p50 ms" "p99 ms" errors
declare -A RP50 RP99 RACH RERR
for rate in $RATES; do
	for round in $(seq "$ROUNDS"); do
		for name in "${ALL[@]}"; do
			port=PORT_$name
			read -r p50 p99 achieved errs < <(rate_run "${!port}" "$rate")
			k=$name.$rate
			RP50[$k]="${RP50[$k]:-} $p50"
			RP99[$k]="${RP99[$k]:-} $p99"
			RACH[$k]="${RACH[$k]:-} $achieved"
			RERR[$k]=$(( ${RERR[$k]:-0} + errs ))
		done
	done
	for name in "${ALL[@]}"; do
		k=$name.$rate
		# shellcheck disable=SC2086
		printf '%-10s %10d %12.0f %10.3f %10.3f %8s   (p99 rounds:%s)\n' "$name" "$rate" \
			"$(median ${RACH[$k]})" "$(ms "$(median ${RP50[$k]})")" "$(ms "$(median ${RP99[$k]})")" \
			"${RERR[$k]}" "${RP99[$k]}"
	done
done
