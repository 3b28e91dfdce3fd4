#!/usr/bin/env bash
# Fuzzes the library: checks the dependencies (scripts/deps.sh --fuzz), then
# configures and builds build/ci-fuzz with clang, -DMEMENTOS_SANITIZE=
# address,undefined and -DMEMENTOS_BUILD_FUZZ=ON, and runs the libFuzzer
# harness (tests/fuzz/fuzz_ops.c) for FUZZ_SECONDS seconds, starting from a
# copy of the seed corpus (tests/fuzz/corpus stays as committed).
#
# Usage: scripts/fuzz.sh [--corpus-only]
#
#   --corpus-only   only run each seed of tests/fuzz/corpus once (a regression
#                   check of a few seconds)
#
# libFuzzer's own progress goes to build/ci-fuzz/fuzz-run/fuzz.log (and
# fuzz-record.log); a failure prints the log's last 40 lines.
# The last line says what happened, for example
#   fuzz: 812345 executions in 60 s, 0 crashes (13539/s; corpus 35 -> 410 inputs)
# The exit status is nonzero when the harness found a crash, a leak, undefined
# behaviour or a broken invariant; the input that did it is saved under
# build/ci-fuzz/fuzz-run/ (crash-*, leak-*, timeout-*) and its path printed.
# Replay it with: build/ci-fuzz/tests/fuzz/mementos-fuzz-ops FILE (add
# FUZZ_OPS_TRACE=1 to see each call).
#
# Environment:
#   FUZZ_SECONDS   how long to fuzz the operations (default 60)
#   FUZZ_RECORD_SECONDS  then how long to fuzz the store's record decoder
#                  (tests/fuzz/fuzz_record.c; default 10, from an empty corpus)
#   FUZZ_ARGS      more libFuzzer options, e.g. "-seed=1 -jobs=2"
#   ASAN_OPTIONS, UBSAN_OPTIONS   get defaults only when not set already
#
# Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

corpus_only=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--corpus-only) corpus_only=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		exit 0
		;;
	*)
		printf 'fuzz.sh: unknown argument: %s (try --help)\n' "$1" >&2
		exit 2
		;;
	esac
	shift
done

seconds=${FUZZ_SECONDS:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
	printf 'fuzz.sh: FUZZ_SECONDS must be a positive number of seconds, not "%s"\n' "$seconds" >&2
	exit 2
fi
read -r -a extra_args <<<"${FUZZ_ARGS:-}"

# As scripts/test.sh; detect_leaks is also libFuzzer's default under ASan.
export ASAN_OPTIONS="${ASAN_OPTIONS-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS-print_stacktrace=1:halt_on_error=1}"

dir=build/ci-fuzz
run=$dir/fuzz-run
bin=$dir/tests/fuzz/mementos-fuzz-ops
seeds=tests/fuzz/corpus

scripts/deps.sh --fuzz

# CMAKE_C_COMPILER as well as CC: a directory first configured with another
# compiler is then reconfigured for clang instead of failing.
CC=clang cmake -S . -B "$dir" \
	-DCMAKE_C_COMPILER=clang \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DMEMENTOS_SANITIZE=address,undefined \
	-DMEMENTOS_BUILD_TESTS=OFF \
	-DMEMENTOS_BUILD_BENCH=OFF \
	-DMEMENTOS_BUILD_PYTHON=OFF \
	-DMEMENTOS_BUILD_FUZZ=ON
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" --target mementos-fuzz-ops \
	--target mementos-fuzz-record

printf 'ASAN_OPTIONS=%s\nUBSAN_OPTIONS=%s\n' "$ASAN_OPTIONS" "$UBSAN_OPTIONS"
rm -rf "$run"
mkdir -p "$run"
log=$run/fuzz.log

# Prints the path of the input that failed, if libFuzzer saved one.
# libFuzzer's progress goes to $log only; a failure shows its tail.
report_failure() {
	local artifact
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
	printf 'fuzz: the last 40 lines of %s:\n' "$log"
	tail -n 40 "$log"
	printf 'fuzz: FAILED%s\n' "${artifact:+; the input: $artifact}"
}

if [[ $corpus_only -eq 1 ]]; then
	files=("$seeds"/*)
	# Given files rather than a directory, libFuzzer runs each once and
	# writes nothing.
	if ! "$bin" "${extra_args[@]}" "${files[@]}" >"$log" 2>&1; then
		report_failure
		exit 1
	fi
	printf 'fuzz: %d corpus inputs ran once each, 0 crashes\n' "${#files[@]}"
	exit 0
fi

cp -R "$seeds" "$run/corpus"
seeds_n=$(find "$run/corpus" -type f | wc -l)
start=$SECONDS
# max_len: the seeds are at most a few hundred bytes, and MAX_OPS bounds the
# work of any input; timeout: one input takes milliseconds, so 10 s is a hang.
status=0
"$bin" "$run/corpus" \
	-max_total_time="$seconds" \
	-max_len=4096 \
	-timeout=10 \
	-rss_limit_mb=2048 \
	-print_final_stats=1 \
	-artifact_prefix="$run/" \
	"${extra_args[@]}" >"$log" 2>&1 || status=$?
elapsed=$((SECONDS - start))

final_stat() {
	sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$log" | tail -n 1
}
execs=$(final_stat number_of_executed_units)
rate=$(final_stat average_exec_per_sec)
corpus_n=$(find "$run/corpus" -type f | wc -l)

if [[ $status -ne 0 ]]; then
	printf 'fuzz: %s executions in %s s\n' "${execs:-?}" "$elapsed"
	report_failure
	exit 1
fi
printf 'fuzz: %s executions in %s s, 0 crashes (%s/s; corpus %s -> %s inputs)\n' \
	"${execs:-?}" "$elapsed" "${rate:-?}" "$seeds_n" "$corpus_n"

# The store's record decoder: random bytes, and records with one bit flipped.
record_seconds=${FUZZ_RECORD_SECONDS:-10}
mkdir -p "$run/record-corpus"
log=$run/fuzz-record.log
status=0
"$dir/tests/fuzz/mementos-fuzz-record" "$run/record-corpus" \
	-max_total_time="$record_seconds" \
	-max_len=4096 \
	-timeout=10 \
	-print_final_stats=1 \
	-artifact_prefix="$run/record-" >"$log" 2>&1 || status=$?
if [[ $status -ne 0 ]]; then
	report_failure
	exit 1
fi
printf 'fuzz: record decoder: %s executions in %s s, 0 crashes\n' \
	"$(final_stat number_of_executed_units)" "$record_seconds"
