#!/bin/sh
# perf-smoke: every scenario of sy-bench at a tiny size; checks that it runs
# and that its JSON is complete and well formed, never the figures.
#   perf/smoke.sh path/to/sy-bench
set -eu
bench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {
	file=$1
	shift
	jq -e "$@" "$file" >/dev/null || {
		echo "perf-smoke: $file fails: $*"
		cat "$file"
		exit 1
	}
}

"$bench" all --runs 1 --messages 20000 --quiet --json "$tmp/all.json" \
	--csv "$tmp/all.csv" >/dev/null
check "$tmp/all.json" '.tool == "sy-bench" and (.version | length > 0)'
check "$tmp/all.json" '.machine.cpus >= 1 and .machine.probe_rtt_ns.before > 0 and .machine.probe_rtt_ns.after > 0'
for v in ck-spsc batched-limit mutex-queue engine-single engine-burst32; do
	check "$tmp/all.json" --arg v "$v" \
		'[.results[] | select(.scenario == "throughput" and .variant == $v
		  and .msgs_per_sec.median > 0 and .msgs_per_sec.runs == 1)] | length == 1'
done
check "$tmp/all.json" '[.results[] | select(.variant | startswith("engine-"))
	| select(.scenario == "throughput") | .ratio_vs["ck-spsc"] > 0] | all'
for v in ck-pingpong engine-rtt; do
	check "$tmp/all.json" --arg v "$v" \
		'[.results[] | select(.scenario == "latency" and .variant == $v
		  and .latency_ns.p50 > 0 and .latency_ns.p99 >= .latency_ns.p50
		  and .latency_ns.max >= .latency_ns.p999)] | length == 1'
done
[ "$(wc -l < "$tmp/all.csv")" -ge 8 ] || { echo "perf-smoke: short CSV"; exit 1; }

"$bench" policies --runs 1 --messages 20000 --quiet --json "$tmp/pol.json" >/dev/null
for v in round_robin weighted least_connections adaptive hash random failover; do
	check "$tmp/pol.json" --arg v "$v" \
		'[.results[] | select(.scenario == "policies" and .variant == $v
		  and .msgs_per_sec.median > 0 and .ratio_vs.round_robin > 0)] | length == 1'
done

if command -v valgrind >/dev/null; then
	"$bench" instructions --quiet --json "$tmp/ins.json" >/dev/null
	check "$tmp/ins.json" '[.results[] | select(.scenario == "instructions")
		| .instructions_per_msg > 0] | (length == 2 and all)'
fi

# A bad environment variable stops it with the engine's message.
if SY_CPUS=garbage "$bench" throughput --runs 1 --messages 1000 --quiet \
	>"$tmp/out" 2>&1; then
	echo "perf-smoke: SY_CPUS=garbage was accepted"
	exit 1
fi
grep -q 'SY_CPUS' "$tmp/out" || { echo "perf-smoke: no message naming SY_CPUS"; cat "$tmp/out"; exit 1; }
echo "perf-smoke: all scenarios ran; JSON and CSV complete"
