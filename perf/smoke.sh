#!/bin/sh
# perf-smoke (perf/smoke.sh path/to/sy-bench): every scenario at a tiny size,
# its JSON complete (never the figures), each --metrics format accepted by its
# own tools. A missing jq, python3, promtool or erl fails it (.ci/deps).
set -eu
bench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "perf-smoke: $*"; exit 1; }
for tool in jq python3 promtool erl; do
	command -v $tool >/dev/null || fail "$tool not found: it checks the output (.ci/deps installs it)"
done
check() { # FILE [jq options] PROGRAM
	file=$1
	shift
	jq -e "$@" "$file" >/dev/null || { cat "$file"; fail "$file fails: $*"; }
}
run() { "$bench" --runs 1 --messages 20000 --quiet "$@" >/dev/null; }
rows() { echo "[.results[] | select(.scenario == \"$1\")]"; }

run all --json "$tmp/all.json" --csv "$tmp/all.csv" --metrics "$tmp/metrics.json"
check "$tmp/all.json" '.tool == "sy-bench" and (.version | length > 0)'
check "$tmp/all.json" '.machine.cpus >= 1 and .machine.probe_rtt_ns.before > 0 and .machine.probe_rtt_ns.after > 0'
check "$tmp/all.json" "$(rows throughput)"' | map(select(.msgs_per_sec.median > 0 and .msgs_per_sec.runs == 1) | .variant)
	| map(select(. != "zmq-inproc")) == ["ck-spsc", "batched-limit", "message-ring", "mutex-queue", "engine-single", "engine-burst32"]'
check "$tmp/all.json" "$(rows throughput)"' | map(select(.variant | startswith("engine-")) | .ratio_vs["ck-spsc"] > 0) | all'
# The headline engine rows run the library's default configuration.
check "$tmp/all.json" '[.results[] | select(.scenario == "throughput" or .scenario == "latency") | select(.variant | startswith("engine-"))
	| .engine | .config == "metrics" and .metrics == true and .breaker == false and .backpressure == "off"] | (length == 4 and all)'
# overhead: every send call with every configuration; bare is the baseline.
for send in engine-single engine-burst32; do
	check "$tmp/all.json" --arg s "$send" '[.results[] | select(.scenario == "overhead" and (.variant | startswith($s + "/")))] as $r
		| ($r | map(.engine.config)) == ["bare", "metrics", "metrics-every", "metrics-1in16", "metrics-1in256", "reliability", "all"]
		and ($r | map(.msgs_per_sec.median > 0 and .msgs_per_sec.runs == 1 and .messages == 20000) | all)
		and ($r[0] | .ratio_vs == null and .engine.metrics == false)
		and ($r[1:] | map(.ratio_vs.bare > 0 and .paired_ratio.vs == "bare" and .paired_ratio.min <= .paired_ratio.max
		  and .best_ratio_vs.bare > 0) | all)
		and ($r | map(select(.engine.config | startswith("metrics"))) | map(.target.min == 0.9 and (.target.met | type == "boolean")) | all)
		and ($r | map(select(.engine.config == "reliability")) | .[0] | .target.min == 0.85 and .engine.breaker and .engine.backpressure == "reject")
		and ($r | map(select(.engine.config == "all")) | .[0].target == null)'
done
check "$tmp/all.json" "$(rows latency)"' | map(select(.latency_ns.p50 > 0 and .latency_ns.p99 >= .latency_ns.p50
	and .latency_ns.max >= .latency_ns.p999) | .variant) == ["ck-pingpong", "engine-rtt", "engine-open-loop"]'
check "$tmp/all.json" '[.results[] | select(.variant == "engine-open-loop" and .offered_per_sec > 0 and .rate_fraction == 0.5)] | length == 1'
check "$tmp/all.json" '[.results[] | select(.reference == true and .variant == "seed-reference" and .msgs_per_sec.runs == 0)] | length == 2'
python3 - "$tmp/all.csv" <<'PY' || fail "the overhead rows of the CSV"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
over = [r for r in rows if r["scenario"] == "overhead"]
assert len(rows) >= 21 and len(over) == 14, "rows: %d" % len(over)
assert all(r["ratio_vs_bare"] and r["paired_ratio_min"] and r["best_ratio"] for r in over if r["config"] != "bare")
PY
# zmq-inproc only where sy-bench was built with libzmq (--help says so).
if "$bench" --help | grep -q zmq-inproc; then
	check "$tmp/all.json" "$(rows throughput)"' | map(select(.variant == "zmq-inproc" and .msgs_per_sec.median > 0)) | length == 1'
	check "$tmp/all.json" "$(rows throughput)"' | map(select(.variant | startswith("engine-")) | .ratio_vs["zmq-inproc"] > 0) | all'
fi
if command -v gnuplot >/dev/null; then
	run all --plot "$tmp/plots"
	for png in throughput latency overhead; do
		[ -s "$tmp/plots/$png.png" ] || fail "--plot wrote no $png.png"
	done
fi

run policies --json "$tmp/pol.json"
check "$tmp/pol.json" "$(rows policies)"' | map(select(.msgs_per_sec.median > 0 and .ratio_vs.round_robin > 0) | .variant)
	== ["round_robin", "weighted", "least_connections", "adaptive", "hash", "random", "failover", "round_robin+slow_start", "adaptive+deadline_aware", "round_robin+codel", "hash+park_after", "round_robin+hedge"]'
