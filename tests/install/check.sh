#!/bin/sh
# Install a build into a scratch prefix, then build and run a program
# against it through pkg-config, linked shared and static, and build and
# run every program of examples/ the same way.
#   tests/install/check.sh BUILD_DIR
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp" >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
	jq -r '.[] | select(.name == "prefix") | .value')
pcdir=$(dirname "$(find "$tmp$prefix" -name switchyard.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp"
cc -std=c11 -Wall -Werror "$here/consumer.c" -o "$tmp/shared" \
	$(pkg-config --cflags --libs switchyard) -Wl,-rpath,"$tmp$prefix/lib/x86_64-linux-gnu"
LD_LIBRARY_PATH="$(dirname "$pcdir")" "$tmp/shared"
cc -std=c11 -Wall -Werror "$here/consumer.c" -o "$tmp/static" \
	$(pkg-config --cflags switchyard) "$(dirname "$pcdir")/libswitchyard.a" \
	$(pkg-config --libs --static switchyard | sed 's/-lswitchyard//')
"$tmp/static"
# Every example, as a user would build it: pkg-config alone, and the
# library found at run time through the rpath pkg-config's libdir gives.
libdir=$(pkg-config --variable=libdir switchyard)
for src in "$here"/../../examples/*.c; do
	name=$(basename "$src" .c)
	cc -std=c11 -Wall -Werror "$src" -o "$tmp/$name" \
		$(pkg-config --cflags --libs switchyard) -Wl,-rpath,"$libdir"
	"$tmp/$name" >/dev/null
done
echo "install check: shared and static consumers and every example work"
