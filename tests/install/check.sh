#!/usr/bin/env bash
# Proves that an installed copy of mementos is usable by a program outside the
# source tree.
#
# Usage: tests/install/check.sh SOURCE_DIR BUILD_DIR SCRATCH_DIR [CONFIG]
#
#   SOURCE_DIR   the mementos source tree (for tests/install/consumer*)
#   BUILD_DIR    a configured and built mementos build tree
#   SCRATCH_DIR  a directory this script owns; it deletes and recreates its
#                subdirectories prefix/, pkg-config/ and cmake-consumer/
#   CONFIG       optional build configuration, for multi-config generators
#
# Environment (all optional): CMAKE (default: cmake), CC (default: cc),
# PKG_CONFIG (default: pkg-config).  DESTDIR is ignored (unset).
#
# Steps:
#   1. cmake --install BUILD_DIR --prefix SCRATCH_DIR/prefix
#   2. CMake: configures tests/install/consumer/ (find_package(mementos 0.1),
#      mementos::mementos and mementos::mementos_static) with
#      CMAKE_PREFIX_PATH=SCRATCH_DIR/prefix, builds it and runs both programs.
#   3. pkg-config: builds tests/install/consumer.c with
#      `$(pkg-config --cflags --libs mementos)` against the shared library and
#      runs it with LD_LIBRARY_PATH at the prefix; then links it fully
#      statically with `pkg-config --static` (so libmementos.a and every
#      Requires.private/Libs.private entry must be right) and runs that.
#
# Exit status: 0 when every step passes; 77 (ctest: skipped) when the CMake
# step passed but the pkg-config step could not run because the prefix path
# contains whitespace, which pkg-config output cannot express; 1 otherwise.
set -euo pipefail

die() {
	printf 'install check: FAILED: %s\n' "$*" >&2
	exit 1
}

step() {
	printf '\n==== install check: %s\n' "$*"
}

# Runs a program and fails unless it exits 0.
run_consumer() {
	local what=$1
	shift
	printf -- '-- running %s: %s\n' "$what" "$*"
	"$@" || die "$what exited with status $?"
}

# Fails unless the ELF file $1 has (want=yes) or lacks (want=no) a NEEDED entry
# for libmementos.
check_needed() {
	local file=$1 want=$2 dyn
	dyn=$(readelf -d "$file" 2>/dev/null || true)
	if grep -q 'NEEDED.*\[libmementos\.so' <<<"$dyn"; then
		[[ $want == yes ]] || die "$file is linked to the shared libmementos, expected the static one"
	else
		[[ $want == no ]] || die "$file is not linked to the shared libmementos"
	fi
}

