#!/bin/sh
# perf-smoke: every scenario of sy-bench at a tiny size; checks that it runs
# and that its JSON is complete and well formed, never the figures; and that
# --metrics writes each export format in a form its own tools accept.
#   perf/smoke.sh path/to/sy-bench
# Needs jq, python3, promtool and erl (.ci/deps installs them); a missing
# one fails the check, it is never skipped.
set -eu
bench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

need() {
	command -v "$1" >/dev/null || {
		echo "perf-smoke: $1 not found: it checks $2 (.ci/deps installs it)"
		exit 1
	}
}
need jq "the JSON output"
need python3 "--metrics FILE.csv"
need promtool "--metrics FILE.prom"
need erl "--metrics FILE.erl"

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
	--csv "$tmp/all.csv" --metrics "$tmp/metrics.json" >/dev/null
check "$tmp/all.json" '.tool == "sy-bench" and (.version | length > 0)'
check "$tmp/all.json" '.machine.cpus >= 1 and .machine.probe_rtt_ns.before > 0 and .machine.probe_rtt_ns.after > 0'
for v in ck-spsc batched-limit mutex-queue engine-single engine-burst32; do
	check "$tmp/all.json" --arg v "$v" \
		'[.results[] | select(.scenario == "throughput" and .variant == $v
		  and .msgs_per_sec.median > 0 and .msgs_per_sec.runs == 1)] | length == 1'
done
check "$tmp/all.json" '[.results[] | select(.variant | startswith("engine-"))
	| select(.scenario == "throughput") | .ratio_vs["ck-spsc"] > 0] | all'
# The headline engine rows run the library's default configuration.
check "$tmp/all.json" '[.results[] | select(.scenario == "throughput" or .scenario == "latency")
	| select(.variant | startswith("engine-")) | .engine
	| .config == "metrics" and .metrics == true and .breaker == false
	  and .backpressure == "off"] | (length == 4 and all)'
# overhead: every send call with every configuration; bare is the baseline.
for send in engine-single engine-burst32; do
	check "$tmp/all.json" --arg s "$send" '[.results[] | select(.scenario == "overhead"
		and (.variant | startswith($s + "/")))] as $r
		| ($r | map(.engine.config)) == ["bare", "metrics", "metrics-every",
		  "metrics-1in16", "metrics-1in256", "reliability", "all"]
		and ($r | map(.msgs_per_sec.median > 0 and .msgs_per_sec.runs == 1
		  and .messages == 20000) | all)
		and ($r[0] | .ratio_vs == null and .engine.metrics == false)
		and ($r[1:] | map(.ratio_vs.bare > 0 and .paired_ratio.vs == "bare"
		  and .paired_ratio.min <= .paired_ratio.max
		  and .best_ratio_vs.bare > 0) | all)
		and ($r | map(select(.engine.config | startswith("metrics")))
		  | map(.target.min == 0.9 and (.target.met | type == "boolean")) | all)
		and ($r | map(select(.engine.config == "reliability"))
		  | .[0] | .target.min == 0.85 and .engine.breaker
		  and .engine.backpressure == "reject")
		and ($r | map(select(.engine.config == "all")) | .[0].target == null)'
done
for v in ck-pingpong engine-rtt; do
	check "$tmp/all.json" --arg v "$v" \
		'[.results[] | select(.scenario == "latency" and .variant == $v
		  and .latency_ns.p50 > 0 and .latency_ns.p99 >= .latency_ns.p50
		  and .latency_ns.max >= .latency_ns.p999)] | length == 1'
