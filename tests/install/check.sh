#!/bin/sh
# Install a build into a scratch prefix, then build and run a program
# against it through pkg-config, linked shared and static.
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
echo "install check: shared and static consumers work"
