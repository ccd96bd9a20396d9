#!/bin/sh
# The shared library exports exactly the functions the public header declares.
set -eu
lib=$1
header=$2
want=$(sed -n 's/^SY_API [^(]*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$header" | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort)
if [ "$want" != "$have" ]; then
	echo "exported symbols differ from include/switchyard.h:"
	diff -u /dev/fd/3 /dev/fd/4 3<<A 4<<B || true
$want
A
$have
B
	exit 1
fi
echo "exported symbols: $(echo "$want" | wc -l) functions, as declared"
