#!/usr/bin/env bash
# Hash flooding, old tables vs new: builds bench_hash_collisions of this tree and of a
# baseline revision (default: the last one whose tables hashed names with unkeyed FNV-1a)
# and runs both. Prints ns per cache_get / intern_str for random pod and node names and for
# names chosen to collide under FNV-1a. Usage: bench/hash_collisions.sh [BASELINE_REV]
#   BUILD_DIR (default build/) must hold this tree's build (cmake --build build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
rev=${1:-}
if [ -z "$rev" ]; then
	# The commit that replaced FNV-1a in the tables; its parent is the old code.
	switch=$(git log -1 --format=%H -S'h *= 16777619u;' -- src/ || true)
	[ -n "$switch" ] || { echo "no FNV-1a commit found; give a BASELINE_REV" >&2; exit 2; }
	rev="$switch^"
fi
cmake --build "$build" --target bench_hash_collisions >/dev/null
dir=$(mktemp -d /tmp/stratos-hashbench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "== baseline: $(git log -1 --format='%h %s' "$rev" | cut -c1-80)"
git archive "$rev" | tar -x -C "$dir"
# The benchmark and its name generator come from this tree; they use only old APIs.
mkdir -p "$dir/bench" "$dir/tests/unit"
cp bench/hash_collisions.c "$dir/bench/"
cp tests/unit/hash_collide.h "$dir/tests/unit/"
cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir/build" -j"$(nproc)" --target bench_hash_collisions >/dev/null
"$dir/build/bench_hash_collisions"
echo
echo "== this tree: $(git log -1 --format='%h %s' | cut -c1-80)"
"$build/bench_hash_collisions"
