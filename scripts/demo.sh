#!/usr/bin/env bash
# The main job, for now: checks the dependencies (scripts/deps.sh), builds
# mementos and its race demo (RelWithDebInfo, in build/demo) and runs
# build/demo/bench/mementos-race-demo with the arguments given to this script.
#
# Usage: scripts/demo.sh [DEMO ARGUMENTS...]
#
# Dependency and build messages go to stderr, so that stdout carries only what
# the demo prints.  The exit status is the demo's (or the failing step's).
# Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=build/demo
demo=$dir/bench/mementos-race-demo

{
	scripts/deps.sh
	cmake -S . -B "$dir" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DMEMENTOS_SANITIZE= \
		-DMEMENTOS_BUILD_TESTS=OFF \
		-DMEMENTOS_BUILD_BENCH=ON
	cmake --build "$dir" --target mementos-race-demo -j "$(nproc 2>/dev/null || echo 2)"
} >&2

if [[ ! -x $demo ]]; then
	printf 'demo.sh: the build did not produce %s\n' "$demo" >&2
	exit 1
fi
printf 'demo.sh: running %s%s\n' "$demo" "${*:+ $*}" >&2
exec "$demo" "$@"
