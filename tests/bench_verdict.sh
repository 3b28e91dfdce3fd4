#!/usr/bin/env bash
# bench/verdict.sh against a made-up CSV: each target's line says met or
# MISSED as its numbers say, repeated rows go by their median, and a point
# the CSV lacks is "not run".
#
# SPDX-License-Identifier: BSD-2-Clause
set -euo pipefail
verdict=$1
csv=$(mktemp)
trap 'rm -f "$csv"' EXIT
cat >"$csv" <<'CSV'
impl,workload,threads,cores,ops,seconds,mops,ns_per_op,p50_ns,p99_ns,p999_ns,bytes_per_entry,creations,worst_wake_us,oversubscribed
mementos,hot,1,2,1,1,100,10.0,,,,90,1,,0
floor,hot,1,2,1,1,110,9.0,,,,90,1,,0
mementos,uniform,1,2,1,1,3,300,,,,90,1,,0
mementos,uniform,1,2,1,1,3,100,,,,90,1,,0
mementos,uniform,1,2,1,1,3,120,,,,90,1,,0
floor,uniform,1,2,1,1,5,200,,,,90,1,,0
mementos,uniform,2,2,1,1,9.6,200,,,,90,1,,0
floor,uniform,2,2,1,1,10,190,,,,90,1,,0
tbb,uniform,2,2,1,1,9,210,,,,90,1,,0
urcu,uniform,1,2,1,1,3,300,,,,80,1,,0
tbb,uniform,1,2,1,1,3,300,,,,95,1,,0
mementos-many,uniform,1,2,1,1,10,100,,,,90,1,,0
mementos,hot,16,16,1,1,1300,10.0,,,,90,1,,0
mementos,hot,16,16,1,1,1500,10.0,,,,90,1,,0
mementos,hot,16,16,1,1,1450,10.0,,,,90,1,,0
CSV
out=$("$verdict" "$csv")
printf '%s\n' "$out"
expect() {
	if ! grep -q -- "$1.*$2\$" <<<"$out"; then
		printf 'bench_verdict: expected "%s" to end in "%s"\n' "$1" "$2" >&2
		exit 1
	fi
}
expect 'hot, 1 thread' 'MISSED'          # 10 ns against 9
expect 'uniform, 1 thread' 'met'         # median of 300, 100, 120 is 120 against 200
expect '>= 0.95x floor' 'met'            # 9.6 against 10
expect '>= tbb' 'met'
expect '>= rwlock' 'not run'
expect 'bytes per entry <= urcu' 'MISSED' # 90 against 80
expect 'bytes per entry <= tbb' 'met'
expect 'hot, 16 threads' 'met'            # median 1450 against 100: 14.5x
expect 'uniform, 16 threads' 'not run'
expect 'get_many, uniform, 1 thread' '2.00x as fast *(no target)'
expect 'get_many, uniform, 2 threads' 'not run'
echo "bench_verdict: ok"
