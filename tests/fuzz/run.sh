#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan+UBSan) and runs each for a time
# budget on a corpus seeded from tests/fixtures, then prints executions and findings.
#   tests/fuzz/run.sh [-t SECONDS] [-b BUILD_DIR] [TARGET...]
#     -t   seconds per target (default 5); scripts/test uses a few, bench/fuzz.sh minutes
#     -b   build directory (default build-fuzz); corpora grow in BUILD_DIR/corpus/<target>
#          and crashes land in BUILD_DIR/findings/ (exit status 1 when a run found one)
# Exits 77 when clang cannot link -fsanitize=fuzzer (libclang-rt-dev missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
seconds=5
build=build-fuzz
while getopts t:b: opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	b) build=$OPTARG ;;
	*) sed -n '2,8p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

probe=$(mktemp -d /tmp/stratos-fuzzprobe-XXXXXX)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! command -v clang >/dev/null || ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
	echo "fuzz: clang with libFuzzer not available (apt-get install clang libclang-rt-dev); skipped"
	exit 77
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

# The fuzz build is its own: clang, sanitizers, no tests. Warnings are gcc's business.
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DSTRATOS_FUZZ=ON -DSTRATOS_SANITIZE=ON \
	-DSTRATOS_WERROR=OFF -DSTRATOS_BUILD_TESTS=OFF >/dev/null
mkdir -p "$build"
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build/build.log" 2>&1; then
	cat "$build/build.log" >&2
	exit 1
fi

# Seeds: the fixtures each parser meets in the tests, framed as the parser receives them.
seed() {   # seed TARGET NAME: writes standard input as one seed file
	mkdir -p "$build/corpus/$1"
	cat >"$build/corpus/$1/seed-$2"
}
kube_fixture_type() {   # the fuzz_kube_common.h type byte for a fixture
	case $(basename "$1") in pod*) printf '\x00' ;; node*) printf '\x01' ;; *) printf '\x02' ;; esac
}
for t in "${targets[@]}"; do
	mkdir -p "$build/corpus/$t" "$build/findings"
	case $t in
	fuzz_jsonscan)
		for f in tests/fixtures/*/*.json; do seed "$t" "$(basename "$f")" <"$f"; done ;;
	fuzz_admission)
		for f in tests/fixtures/admission/*.json; do seed "$t" "$(basename "$f")" <"$f"; done ;;
	fuzz_yamljson)
		for f in tests/fixtures/*.yaml tests/sim/fixtures/*.yaml manifests/*/*.yaml; do
			[ -f "$f" ] && seed "$t" "$(echo "$f" | tr / _)" <"$f"
		done
		printf 'a: &a [x, y]\nb: &b [*a, *a]\nc: [*b, *b]\n' | seed "$t" aliases ;;
	fuzz_kube_watch)
		for f in tests/fixtures/kube/*.json; do
			{ kube_fixture_type "$f"; printf '\x07{"type":"ADDED","object":'; cat "$f"
			  printf '}\n{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}}\n'
			  printf '{"type":"MODIFIED","object":'; cat "$f"; printf '}'
			  printf '{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}\n'
			} | seed "$t" "$(basename "$f")"
		done ;;
	fuzz_kube_list)
		for f in tests/fixtures/kube/*.json; do
			{ kube_fixture_type "$f"
			  printf '{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"c1"},"items":['
			  cat "$f"; printf ','; cat "$f"; printf ']}'
			} | seed "$t" "$(basename "$f")"
		done ;;
	esac
done

failed=0
for t in "${targets[@]}"; do
	log="$build/findings/$t.log"
	before=$(find "$build/findings" -name "$t-*" | wc -l)
	set +e
	(cd "$build" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"./$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="findings/$t-" "corpus/$t") >"$log" 2>&1
	rc=$?
	set -e
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	corpus=$(find "$build/corpus/$t" -type f | wc -l)
	found=$(( $(find "$build/findings" -name "$t-*" | wc -l) - before ))
	printf '%-18s %10s executions in %ss, corpus %s, findings %s\n' "$t" "${execs:-?}" \
		"$seconds" "$corpus" "$found"
	if [ $rc -ne 0 ] || [ "$found" -gt 0 ]; then
		failed=1
		echo "  $t failed (exit $rc); its log: $REPO/$log" >&2
		grep -m1 -E 'ERROR|==[0-9]+==|abort|differ|SUMMARY' "$log" | sed 's/^/  /' >&2 || true
		find "$build/findings" -name "$t-*" -newer "$build/corpus/$t" | sed 's/^/  finding: /' >&2
	fi
done
exit $failed
