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
check "$tmp/all.json" '[.results[] | select(.scenario == "latency"
	and .variant == "engine-open-loop" and .offered_per_sec > 0
	and .rate_fraction == 0.5 and .latency_ns.p50 > 0
	and .latency_ns.max >= .latency_ns.p99)] | length == 1'
check "$tmp/all.json" '[.results[] | select(.reference == true)
	| select(.variant == "seed-reference" and .msgs_per_sec.runs == 0)]
	| length == 2'
# zmq-inproc only where sy-bench was built with libzmq (--help says so).
if "$bench" --help | grep -q zmq-inproc; then
	check "$tmp/all.json" '[.results[] | select(.scenario == "throughput"
		and .variant == "zmq-inproc" and .msgs_per_sec.median > 0)] | length == 1'
	check "$tmp/all.json" '[.results[] | select(.scenario == "throughput")
		| select(.variant | startswith("engine-")) | .ratio_vs["zmq-inproc"] > 0] | all'
fi
if command -v gnuplot >/dev/null; then
	"$bench" all --runs 1 --messages 20000 --quiet --plot "$tmp/plots" >/dev/null
	for png in throughput latency; do
		[ -s "$tmp/plots/$png.png" ] || { echo "perf-smoke: --plot wrote no $png.png"; exit 1; }
	done
fi

"$bench" policies --runs 1 --messages 20000 --quiet --json "$tmp/pol.json" >/dev/null
for v in round_robin weighted least_connections adaptive hash random failover; do
	check "$tmp/pol.json" --arg v "$v" \
		'[.results[] | select(.scenario == "policies" and .variant == $v
		  and .msgs_per_sec.median > 0 and .ratio_vs.round_robin > 0)] | length == 1'
done

"$bench" scaling --runs 1 --messages 20000 --quiet --json "$tmp/scl.json" >/dev/null
check "$tmp/scl.json" '[.results[] | select(.scenario == "scaling")] as $r
	| ($r | length >= 1) and ($r[0].producers == 1 and $r[0].workers == 1
	  and $r[0].efficiency == 1)
	and ($r | map(.variant == "engine-burst32" and .msgs_per_sec.median > 0
	  and .efficiency > 0 and .speedup > 0 and .producers == .workers) | all)'
"$bench" throughput --producers 2 --workers 2 --size 64 --burst 8 --runs 1 \
	--messages 20000 --quiet --json "$tmp/pw.json" >/dev/null
check "$tmp/pw.json" '[.results[] | select(.scenario == "throughput"
	and .producers == 2 and .workers == 2) | .variant] == ["engine-single", "engine-burst8"]'
"$bench" memory --messages 20000 --quiet --json "$tmp/mem.json" >/dev/null
check "$tmp/mem.json" '[.results[] | select(.scenario == "memory")
	| select(.rss_kib.before > 0 and .rss_kib.after > 0
	  and (.growth_kib_per_million | type == "number")
	  and .allocs_per_msg >= 0 and .pool_bytes > 0)] | length == 2'

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
