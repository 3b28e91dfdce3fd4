#!/usr/bin/env bash
# tools/mementos-store against stores that tests/store_tool_fixture.c makes
# through the library and then damages behind its back.
#
#   test_store_tool.sh TOOL FIXTURE
#
# Every check prints what it saw when it fails; the script goes on and
# exits 1 at the end if any failed.
#
# SPDX-License-Identifier: BSD-2-Clause
set -u

tool=${1:?usage: test_store_tool.sh TOOL FIXTURE}
fixture=${2:?usage: test_store_tool.sh TOOL FIXTURE}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mementos-store-tool-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

failures=0
out= # the last run's stdout and stderr
status=0

# Runs the tool; its output goes to $out, its exit status to $status.
run() {
	out=$("$tool" "$@" 2>&1)
	status=$?
	printf '$ mementos-store %s  [exit %d]\n%s\n' "$*" "$status" "$out"
}

# Records a failure of check $1.
fail() {
	echo "FAIL: $1" >&2
	failures=$((failures + 1))
}

# Fails unless the last run exited with status $1.
expect_status() {
	[ "$status" -eq "$1" ] || fail "exit status $status, wanted $1"
}

# Fails unless the last output has a line matching the extended regex $1.
expect_line() {
	grep -Eq -- "$1" <<<"$out" || fail "no line matches /$1/"
}

# Fails if the last output has a line matching $1.
expect_no_line() {
	! grep -Eq -- "$1" <<<"$out" || fail "a line matches /$1/"
}

# Fails unless exactly $1 lines of the last output match $2.
expect_count() {
	local n
	n=$(grep -Ec -- "$2" <<<"$out")
	[ "$n" -eq "$1" ] || fail "$n lines match /$2/, wanted $1"
}

# Runs the fixture; a failure of the fixture ends the test.
fixture() {
	"$fixture" "$@" || { echo "FAIL: store_tool_fixture $* failed" >&2; exit 1; }
}

s=$tmp/store
fixture "$s"

echo "== usage"
run
expect_status 2
expect_line '^usage: '
run --help
expect_status 0
expect_line '^usage: '
run "$s" frobnicate
expect_status 2
expect_line "unknown command 'frobnicate'"
run "$s" stats extra
expect_status 2
run "$s" drop
expect_status 2
run "$s" prune
expect_status 2
run "$s" prune --older-than abc
expect_status 2
expect_line 'not a number of days'
run "$s" prune --older-than -1
expect_status 2

echo "== not a store"
mkdir "$tmp/empty"
run "$tmp/empty" stats
expect_status 1
expect_line 'not a mementos store \(no data.mdb\)'
run "$tmp/empty" drop alpha
expect_status 1
[ ! -e "$tmp/empty/data.mdb" ] || fail "drop made an environment in a directory that had none"
run "$tmp/missing" list
expect_status 1
expect_line 'No such file or directory'
echo junk >"$tmp/file"
run "$tmp/file" verify
expect_status 1
expect_line 'not a mementos store \(a store is a directory\)'
mkdir "$tmp/junk" && head -c 20000 /dev/zero | tr '\0' 'x' >"$tmp/junk/data.mdb"
run "$tmp/junk" stats
expect_status 1
expect_line 'not a mementos store'

echo "== stats"
run "$s" stats
expect_status 0
expect_line '^store .*: format 1, 5 records in 2 classes$'
expect_line '^map: [0-9]+ bytes .*used [0-9]+ pages of [0-9]+ bytes'
expect_line '^class +records +bytes +payload +damaged +fingerprints \(distinct; records hold a fingerprint, not a version\)$'
expect_line '^alpha +3 +[0-9]+ +48 +0 +1$'
expect_line '^beta +2 +[0-9]+ +32 +0 +1$'

echo "== list"
run "$s" list alpha
expect_status 0
expect_count 3 '^alpha '
expect_no_line '^beta'
expect_line '^alpha \(u:1, s:"one"\) payload=16 created=20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z compute=[0-9.]+ms fp=[0-9a-f]{16}$'
expect_line '^alpha \(u:2, s:"two"\) '
expect_line '^alpha \(u:3, s:"three"\) '
run "$s" list beta
expect_status 0
expect_count 2 '^beta '
expect_line '^beta \(s:"b\\"1", i:-1, f:0\.5, b:3 bytes 01abcd\) payload=16 '
expect_line '^beta \(s:"b2", i:-2, f:1, b:3 bytes 02abcd\) payload=16 '
run "$s" list
expect_status 0
expect_count 5 ' payload=16 '
run "$s" list nosuchclass
expect_status 0
[ -z "$out" ] || fail "list of a class with no records printed something"