done
[ "$(wc -l < "$tmp/all.csv")" -ge 22 ] || { echo "perf-smoke: short CSV"; exit 1; }
python3 - "$tmp/all.csv" <<'PY' || { echo "perf-smoke: overhead rows of the CSV"; exit 1; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
over = [r for r in rows if r["scenario"] == "overhead"]
assert len(over) == 14, "overhead rows: %d" % len(over)
assert all(r["ratio_vs_bare"] and r["paired_ratio_min"] and r["best_ratio"]
           for r in over if r["config"] != "bare"), "overhead ratios"
PY
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
	for png in throughput latency overhead; do
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
		| .instructions_per_msg > 0] | (length == 10 and all)'
	check "$tmp/ins.json" '[.results[] | select(.scenario == "instructions")]
		| map(.variant) == ["engine-single/bare", "engine-single",
		  "engine-single/metrics-every", "engine-single/reliability",
		  "engine-single/all", "engine-burst32/bare", "engine-burst32",
		  "engine-burst32/metrics-every", "engine-burst32/reliability",
		  "engine-burst32/all"]'
	check "$tmp/ins.json" '[.results[] | select(.scenario == "instructions")
		| select(.engine.config != "bare")
		| .extra_instructions_vs.bare | type == "number"] | (length == 8 and all)'
fi

# --metrics: the final snapshot of a dedicated run of 20000 messages (the
# all run above wrote JSON), in each format, checked by that format's tools.
check "$tmp/metrics.json" '.seq >= 1 and .engine.counters.total.delivered == 20000
	and ([.servers[] | select(.name == "bench")] | length == 1)'
for ext in csv prom erl; do
	"$bench" throughput --runs 1 --messages 20000 --quiet \
		--metrics "$tmp/metrics.$ext" >/dev/null
	[ -s "$tmp/metrics.$ext" ] || { echo "perf-smoke: --metrics wrote no .$ext"; exit 1; }
done
python3 - "$tmp/metrics.csv" <<'PY' || { echo "perf-smoke: --metrics FILE.csv fails"; exit 1; }
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
head = rows[0]
assert len(rows) > 1 and all(len(r) == len(head) for r in rows), "ragged CSV"
engine = [dict(zip(head, r)) for r in rows[1:] if r[head.index("kind")] == "engine"]
assert engine and engine[0]["delivered"] == "20000", "engine delivered"
PY
promtool check metrics <"$tmp/metrics.prom" || {
	echo "perf-smoke: promtool rejects --metrics FILE.prom"; exit 1; }
grep -q '^switchyard_messages_delivered_total{kind="engine",name="engine"} 20000$' \
	"$tmp/metrics.prom" || { echo "perf-smoke: no engine delivered count in .prom"; exit 1; }
erl -noshell -eval "case file:consult(\"$tmp/metrics.erl\") of
	{ok, [_ | _]} -> halt(0);
	Other -> io:format(\"~p~n\", [Other]), halt(1) end." || {
	echo "perf-smoke: file:consult rejects --metrics FILE.erl"; exit 1; }
# Any other extension is a bad option (status 2), refused before anything runs.
status=0
"$bench" throughput --runs 1 --messages 1000 --quiet \
	--metrics "$tmp/metrics.txt" >"$tmp/out" 2>&1 || status=$?
[ "$status" -eq 2 ] || { echo "perf-smoke: --metrics FILE.txt: exit status $status, not 2"; exit 1; }
grep -q '\.json, \.csv, \.prom or \.erl' "$tmp/out" || {
	echo "perf-smoke: no message naming the extensions"; cat "$tmp/out"; exit 1; }
[ ! -e "$tmp/metrics.txt" ] || { echo "perf-smoke: --metrics FILE.txt was created"; exit 1; }

# A bad environment variable stops it with the engine's message.
if SY_CPUS=garbage "$bench" throughput --runs 1 --messages 1000 --quiet \
	>"$tmp/out" 2>&1; then
	echo "perf-smoke: SY_CPUS=garbage was accepted"
	exit 1
fi
grep -q 'SY_CPUS' "$tmp/out" || { echo "perf-smoke: no message naming SY_CPUS"; cat "$tmp/out"; exit 1; }
echo "perf-smoke: all scenarios ran; JSON and CSV complete; --metrics formats accepted"
