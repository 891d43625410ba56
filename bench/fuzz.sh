#!/usr/bin/env bash
# The fuzz targets for longer: each runs for a budget (default 10 minutes) on the corpus that
# earlier runs grew in build-fuzz/corpus/, then prints executions, corpus size and findings.
# Usage: bench/fuzz.sh [-t SECONDS_PER_TARGET] [TARGET...]   (targets: tests/fuzz/fuzz_*.c)
# A finding is a crash, leak, timeout or failed check: its input is in build-fuzz/findings/;
# reproduce with build-fuzz/<target> <file>. Exit status 1 when anything was found.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600
while getopts t: opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	*) sed -n '2,6p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
exec tests/fuzz/run.sh -t "$seconds" -b build-fuzz "$@"