run scaling --json "$tmp/scl.json"
check "$tmp/scl.json" "$(rows scaling)"' as $r | ($r | length >= 1) and ($r[0] | .producers == 1 and .workers == 1 and .efficiency == 1)
	and ($r | map(.variant == "engine-burst32" and .msgs_per_sec.median > 0 and .efficiency > 0 and .speedup > 0
	  and .producers == .workers) | all)'
run throughput --producers 2 --workers 2 --size 64 --burst 8 --json "$tmp/pw.json"
check "$tmp/pw.json" "$(rows throughput)"' | map(select(.producers == 2 and .workers == 2) | .variant) == ["engine-single", "engine-burst8"]'
run memory --json "$tmp/mem.json"
check "$tmp/mem.json" "$(rows memory)"' | map(select(.rss_kib.before > 0 and .rss_kib.after > 0
	and (.growth_kib_per_million | type == "number") and .allocs_per_msg >= 0 and .pool_bytes > 0)) | length == 2'
# remote: four rows against the nats-server it starts, or a note why not.
"$bench" remote --runs 1 --messages 2000 --quiet --json "$tmp/rem.json" >/dev/null
check "$tmp/rem.json" '([.results[] | select(.scenario | startswith("remote")) | select(.msgs_per_sec.median > 0) | .variant]
	== ["raw-nats-pubsub", "engine-remote", "raw-nats-reqrep", "engine-remote-rtt"] and ([.results[] | select(.variant
	| startswith("engine-remote")) | .ratio_vs["raw-nats-pubsub"] // .ratio_vs["raw-nats-reqrep-p50"] | . > 0] | length == 2))
	or (.notes // [] | any(startswith("remote: skipped")))'
if command -v valgrind >/dev/null; then
	"$bench" instructions --quiet --json "$tmp/ins.json" >/dev/null
	check "$tmp/ins.json" "$(rows instructions)"' | map(.variant) == ["engine-single/bare", "engine-single",
		"engine-single/metrics-every", "engine-single/reliability", "engine-single/all", "engine-burst32/bare",
		"engine-burst32", "engine-burst32/metrics-every", "engine-burst32/reliability", "engine-burst32/all"]
		and (map(.instructions_per_msg > 0) | all)
		and (map(select(.engine.config != "bare") | .extra_instructions_vs.bare | type == "number") | length == 8)'
fi

# --metrics: the final snapshot of a dedicated run of 20000 messages (the
# all run above wrote JSON), in each format, checked by that format's tools.
check "$tmp/metrics.json" '.seq >= 1 and .engine.counters.total.delivered == 20000
	and ([.servers[] | select(.name == "bench")] | length == 1)'
for ext in csv prom erl; do
	run throughput --metrics "$tmp/metrics.$ext"
	[ -s "$tmp/metrics.$ext" ] || fail "--metrics wrote no .$ext"
done
python3 - "$tmp/metrics.csv" <<'PY' || fail "--metrics FILE.csv fails"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
head = rows[0]
assert len(rows) > 1 and all(len(r) == len(head) for r in rows), "ragged CSV"
engine = [dict(zip(head, r)) for r in rows[1:] if r[head.index("kind")] == "engine"]
assert engine and engine[0]["delivered"] == "20000", "engine delivered"
PY
promtool check metrics <"$tmp/metrics.prom" || fail "promtool rejects --metrics FILE.prom"
grep -q '^switchyard_messages_delivered_total{kind="engine",name="engine"} 20000$' "$tmp/metrics.prom" ||
	fail "no engine delivered count in .prom"
erl -noshell -eval "case file:consult(\"$tmp/metrics.erl\") of {ok, [_ | _]} -> halt(0);
	Other -> io:format(\"~p~n\", [Other]), halt(1) end." || fail "file:consult rejects --metrics FILE.erl"
# Any other extension is a bad option (status 2), refused before anything runs.
status=0
run throughput --metrics "$tmp/metrics.txt" 2>"$tmp/out" || status=$?
[ "$status" -eq 2 ] || fail "--metrics FILE.txt: exit status $status, not 2"
grep -q '\.json, \.csv, \.prom or \.erl' "$tmp/out" || fail "no message naming the extensions: $(cat "$tmp/out")"
[ ! -e "$tmp/metrics.txt" ] || fail "--metrics FILE.txt was created"
# --serve: each engine serves its metrics while it runs, when it can.
run throughput --serve $((20000 + $$ % 20000)) 2>"$tmp/out" || fail "--serve: $(cat "$tmp/out")"
status=0
run throughput --serve 0 2>/dev/null || status=$?
[ "$status" -eq 2 ] || fail "--serve 0: exit status $status, not 2"

# A bad environment variable stops it with the engine's message.
SY_CPUS=garbage "$bench" throughput --runs 1 --messages 1000 --quiet >/dev/null 2>"$tmp/out" &&
	fail "SY_CPUS=garbage was accepted"
grep -q 'SY_CPUS' "$tmp/out" || fail "no message naming SY_CPUS: $(cat "$tmp/out")"
echo "perf-smoke: all scenarios ran; JSON and CSV complete; --metrics formats accepted"