echo "== verify, good"
run "$s" verify
expect_status 0
expect_line '^verify: 5 records, 5 ok, 0 bad$'

echo "== verify, one payload byte flipped"
fixture "$s" damage beta
run "$s" verify
expect_status 1
expect_count 1 '^bad: '
expect_line '^bad: class beta key \(s:"b[^)]*\): payload digest mismatch$'
expect_line '^verify: 5 records, 4 ok, 1 bad$'
run "$s" list beta
expect_count 1 '<damaged: payload digest mismatch>$'
run "$s" stats
expect_line '^beta +2 +[0-9]+ +32 +1 +1$'

echo "== drop"
run "$s" drop alpha
expect_status 0
expect_line '^dropped 3 records of class alpha$'
run "$s" stats
expect_status 0
expect_line 'format 1, 2 records in 1 classes$'
expect_no_line '^alpha '
expect_line '^beta +2 '
run "$s" drop alpha
expect_line '^dropped 0 records of class alpha$'

echo "== prune"
run "$s" prune --older-than 1
expect_status 0
expect_line '^pruned 0 records '
run "$s" prune --older-than 0
expect_status 0
expect_line '^pruned 2 records created before '
run "$s" stats
expect_line 'format 1, 0 records in 0 classes$'

echo "== prune by age"
a=$tmp/aged
fixture "$a"
fixture "$a" age beta 3
run "$a" list beta
expect_count 2 '^beta '
run "$a" verify
expect_status 0
run "$a" prune --older-than=2.5
expect_status 0
expect_line '^pruned 2 records '
run "$a" prune --older-than 0.01
expect_line '^pruned 0 records '
run "$a" stats
expect_line 'format 1, 3 records in 1 classes$'
expect_line '^alpha +3 '

echo "== records that lie"
c=$tmp/corrupt
fixture "$c"
fixture "$c" corrupt
run "$c" verify
expect_status 1
expect_line '^verify: 14 records, 5 ok, 9 bad$'
expect_count 1 "^bad: class alpha key \(u:1, s:\"one\"\): filed under an LMDB key that is not its identity's$"
expect_count 3 "^bad: class \? \(key prefix of alpha\) lmdb-key=[0-9a-f]{48}: lengths do not match the record's size$"
expect_count 1 '^bad: class \? \(key prefix of alpha\) lmdb-key=[0-9a-f]{48}: not a mementos record \(bad magic\)$'
expect_count 2 '^bad: class \? \(key prefix of alpha\) lmdb-key=[0-9a-f]{48}: header or identity checksum mismatch$'
expect_count 1 "^bad: class \? lmdb-key=0001020304: lengths do not match the record's size$"
expect_count 1 "^bad: class alphau.* key \(\?:[0-9a-f]+\): filed under an LMDB key that is not its identity's$"
run "$c" stats
expect_status 0
expect_line '^unreadable: 7 damaged records '
run "$c" list
expect_status 0
expect_count 14 '.'
run "$c" list alpha
expect_status 0
expect_count 6 '^\? <damaged: '
run "$c" prune --older-than 0
expect_status 0
expect_line '^pruned 7 records '
expect_line '^kept 7 damaged records whose age cannot be read'
run "$c" drop alpha
expect_status 0
expect_line '^dropped 6 records of class alpha$'
run "$c" verify
expect_status 1
expect_line '^verify: 1 records, 0 ok, 1 bad$'

echo "== prune in batches"
b=$tmp/bulk
fixture "$b" bulk 2500
run "$b" stats
expect_line '^gamma +2500 '
fixture "$b" age gamma 10 2
run "$b" prune --older-than 9.5
expect_status 0
expect_line '^pruned 1250 records '
run "$b" stats
expect_line '^gamma +1250 '
run "$b" verify
expect_status 0
expect_line '^verify: 1250 records, 1250 ok, 0 bad$'
run "$b" prune --older-than 0
expect_status 0
expect_line '^pruned 1250 records '
run "$b" stats
expect_line 'format 1, 0 records in 0 classes$'

if [ "$failures" -ne 0 ]; then
	echo "$failures checks failed" >&2
	exit 1
fi
echo "all checks passed"
