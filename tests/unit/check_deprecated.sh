#!/bin/sh
# The names of 0.1.0 compile with a deprecation warning that names the new
# function, and the new names compile without one.
set -eu
cc=$1
include=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/old.c" <<'C'
#include <switchyard.h>
int f(sy_engine *e, sy_msg *m) { return sy_send(e, 0, m); }
C
cat > "$dir/new.c" <<'C'
#include <switchyard.h>
int f(sy_engine *e, sy_msg *m) { return sy_msg_send(e, 0, m); }
C
if "$cc" -std=c11 -Werror=deprecated-declarations -I"$include" -c "$dir/old.c" \
	-o "$dir/old.o" 2> "$dir/old.err"; then
	echo "sy_send() compiled without a deprecation warning"
	exit 1
fi
grep -q "use sy_msg_send()" "$dir/old.err" || {
	echo "the warning does not name the new function:"
	cat "$dir/old.err"
	exit 1
}
"$cc" -std=c11 -Werror -I"$include" -c "$dir/new.c" -o "$dir/new.o"
echo "the old names warn and name the new ones"
