#!/usr/bin/env bash
# Runs the full test suite (scripts/test: build, unit + integration, again under ASan+UBSan,
# valgrind, fuzz) N times in a row and reports, per test, how many runs it failed in: a
# flaky test shows up as failing some runs, not all. Usage: bench/suite_repeat.sh [-q] N
#   -q   scripts/test --quick (one build, no sanitizer, valgrind or fuzz pass)
# Logs: /tmp/stratos-suite-repeat-XXXXXX/run-<i>.log. Exit status 1 when any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
if [ "${1:-}" = "-q" ]; then
	quick=(--quick)
	shift
fi
n=${1:-}
case $n in
''|*[!0-9]*) sed -n '2,6p' "$0" >&2; exit 2 ;;
esac

logs=$(mktemp -d /tmp/stratos-suite-repeat-XXXXXX)
declare -A fails=()
failed_runs=0
for i in $(seq 1 "$n"); do
	t0=$(date +%s)
	rc=0
	scripts/test "${quick[@]}" >"$logs/run-$i.log" 2>&1 || rc=$?
	# Each failure as "pass: test", the pass being scripts/test's current "=== step".
	mapfile -t bad < <(awk '
		/^=== / { step = substr($0, 5); sub(/^\[[0-9]+s\] /, "", step) }
		/^The following tests FAILED:/ { infail = 1; next }
		infail && /^[ \t]+[0-9]+ - / { sub(/^[ \t]+[0-9]+ - /, ""); sub(/ \(.*\)$/, "");
			print step ": " $0; next }
		infail { infail = 0 }
		/^valgrind: .* failed/ { print "valgrind: " $2 }
		/ failed \(exit [0-9]+\); its log:/ { print "fuzz: " $1 }
	' "$logs/run-$i.log" | sort -u)
	if [ "$rc" -ne 0 ] && [ ${#bad[@]} -eq 0 ]; then
		bad=("scripts/test itself (exit $rc, see $logs/run-$i.log)")
	fi
	for t in "${bad[@]}"; do
		fails[$t]=$(( ${fails[$t]:-0} + 1 ))
	done
	[ "$rc" -eq 0 ] || failed_runs=$((failed_runs + 1))
	printf 'run %d/%d: %s in %ds%s\n' "$i" "$n" "$([ "$rc" -eq 0 ] && echo passed || echo FAILED)" \
		$(( $(date +%s) - t0 )) "$([ ${#bad[@]} -gt 0 ] && printf ' (%d failing)' ${#bad[@]})"
done

echo
if [ ${#fails[@]} -eq 0 ]; then
	echo "suite_repeat: $n of $n runs passed; no test failed (logs in $logs)"
	echo "$n passed, 0 failed"
	exit 0
fi
echo "suite_repeat: $failed_runs of $n runs failed; failures per test (logs in $logs):"
for t in "${!fails[@]}"; do
	printf '  %d/%d  %s\n' "${fails[$t]}" "$n" "$t"
done | sort -rn
echo "$((n - failed_runs)) passed, $failed_runs failed"
exit 1
