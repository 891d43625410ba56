#!/usr/bin/env bash
# fuzz_extender.sh: fuzz the scheduler extender's filter and prioritize
# handlers (tests/fuzz/fuzz_extender_filter.c) with libFuzzer for a while and
# print the executions and what was found. Not part of CI.
#
#   bench/fuzz_extender.sh [SECONDS]      (default 600; builds into build-fuzz/)
#
# The seed corpus is the extender fixtures, as the pass-through pod and as
# pool pods naming every kind of node the target's caches hold. Crashes and
# failed checks (an answer that is not JSON, a returned node name that was not
# sent) land in build-fuzz/fuzz-extender-artifacts/.
set -euo pipefail

SECONDS_TO_RUN=${1:-600}
REPO=$(cd "$(dirname "$0")/.." && pwd -P)
BUILD=${BUILD_FUZZ:-$REPO/build-fuzz}
CORPUS=$BUILD/fuzz-extender-corpus
ARTIFACTS=$BUILD/fuzz-extender-artifacts

command -v clang >/dev/null || { echo "fuzz_extender.sh: clang is needed (libFuzzer)" >&2; exit 2; }
CC=clang cmake -S "$REPO" -B "$BUILD" -DSTRATOS_FUZZ=ON -DSTRATOS_SANITIZE=ON \
	-DSTRATOS_WERROR=OFF -DSTRATOS_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_extender_filter >/dev/null

# Findings of an earlier run are kept aside, so what is counted below is this run's.
[ -d "$ARTIFACTS" ] && [ -n "$(ls -A "$ARTIFACTS")" ] && mv "$ARTIFACTS" "$ARTIFACTS.$(date +%s)"
mkdir -p "$CORPUS" "$ARTIFACTS"
python3 - "$REPO" "$CORPUS" <<'EOF'
import copy, json, sys
repo, out = sys.argv[1], sys.argv[2]
base = json.load(open(repo + "/tests/fixtures/extender/filter-args-nodenames.json"))
nodes = json.load(open(repo + "/tests/fixtures/extender/filter-args-nodes.json"))
def w(name, obj):
    with open("%s/%s" % (out, name), "w") as f:
        json.dump(obj, f)
w("nodenames-no-pool.json", dict(base, Pod=dict(base["Pod"], metadata=dict(base["Pod"]["metadata"], annotations={}))))
w("nodes-no-pool.json", dict(nodes, Pod=dict(nodes["Pod"], metadata=dict(nodes["Pod"]["metadata"], annotations={}))))
sets = [["usable", "standby", "starting", "plain", "ghost"], ["standby"], ["starting"], ["usable"], []]
for pool in ("ci", "ci-runners", "ci,gpu", "gone"):
    for i, names in enumerate(sets):
        b = copy.deepcopy(base)
        b["Pod"]["metadata"].update(uid="fuzz-uid", name="p", annotations={"stratos.sh/pool": pool})
        b["NodeNames"] = names
        w("names-%s-%d.json" % (pool.replace(",", "_"), i), b)
n = copy.deepcopy(nodes)
n["Pod"]["metadata"].update(uid="fuzz-uid", name="p", annotations={"stratos.sh/pool": "ci"})
w("nodes-ci.json", n)
EOF

LOG=$BUILD/fuzz-extender.log
t0=$(date +%s)
set +e
"$BUILD/fuzz_extender_filter" -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -timeout=10 \
	-print_final_stats=1 -artifact_prefix="$ARTIFACTS/" "$CORPUS" >"$LOG" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - t0 ))
execs=$(grep -E '^stat::number_of_executed_units' "$LOG" | awk '{print $2}')
speed=$(grep -E '^stat::average_exec_per_sec' "$LOG" | awk '{print $2}')
cov=$(grep -E '^#[0-9]+.*cov:' "$LOG" | tail -1 | sed -E 's/.*cov: ([0-9]+).*ft: ([0-9]+).*/cov \1, features \2/')
echo "fuzz_extender_filter: ${elapsed}s of ${SECONDS_TO_RUN}s, ${execs:-?} executions (${speed:-?}/s), ${cov:-?}," \
	"corpus $(ls "$CORPUS" | wc -l) inputs"
findings=$(ls "$ARTIFACTS" | wc -l)
echo "findings: $findings (exit $rc)${findings:+ in $ARTIFACTS}"
[ "$rc" -eq 0 ] || tail -40 "$LOG"
exit "$rc"
