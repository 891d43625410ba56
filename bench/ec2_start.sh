#!/usr/bin/env bash
# StartInstances against the emulated EC2 (tests/sim/ec2sim.py): p50/p99 over a warm
# keep-alive connection vs a fresh connection per call, and SigV4 signing cost.
# Prints figures only. Usage: bench/ec2_start.sh [-n N] [--plain-http]
#   BUILD_DIR (default build/) must hold the built benchmark (cmake --build build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
n=200
sim_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	-n) n=$2; shift 2 ;;
	--plain-http) sim_args+=(--plain-http); shift ;;
	*) echo "usage: $0 [-n N] [--plain-http]" >&2; exit 2 ;;
	esac
done
# The program is ec2_start_bench, or bench_ec2_start_bench where bench/*.c is globbed.
prog=$build/ec2_start_bench
[ -x "$prog" ] || prog=$build/bench_ec2_start_bench
[ -x "$prog" ] || { echo "build $build/ec2_start_bench first (cmake --build $build)" >&2; exit 1; }
dir=$(mktemp -d /tmp/stratos-ec2bench-XXXXXX)
python3 tests/sim/ec2sim.py --dir "$dir" --pending-seconds 0.2 "${sim_args[@]}" 2>"$dir/ec2sim.log" &
sim=$!
trap 'kill "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do [ -f "$dir/ec2sim.port" ] && break; sleep 0.1; done
[ -f "$dir/ec2sim.port" ] || { echo "ec2sim did not start:" >&2; cat "$dir/ec2sim.log" >&2; exit 1; }
env -u AWS_SESSION_TOKEN -u AWS_PROFILE $(grep -v '^#' "$dir/ec2sim.env" | xargs) \
	AWS_EC2_METADATA_DISABLED=true "$prog" -n "$n"
