#!/usr/bin/env bash
# verdict.sh: the machine and one line per hit-path target (issue 13) from
# mementos-bench's CSV, so that a run says at once where mementos stands.
#
#   bench/verdict.sh results.csv
#
# Targets (ratios within the one run; a point the CSV lacks is "not run"):
#   hot, 1 thread        mementos' ns per get at most the floor's
#   uniform, 1 thread    mementos' ns per get at most the floor's
#   uniform, 2 threads   mementos' throughput at least 0.95x the floor's,
#                        and at least tbb's and rwlock's
#   bytes per entry      at most urcu's and tbb's (uniform)
#   16 threads           mementos' throughput at least 14x its one-thread
#                        throughput on hot, 12x on uniform
# Then, with no target, what memento_get_many does over the same keys
# (mementos-many) against the floor's single gets: uniform at 1 and 2 threads.
# The floor is the bare ck_hs_get on a prefilled table (impl_floor.c).
# Rows repeated for a point (concatenated runs) are reduced to their median.
# Prints to stdout; exits 0 whatever the verdicts (a benchmark is not a test).
#
# SPDX-License-Identifier: BSD-2-Clause
set -euo pipefail

if [ $# -ne 1 ] || [ ! -r "$1" ]; then
	echo "usage: $0 results.csv" >&2
	exit 2
fi

cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
printf 'machine: %s, %s CPUs (this machine, where the run is assumed to be from)\n' \
	"${cpu:-unknown CPU}" "$(nproc 2>/dev/null || echo '?')"

awk -F, '
NR == 1 {
	for (i = 1; i <= NF; i++) col[$i] = i
	if (!("impl" in col) || !("workload" in col) || !("threads" in col) ||
	    !("mops" in col) || !("ns_per_op" in col))
		{ print "verdict.sh: the CSV lacks impl, workload, threads, mops or ns_per_op" > "/dev/stderr"; bad = 1; exit 2 }
	next
}
{
	k = $col["impl"] SUBSEP $col["workload"] SUBSEP $col["threads"]
	n[k]++
	mops[k, n[k]] = $col["mops"] + 0
	ns[k, n[k]] = $col["ns_per_op"] + 0
	if ("bytes_per_entry" in col && $col["bytes_per_entry"] != "")
		bpe[k] = $col["bytes_per_entry"] + 0
}
function median(arr, k, m,    i, j, t, v) {
	for (i = 1; i <= m; i++) v[i] = arr[k, i]
	for (i = 2; i <= m; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
	return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
function has(impl, w, t) { return (impl SUBSEP w SUBSEP t) in n }
function M(impl, w, t,    k) { k = impl SUBSEP w SUBSEP t; return median(mops, k, n[k]) }
function NS(impl, w, t,    k) { k = impl SUBSEP w SUBSEP t; return median(ns, k, n[k]) }
function line(what, measured, ok) {
	printf "%-44s %-40s %s\n", what, measured, ok ? "met" : "MISSED"
}
function notrun(what) { printf "%-44s %-40s %s\n", what, "", "not run" }
function batch(t, what,    r) {
	if (!has("mementos-many", "uniform", t) || !has("floor", "uniform", t)) { notrun(what); return }
	r = NS("floor", "uniform", t) / NS("mementos-many", "uniform", t)
	printf "%-44s %-40s %s\n", what, sprintf("%.1f vs %.1f ns: %.2fx as fast", NS("mementos-many", "uniform", t), NS("floor", "uniform", t), r), "(no target)"
}
function per_get(w, t, what) {
	if (!has("mementos", w, t) || !has("floor", w, t)) { notrun(what); return }
	r = NS("mementos", w, t) / NS("floor", w, t)
	line(what, sprintf("%.1f vs %.1f ns: %.2fx", NS("mementos", w, t), NS("floor", w, t), r), r <= 1.0)
}
function at_least(other, factor, what) {
	if (!has("mementos", "uniform", 2) || !has(other, "uniform", 2)) { notrun(what); return }
	r = M("mementos", "uniform", 2) / M(other, "uniform", 2)
	line(what, sprintf("%.2f vs %.2f Mops/s: %.2fx", M("mementos", "uniform", 2), M(other, "uniform", 2), r), r >= factor)
}
function scaling(w, factor, what,    r) {
	if (!has("mementos", w, 1) || !has("mementos", w, 16)) { notrun(what); return }
	r = M("mementos", w, 16) / M("mementos", w, 1)
	line(what, sprintf("%.2f vs %.2f Mops/s: %.1fx", M("mementos", w, 16), M("mementos", w, 1), r), r >= factor)
}
function bytes(other, what,    a, b) {
	a = "mementos" SUBSEP "uniform" SUBSEP 1; b = other SUBSEP "uniform" SUBSEP 1
	if (!(a in bpe) || !(b in bpe)) { notrun(what); return }
	line(what, sprintf("%.1f vs %.1f", bpe[a], bpe[b]), bpe[a] <= bpe[b])
}
END {
	if (bad) exit 2
	per_get("hot", 1, "hot, 1 thread: ns per get <= floor")
	per_get("uniform", 1, "uniform, 1 thread: ns per get <= floor")
	at_least("floor", 0.95, "uniform, 2 threads: >= 0.95x floor")
	at_least("tbb", 1.0, "uniform, 2 threads: >= tbb")
	at_least("rwlock", 1.0, "uniform, 2 threads: >= rwlock")
	bytes("urcu", "bytes per entry <= urcu (uniform)")
	bytes("tbb", "bytes per entry <= tbb (uniform)")
	scaling("hot", 14, "hot, 16 threads: >= 14x one thread")
	scaling("uniform", 12, "uniform, 16 threads: >= 12x one thread")
	batch(1, "get_many, uniform, 1 thread: ns per key")
	batch(2, "get_many, uniform, 2 threads: ns per key")
}' "$1"
