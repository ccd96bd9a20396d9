#!/bin/sh
# Every function the public header declares is called by the contract walk
# (test_contract.c), so a new function cannot skip the NULL rule's test.
set -eu
header=$1
walk=$2
missing=""
for fn in $(sed -n 's/^SY_API [^(]*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$header"); do
	grep -q "\\b$fn(" "$walk" || missing="$missing $fn"
done
if [ -n "$missing" ]; then
	echo "not called by $(basename "$walk"):$missing"
	exit 1
fi
echo "every function of $(basename "$header") is called by $(basename "$walk")"
