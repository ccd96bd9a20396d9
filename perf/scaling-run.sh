#!/bin/sh
# The multi-core record of docs/results.md, with its JSON, into OUT_DIR.
#   perf/scaling-run.sh [SY_BENCH] [OUT_DIR]
set -u
bench=${1:-build/perf/sy-bench}
out=${2:-scaling-results}
mkdir -p "$out"
{
	echo "== machine"; nproc; grep -m1 "model name" /proc/cpuinfo; uname -r
	echo "== scaling"
	timeout 120 "$bench" scaling --runs 5 --json "$out/scaling.json" --quiet
	echo "== throughput 8x8"
	timeout 60 "$bench" throughput --producers 8 --workers 8 --runs 3 \
		--json "$out/tp8.json" --quiet
	echo "== all (defaults)"
	timeout 150 "$bench" --runs 3 --json "$out/all.json" --quiet
} 2>&1 | tee "$out/log.txt"