if [[ $# -lt 3 || $# -gt 4 ]]; then
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 1
fi

src=$(cd "$1" && pwd) || die "no source directory $1"
build=$(cd "$2" && pwd) || die "no build directory $2"
mkdir -p "$3"
scratch=$(cd "$3" && pwd)
config=${4:-}
: "${CMAKE:=cmake}" "${CC:=cc}" "${PKG_CONFIG:=pkg-config}"
unset DESTDIR

[[ -f $src/tests/install/consumer.c ]] || die "$src is not the mementos source tree"
[[ -f $build/cmake_install.cmake ]] || die "$build is not a configured build tree"

prefix=$scratch/prefix
rm -rf -- "$prefix" "$scratch/pkg-config" "$scratch/cmake-consumer"
mkdir -p -- "$scratch/pkg-config"

# ---- 1. install ---------------------------------------------------------------
step "installing $build into $prefix"
"$CMAKE" --install "$build" --prefix "$prefix" ${config:+--config "$config"}

# GNUInstallDirs picks lib, lib64 or lib/<multiarch>: find where it went.
libdir=
for dir in "$prefix"/lib "$prefix"/lib64 "$prefix"/lib/*-*; do
	if [[ -f $dir/pkgconfig/mementos.pc ]]; then
		[[ -z $libdir ]] || die "mementos.pc installed twice: $libdir and $dir"
		libdir=$dir
	fi
done
[[ -n $libdir ]] || die "no mementos.pc under $prefix"
for file in "$prefix/include/mementos.h" "$libdir/libmementos.a" "$libdir/libmementos.so" \
	"$libdir/cmake/mementos/mementosConfig.cmake" \
	"$libdir/cmake/mementos/mementosConfigVersion.cmake"; do
	[[ -e $file ]] || die "not installed: $file"
done
printf -- '-- library directory: %s\n' "$libdir"

# ---- 2. the CMake package -------------------------------------------------------
step "CMake: find_package(mementos 0.1) with CMAKE_PREFIX_PATH=$prefix"
cbuild=$scratch/cmake-consumer
# The package registry could hand back some other copy of mementos: ignore it.
"$CMAKE" -S "$src/tests/install/consumer" -B "$cbuild" \
	-DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
	-DCMAKE_BUILD_TYPE="${config:-RelWithDebInfo}"
found=$(sed -n 's/^mementos_DIR:[A-Z]*=//p' "$cbuild/CMakeCache.txt")
[[ $found == "$libdir/cmake/mementos" ]] ||
	die "find_package found mementos in '$found', not in $libdir/cmake/mementos"
"$CMAKE" --build "$cbuild" --config "${config:-RelWithDebInfo}"

exe_dir=$cbuild/bin # whatever the generator: see consumer/CMakeLists.txt
check_needed "$exe_dir/consumer_shared" yes
check_needed "$exe_dir/consumer_static" no
# No LD_LIBRARY_PATH: the imported target must be enough to find the library.
run_consumer "CMake consumer (mementos::mementos)" env -u LD_LIBRARY_PATH "$exe_dir/consumer_shared"
run_consumer "CMake consumer (mementos::mementos_static)" env -u LD_LIBRARY_PATH "$exe_dir/consumer_static"

# ---- 3. pkg-config ---------------------------------------------------------------
if [[ $prefix =~ [[:space:]] ]]; then
	printf '\ninstall check: SKIPPED the pkg-config step: the prefix %s contains whitespace, which pkg-config output cannot carry\n' "$prefix" >&2
	exit 77
fi

export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
step "pkg-config: PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
pc_prefix=$("$PKG_CONFIG" --variable=prefix mementos)
[[ $pc_prefix == "$prefix" ]] || die "mementos.pc says prefix=$pc_prefix, but it was installed to $prefix"
pc_version=$("$PKG_CONFIG" --modversion mementos)
printf -- '-- mementos.pc: version %s\n' "$pc_version"

# Split pkg-config's output into words (the prefix has no whitespace); each
# call stands alone so that set -e sees it fail.
cflags_text=$("$PKG_CONFIG" --cflags mementos)
libs_text=$("$PKG_CONFIG" --libs mementos)
static_cflags_text=$("$PKG_CONFIG" --static --cflags mementos)
static_libs_text=$("$PKG_CONFIG" --static --libs mementos)
read -r -a cflags <<<"$cflags_text"
read -r -a libs <<<"$libs_text"
read -r -a static_cflags <<<"$static_cflags_text"
read -r -a static_libs <<<"$static_libs_text"
warnings=(-std=c11 -Wall -Wextra -Wpedantic -Werror)

shared_exe=$scratch/pkg-config/consumer-shared
printf -- '-- %s\n' "$CC ${warnings[*]} consumer.c -o $shared_exe ${cflags[*]} ${libs[*]}"
"$CC" "${warnings[@]}" "$src/tests/install/consumer.c" -o "$shared_exe" "${cflags[@]}" "${libs[@]}"
check_needed "$shared_exe" yes
loaded=$(LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$shared_exe" |
	sed -n 's/^[[:space:]]*libmementos\.so[^ ]* => \([^ ]*\).*/\1/p')
[[ $loaded == "$libdir"/* ]] || die "$shared_exe would load libmementos from '$loaded', not from $libdir"
run_consumer "pkg-config consumer (shared)" \
	env LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$shared_exe"

# -static makes -lmementos resolve to libmementos.a, and makes any missing
# Requires.private/Libs.private entry an undefined reference.
static_exe=$scratch/pkg-config/consumer-static
printf -- '-- %s\n' "$CC ${warnings[*]} -static consumer.c -o $static_exe ${static_cflags[*]} ${static_libs[*]}"
"$CC" "${warnings[@]}" -static "$src/tests/install/consumer.c" -o "$static_exe" \
	"${static_cflags[@]}" "${static_libs[@]}"
check_needed "$static_exe" no
run_consumer "pkg-config consumer (static)" env -u LD_LIBRARY_PATH "$static_exe"

printf '\ninstall check: all steps passed\n'
