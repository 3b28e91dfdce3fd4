#!/usr/bin/env bash
# The test command: checks the dependencies (scripts/deps.sh --bench --fuzz),
# then configures, builds and runs the whole ctest suite three times, and
# fuzzes:
#
#   plain   RelWithDebInfo, with the benchmarks            build/ci-plain
#   asan    -DMEMENTOS_SANITIZE=address,undefined          build/ci-asan
#   tsan    -DMEMENTOS_SANITIZE=thread                     build/ci-tsan
#   fuzz    scripts/fuzz.sh: clang, ASan+UBSan, libFuzzer  build/ci-fuzz
#
# The plain build's ctest includes the benchmark's smoke run (every
# implementation and workload at tiny sizes, checking exactly-once creation),
# so it requires every compared library.  Every build runs the stress test
# (tests/stress.c) for MEMENTOS_STRESS_SECONDS (20).  The fuzz stage runs for
# FUZZ_SECONDS (60).
#
# Usage: scripts/test.sh [--plain]
#
#   --plain   only the plain build (quick check while developing)
#
# Stops at the first failure with a nonzero status; prints the elapsed seconds
# of each stage at the end either way.  Tests run one at a time (ctest -j1):
# the suites are multithreaded themselves.  Works from any directory.
#
# ASAN_OPTIONS, UBSAN_OPTIONS and TSAN_OPTIONS get defaults below only when
# they are not set already (even to empty); CC and CFLAGS reach CMake as usual
# on a build directory's first configuration.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

plain_only=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--plain) plain_only=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		exit 0
		;;
	*)
		printf 'test.sh: unknown argument: %s (try --help)\n' "$1" >&2
		exit 2
		;;
	esac
	shift
done

export ASAN_OPTIONS="${ASAN_OPTIONS-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS-halt_on_error=1:second_deadlock_stack=1}"

jobs=$(nproc 2>/dev/null || echo 2)

# ---- stages and the summary ----------------------------------------------------
stage_names=()
stage_seconds=()
stage_results=()
current=
current_start=0

begin_stage() {
	current=$1
	current_start=$SECONDS
	printf '\n'
	printf '=%.0s' {1..78}
	printf '\n==== %s\n' "$2"
	printf '=%.0s' {1..78}
	printf '\n'
}

end_stage() {
	stage_names+=("$current")
	stage_seconds+=($((SECONDS - current_start)))
	stage_results+=(ok)
	current=
}

summary() {
	local status=$? i
	if [[ -n $current ]]; then
		stage_names+=("$current")
		stage_seconds+=($((SECONDS - current_start)))
		stage_results+=(FAILED)
	fi
	printf '\n==== summary\n'
	for i in "${!stage_names[@]}"; do
		printf '  %-8s %-7s %5ss\n' "${stage_names[$i]}" "${stage_results[$i]}" "${stage_seconds[$i]}"
	done
	printf '  %-8s %-7s %5ss\n' total "$([[ $status -eq 0 ]] && echo ok || echo FAILED)" "$SECONDS"
}
trap summary EXIT

# ThreadSanitizer (GCC 12's) cannot start when the kernel randomises mmap with
# more than 28 bits; running the tests with address randomisation off avoids
# that.  Prints the command prefix to use, or nothing.
tsan_prefix() {
	local bits
	bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
	if [[ $bits -gt 28 ]] && setarch "$(uname -m)" -R true 2>/dev/null; then
		printf '%s\n' "setarch $(uname -m) -R"
	fi
}

# build_and_test NAME DIR SANITIZE BENCH [RUNNER...]
#   BENCH ON also builds the benchmarks, with every compared library required.
build_and_test() {
	local name=$1 dir=$2 sanitize=$3 bench=$4
	shift 4
	begin_stage "$name" "$name: configure, build and test in $dir${sanitize:+ (-fsanitize=$sanitize)}"
	case $sanitize in
	*address* | *undefined*) printf 'ASAN_OPTIONS=%s\nUBSAN_OPTIONS=%s\n' "$ASAN_OPTIONS" "$UBSAN_OPTIONS" ;;
	*thread*) printf 'TSAN_OPTIONS=%s\n' "$TSAN_OPTIONS" ;;
	*) ;;
	esac
	if [[ $# -gt 0 ]]; then
		printf 'tests run under: %s\n' "$*"
	fi
	cmake -S . -B "$dir" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DMEMENTOS_SANITIZE="$sanitize" \
		-DMEMENTOS_BUILD_TESTS=ON \
		-DMEMENTOS_BUILD_BENCH="$bench" \
		-DMEMENTOS_BENCH_REQUIRE_ALL="$bench"
	cmake --build "$dir" -j "$jobs"
	"$@" ctest --test-dir "$dir" --output-on-failure --no-tests=error -j1
	end_stage
}

begin_stage deps "deps: scripts/deps.sh --bench --fuzz"
if [[ $plain_only -eq 1 ]]; then
	scripts/deps.sh --bench
else
	scripts/deps.sh --bench --fuzz
fi
end_stage

# The plain build also builds the benchmarks and the demo, so that they keep
# compiling; the sanitizer builds only what the tests need.
build_and_test plain build/ci-plain "" ON
if [[ $plain_only -eq 0 ]]; then
	build_and_test asan build/ci-asan address,undefined OFF
	runner_text=$(tsan_prefix)
	read -r -a runner <<<"$runner_text"
	build_and_test tsan build/ci-tsan thread OFF "${runner[@]}"
	begin_stage fuzz "fuzz: scripts/fuzz.sh (${FUZZ_SECONDS:-60} s)"
	scripts/fuzz.sh
	end_stage
fi

printf '\ntest.sh: all stages passed\n'
