#!/usr/bin/env bash
# plot.sh: mementos-bench's CSV as a throughput plot and a Markdown summary.
#
#   bench/plot.sh results.csv [outdir]
#
# Writes <outdir>/<name>.png (gnuplot: Mops/s against threads, one panel per
# workload, one line per implementation) and <outdir>/<name>.md (throughput,
# mementos' ratio to each other implementation, latency percentiles, bytes
# per entry, stampede creations and wake-ups), and prints the Markdown.
# <name> is the CSV's name without .csv; outdir defaults to the CSV's folder.
#
# Columns are found by their header names, so the driver may add or reorder
# them; impl, workload, threads and mops must be there.  Rows repeated for
# one (impl, workload, threads), as in concatenated runs, are reduced to
# their median.  Needs bash, awk and gnuplot (pngcairo, else png); without
# gnuplot the Markdown is still written and the script exits 1.
#
# SPDX-License-Identifier: BSD-2-Clause
set -euo pipefail

usage() {
	echo "usage: $0 results.csv [outdir]" >&2
	exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	usage
fi
csv=$1
if [ ! -f "$csv" ] || [ ! -r "$csv" ]; then
	echo "plot.sh: cannot read $csv" >&2
	exit 2
fi
outdir=${2:-$(dirname -- "$csv")}
name=$(basename -- "$csv")
name=${name%.csv}
mkdir -p -- "$outdir"
png=$outdir/$name.png
md=$outdir/$name.md

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# One pass over the CSV writes the Markdown and, into $work, one data file
# per workload and the gnuplot commands that draw them (no terminal yet).
awk -F, -v md="$md" -v work="$work" -v source="$(basename -- "$csv")" \
    -v latency_workloads="uniform zipf" -v stampede_workload="stampede" '
function trim(s) {
	gsub(/^[ \t\r"]+|[ \t\r"]+$/, "", s)
	return s
}
function field(col_name) {
	return (col_name in col) ? trim($(col[col_name])) : ""
}
function is_number(s) {
	return s ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/
}
# Appends v to the values kept under key k (a space-separated list).
function keep(k, v) {
	if (!is_number(v))
		return
	vals[k] = (k in vals) ? vals[k] " " v : v
}
function median(k,    n, a, i, j, t) {
	if (!(k in vals))
		return ""
	n = split(vals[k], a, " ")
	for (i = 2; i <= n; i++) {
		t = a[i] + 0
		for (j = i - 1; j >= 1 && a[j] + 0 > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt_rate(v) {
	if (v == "") return "-"
	if (v >= 100) return sprintf("%.0f", v)
	if (v >= 10) return sprintf("%.1f", v)
	if (v >= 1) return sprintf("%.2f", v)
	return sprintf("%.3g", v) # three significant digits, however small
}
function fmt_ratio(a, b) {
	if (a == "" || b == "" || b <= 0) return "-"
	return (a / b >= 10 ? sprintf("%.1f", a / b) : sprintf("%.2f", a / b)) "x"
}
function fmt_int(v) { return v == "" ? "-" : sprintf("%.0f", v) }
function fmt_one(v) { return v == "" ? "-" : sprintf("%.1f", v) }
# Sorted (numerically) thread counts of workload w into list[1..n]; returns n.
function threads_of(w, list,    n, i, j, t) {
	n = split(thread_list[w], list, " ")
	for (i = 2; i <= n; i++) {
		t = list[i] + 0
		for (j = i - 1; j >= 1 && list[j] + 0 > t; j--)
			list[j + 1] = list[j]
		list[j + 1] = t
	}
	return n
}
function row_start(text) { line = "| " text }
function cell(text) { line = line " | " text }
function row_end() { print line " |" > md }
function rule(ncells,    i, s) {
	s = "|---"
	for (i = 2; i <= ncells; i++)
		s = s "|--:"
	print s "|" > md
}

/^[ \t\r]*$/ || /^#/ { next }
!have_header {
	header = $0
	have_header = 1
	for (i = 1; i <= NF; i++)
		col[trim($i)] = i
	split("impl workload threads mops", required, " ")
	for (i = 1; i <= 4; i++)
		if (!(required[i] in col)) {
			printf "plot.sh: %s has no \"%s\" column\n", source, required[i] > "/dev/stderr"
			failed = 1
			exit 2
		}
	next
}
$0 == header { next } # a second run appended to the file

{
	impl = field("impl"); w = field("workload"); th = field("threads")
	if (impl == "")
		next
	if (!(impl in impl_seen)) {
		impl_seen[impl] = 1
		impls[++nimpls] = impl
	}
	keep(impl SUBSEP "bytes", field("bytes_per_entry"))
	if (is_number(field("cores")) && field("cores") + 0 > cores)
		cores = field("cores") + 0
	mops = field("mops")
	if (w == "" || !is_number(th) || !is_number(mops))
		next # not a point of a timed workload (e.g. a memory-only row)
	th += 0
	if (!(w in workload_seen)) {
		workload_seen[w] = 1
		workloads[++nworkloads] = w
	}
	if (!((w, th) in thread_seen)) {
		thread_seen[w, th] = 1
		thread_list[w] = thread_list[w] " " th
	}
	point = impl SUBSEP w SUBSEP th
	has[impl, w] = 1
	keep(point SUBSEP "mops", mops)
	keep(point SUBSEP "p50", field("p50_ns"))
	keep(point SUBSEP "p99", field("p99_ns"))
	keep(point SUBSEP "p999", field("p999_ns"))
	keep(point SUBSEP "creations", field("creations"))
	keep(point SUBSEP "wake", field("worst_wake_us"))
}

END {
	if (failed)
		exit 2
	if (nworkloads == 0) {
		printf "plot.sh: %s has no throughput rows\n", source > "/dev/stderr"
		exit 2
	}
	# mementos first: it is what every ratio compares.
	order[n_order = 1] = "mementos"
	for (i = 1; i <= nimpls; i++)
		if (impls[i] != "mementos")
			order[++n_order] = impls[i]
	have_mementos = ("mementos" in impl_seen)
	if (!have_mementos) {
		for (i = 1; i < n_order; i++)
			order[i] = order[i + 1]
		n_order--
	}

	print "# mementos-bench: " source > md
	print "" > md
	print "Throughput in millions of gets per second, all threads together." > md
	if (have_mementos)
		print "`mementos/x`: mementos'"'"' throughput over x'"'"'s (above 1: mementos is faster)." > md
	if (cores)
		print "Measured on " cores " cores; more threads than cores are oversubscribed." > md

	print "" > md
	print "## Throughput (Mops/s)" > md
	for (wi = 1; wi <= nworkloads; wi++) {
		w = workloads[wi]
		nth = threads_of(w, ths)
		print "" > md
		print "### " w > md
		print "" > md
		ncells = 1
		row_start("threads")
		for (i = 1; i <= n_order; i++)
			if (has[order[i], w]) { cell(order[i]); ncells++ }
		if (have_mementos && has["mementos", w])
			for (i = 2; i <= n_order; i++)
				if (has[order[i], w]) { cell("mementos/" order[i]); ncells++ }
		row_end()
		rule(ncells)
		for (t = 1; t <= nth; t++) {
			row_start(ths[t])
			for (i = 1; i <= n_order; i++)
				if (has[order[i], w])
					cell(fmt_rate(median(order[i] SUBSEP w SUBSEP ths[t] SUBSEP "mops")))
			if (have_mementos && has["mementos", w]) {
				mine = median("mementos" SUBSEP w SUBSEP ths[t] SUBSEP "mops")
				for (i = 2; i <= n_order; i++)
					if (has[order[i], w])
						cell(fmt_ratio(mine, median(order[i] SUBSEP w SUBSEP ths[t] SUBSEP "mops")))
			}
			row_end()
		}
	}

	# Latency: p50 / p99 / p99.9 of sampled gets, where the driver sampled.
	n_lat = split(latency_workloads, lat_w, " ")
	lat_title = 0
	for (li = 1; li <= n_lat; li++) {
		w = lat_w[li]
		if (!(w in workload_seen))
			continue
		any = 0
		for (k in vals)
			if (index(k, SUBSEP w SUBSEP) && k ~ /p50$/) { any = 1; break }
		if (!any)
			continue
		if (!lat_title++) {
			print "" > md
			print "## Latency (ns per get: p50 / p99 / p99.9)" > md
		}
		nth = threads_of(w, ths)
		print "" > md
		print "### " w > md
		print "" > md
		ncells = 1
		row_start("threads")
		for (i = 1; i <= n_order; i++)
			if (has[order[i], w]) { cell(order[i]); ncells++ }
		row_end()
		rule(ncells)
		for (t = 1; t <= nth; t++) {
			row_start(ths[t])
			for (i = 1; i <= n_order; i++) {
				if (!has[order[i], w])
					continue
				p = order[i] SUBSEP w SUBSEP ths[t] SUBSEP
				cell(fmt_int(median(p "p50")) " / " fmt_int(median(p "p99")) " / " \
				     fmt_int(median(p "p999")))
			}
			row_end()
		}
	}

	print "" > md
	print "## Memory (bytes per entry, object included)" > md
	print "" > md
	print "| impl | bytes/entry |" > md
	print "|---|--:|" > md
	for (i = 1; i <= n_order; i++)
		print "| " order[i] " | " fmt_one(median(order[i] SUBSEP "bytes")) " |" > md

	w = stampede_workload
	if (w in workload_seen) {
		nth = threads_of(w, ths)
		print "" > md
		print "## Stampede (creations per round, must be 1; worst wake-up after the creation)" > md
		print "" > md
		print "| impl | threads | Mops/s | creations | worst wake (us) |" > md
		print "|---|--:|--:|--:|--:|" > md
		for (i = 1; i <= n_order; i++) {
			if (!has[order[i], w])
				continue
			for (t = 1; t <= nth; t++) {
				p = order[i] SUBSEP w SUBSEP ths[t] SUBSEP
				if (!((p "mops") in vals))
					continue
				print "| " order[i] " | " ths[t] " | " fmt_rate(median(p "mops")) " | " \
				      fmt_int(median(p "creations")) " | " fmt_one(median(p "wake")) " |" > md
			}
		}
	}
	close(md)

	# Plot data: threads, then one column per implementation (NaN where
	# it has no point; log scales cannot show 0 either).
	ncols = nworkloads < 3 ? nworkloads : 3
	nrows = int((nworkloads + ncols - 1) / ncols)
	gp = work "/plot.gp"
	printf "set multiplot layout %d,%d title \"mementos-bench (%s): Mops/s against threads\" noenhanced\n",
	       nrows, ncols, source > gp
	print "set logscale y" > gp
	print "set logscale x 2" > gp
	print "set grid" > gp
	print "set key below horizontal Left reverse width 2 noenhanced" > gp
	print "set ylabel \"Mops/s\"" > gp
	print "set datafile missing \"NaN\"" > gp
	for (wi = 1; wi <= nworkloads; wi++) {
		w = workloads[wi]
		nth = threads_of(w, ths)
		dat = work "/workload" wi ".dat"
		for (t = 1; t <= nth; t++) {
			line = ths[t]
			for (i = 1; i <= n_order; i++) {
				v = median(order[i] SUBSEP w SUBSEP ths[t] SUBSEP "mops")
				line = line " " (v == "" || v <= 0 ? "NaN" : v)
			}
			print line > dat
		}
		close(dat)
		tics = ""
		for (t = 1; t <= nth; t++)
			tics = tics (t > 1 ? ", " : "") ths[t]
		printf "set title \"%s\" noenhanced\n", w > gp
		printf "set xtics (%s)\n", tics > gp
		printf "set xrange [%g:%g]\n", ths[1] / 1.3, ths[nth] * 1.3 > gp
		plot = ""
		for (i = 1; i <= n_order; i++) {
			if (!has[order[i], w])
				continue
			# Linetype by implementation, so colours agree across panels.
			plot = plot (plot == "" ? "plot " : ", ") \
			       sprintf("\"%s\" using 1:%d with linespoints lt %d lw 2 pt 7 title \"%s\"",
			               dat, i + 1, i, order[i])
		}
		print plot > gp
	}
	print "unset multiplot" > gp
	close(gp)
	print nrows, ncols > (work "/layout")
}
' "$csv"

status=0
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "plot.sh: gnuplot is not installed (Debian: apt-get install gnuplot-nox);" \
	     "wrote $md only" >&2
	status=1
else
	read -r rows cols <"$work/layout"
	width=$((cols * 560))
	height=$((rows * 420))
	if gnuplot -e 'set terminal pngcairo' </dev/null >/dev/null 2>&1; then
		terminal="pngcairo size $width,$height noenhanced font \",10\""
	else
		terminal="png size $width,$height noenhanced"
	fi
	if { echo "set terminal $terminal"; echo "set output \"$png\""; cat "$work/plot.gp"; } |
		gnuplot; then
		echo "plot.sh: wrote $png and $md" >&2
	else
		echo "plot.sh: gnuplot failed; wrote $md only" >&2
		status=1
	fi
fi
cat -- "$md"
exit $status
