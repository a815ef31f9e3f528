#!/usr/bin/env bash
# Installs the C SDK: libcrosscast (shared and static), crosscast.h and crosscast.pc.
#   bash scripts/sdk.sh PREFIX          builds it (release) and installs into PREFIX
#                                       (PREFIX/lib, PREFIX/include, PREFIX/lib/pkgconfig)
# With CROSSCAST_SDK_BUILD_DIR=DIR the library is taken from an existing build (the tests use
# target/debug) instead of building. Then: export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig and
#   cc -o game game.c $(pkg-config --cflags --libs crosscast)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:?usage: scripts/sdk.sh PREFIX}"
if [ -n "${CROSSCAST_SDK_BUILD_DIR:-}" ]; then
  build="$CROSSCAST_SDK_BUILD_DIR"
else
  cargo build --locked --release -p crosscast-sdk-c
  build=target/release
fi
for f in libcrosscast.so libcrosscast.a; do
  [ -f "$build/$f" ] || { echo "sdk.sh: $build/$f is missing (cargo build -p crosscast-sdk-c)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$build/libcrosscast.so" "$prefix/lib/"
install -m 0644 "$build/libcrosscast.a" "$prefix/lib/"
install -m 0644 crates/sdk-c/include/crosscast.h "$prefix/include/"
sed -e "s|@PREFIX@|$(cd "$prefix" && pwd)|" -e "s|@VERSION@|$version|" crates/sdk-c/crosscast.pc.in \
  > "$prefix/lib/pkgconfig/crosscast.pc"
echo "sdk.sh: installed libcrosscast $version into $prefix"
