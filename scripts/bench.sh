#!/usr/bin/env bash
# The benchmark: checks the dependencies (scripts/deps.sh --bench), builds
# mementos-bench (Release, in build/bench-release), runs it, and keeps its CSV
# in bench/results/latest.csv; prints the machine's CPU and a verdict line
# per hit-path target (bench/verdict.sh); then, when bench/plot.sh is there,
# turns the CSV into a plot and a Markdown table next to it.
#
# Usage: scripts/bench.sh [MEMENTOS-BENCH ARGUMENTS...]
#
# Without arguments the benchmark runs with --quick (under a minute on two
# cores); give arguments to choose (no --quick: the full run, some minutes):
#   scripts/bench.sh --impl mementos,floor --workload hot,uniform
# --help and --list only print what mementos-bench says and keep no results.
#
# Dependency and build messages and the benchmark's progress go to stderr;
# stdout carries the CSV.  A failed run (an implementation that created a
# key twice, a crash) leaves its partial CSV in bench/results/failed.csv and
# latest.csv as it was, and exits nonzero.  Works from any directory.
#
# The build directory is build/bench-release and not build/bench: the
# README's `cmake -S . -B build` puts the bench folder of its own tree there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=build/bench-release
bench=$dir/bench/mementos-bench
results=bench/results

args=("$@")
if [[ ${#args[@]} -eq 0 ]]; then
	args=(--quick)
fi

{
	scripts/deps.sh --bench
	cmake -S . -B "$dir" \
		-DCMAKE_BUILD_TYPE=Release \
		-DMEMENTOS_SANITIZE= \
		-DMEMENTOS_BUILD_TESTS=OFF \
		-DMEMENTOS_BUILD_BENCH=ON \
		-DMEMENTOS_BUILD_PYTHON=OFF
	cmake --build "$dir" --target mementos-bench -j "$(nproc 2>/dev/null || echo 2)"
} >&2

if [[ ! -x $bench ]]; then
	printf 'bench.sh: the build did not produce %s\n' "$bench" >&2
	exit 1
fi

for arg in "${args[@]}"; do
	case $arg in
	--help | -h | --list) exec "$bench" "${args[@]}" ;;
	*) ;;
	esac
done

mkdir -p "$results"
partial=$results/partial.csv
printf 'bench.sh: running %s %s\n' "$bench" "${args[*]}" >&2
status=0
"$bench" "${args[@]}" >"$partial" || status=$?
if [[ $status -ne 0 ]]; then
	mv -f "$partial" "$results/failed.csv"
	printf 'bench.sh: mementos-bench failed (status %d); its output is in %s\n' \
		"$status" "$results/failed.csv" >&2
	exit "$status"
fi
mv -f "$partial" "$results/latest.csv"
cat "$results/latest.csv"
printf 'bench.sh: wrote %s\n' "$results/latest.csv" >&2

# The machine and one line per hit-path target, read from the CSV.
bench/verdict.sh "$results/latest.csv" >&2 || true

if [[ -x bench/plot.sh ]]; then
	if ! bench/plot.sh "$results/latest.csv" >&2; then
		printf 'bench.sh: bench/plot.sh failed; the CSV is in %s\n' "$results/latest.csv" >&2
		exit 1
	fi
else
	printf 'bench.sh: no executable bench/plot.sh: no plot\n' >&2
fi
