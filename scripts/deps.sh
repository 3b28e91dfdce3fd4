#!/usr/bin/env bash
# Makes sure the Debian packages that mementos needs are installed.
#
# Usage: scripts/deps.sh [--bench] [--fuzz]
#
#   --bench   also the packages the benchmarks compare against and plot with
#   --fuzz    also clang and libFuzzer, for scripts/fuzz.sh
#
# Checks each package with dpkg-query.  When none is missing it prints one
# line and exits 0.  When some are missing: as root, it runs `apt-get update`
# once and `apt-get install -y --no-install-recommends` on exactly those;
# otherwise it prints the command to run to stderr and exits 1.  Without
# dpkg-query and apt-get (not Debian or a derivative) it lists the Debian
# names of what is needed and exits 1.
#
# Targets Debian bookworm; works on a fresh machine.
set -euo pipefail

# ---- the package lists: the one place to change them -----------------------------
# Build and test: compilers (g++ only for the C++ compile check of the header;
# libc6-dev because gcc merely recommends it), CMake and pkg-config, and the
# libraries: Concurrency Kit, xxHash, LMDB (the store), hiredis (the Redis
# tier), and Criterion for the tests; lmdb-utils (mdb_stat, mdb_dump) for
# looking into a store by hand; redis-server, which the Redis tests start
# on a loopback port of their own; Python's development files and pytest,
# for the Python module (python/) and its tests, and Debian's debug
# interpreter, which runs them again with its refcount checks.
REQUIRED_PACKAGES=(
	cmake
	pkg-config
	make
	gcc
	g++
	libc6-dev
	libck-dev
	libxxhash-dev
	liblmdb-dev
	lmdb-utils
	libhiredis-dev
	redis-server
	libcriterion-dev
	python3-dev
	python3-pytest
	python3-dbg
)
# Benchmarks only (--bench): the libraries compared against, and plotting.
BENCH_PACKAGES=(
	libglib2.0-dev
	liburcu-dev
	libtbb-dev
	gnuplot-nox
)
# Fuzzing only (--fuzz): clang; its runtime libraries, which hold libFuzzer and
# clang's sanitizers (clang merely recommends them, and recommendations are not
# installed here); llvm for llvm-symbolizer, which turns the sanitizers' stack
# traces into file:line.  All three follow Debian's default LLVM (14 on
# bookworm), so they stay one version.
FUZZ_PACKAGES=(
	clang
	libclang-rt-dev
	llvm
)

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

packages=("${REQUIRED_PACKAGES[@]}")
what="build and test"
while [[ $# -gt 0 ]]; do
	case $1 in
	--bench)
		packages+=("${BENCH_PACKAGES[@]}")
		what="build, test and benchmark"
		;;
	--fuzz)
		packages+=("${FUZZ_PACKAGES[@]}")
		what="build, test and fuzz"
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		printf 'deps.sh: unknown argument: %s\n\n' "$1" >&2
		usage >&2
		exit 2
		;;
	esac
	shift
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	{
		printf 'deps.sh: no dpkg-query/apt-get here, so the packages cannot be checked.\n'
		printf 'mementos needs, by their Debian names (install the equivalents):\n'
		printf '  %s\n' "${packages[@]}"
	} >&2
	exit 1
fi

# Sets the array `missing` to the packages of "$@" that are not installed.
find_missing() {
	local pkg status
	missing=()
	for pkg in "$@"; do
		# Unknown packages make dpkg-query fail; known but absent ones report
		# "not-installed" (or "config-files" once removed).
		status=$(dpkg-query -W -f='${db:Status-Status}\n' "$pkg" 2>/dev/null || true)
		if ! grep -qx installed <<<"$status"; then
			missing+=("$pkg")
		fi
	done
}

find_missing "${packages[@]}"
if [[ ${#missing[@]} -eq 0 ]]; then
	printf 'deps.sh: everything needed to %s is installed.\n' "$what"
	exit 0
fi

if [[ $EUID -ne 0 ]]; then
	{
		printf 'deps.sh: missing packages: %s\n' "${missing[*]}"
		printf 'Install them with:\n'
		printf '  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n' \
			"${missing[*]}"
	} >&2
	exit 1
fi

printf 'deps.sh: installing: %s\n' "${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

find_missing "${missing[@]}"
if [[ ${#missing[@]} -ne 0 ]]; then
	printf 'deps.sh: still not installed after apt-get: %s\n' "${missing[*]}" >&2
	exit 1
fi
printf 'deps.sh: done.\n'
