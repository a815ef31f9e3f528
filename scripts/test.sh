#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs what the tests need
# (system packages through apt when missing; cargo-nextest is not required), then builds and
# runs every test, lint and a short fuzz run. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests talk to: FFmpeg's libraries (build) and tools (ffprobe/ffmpeg decode what
# we wrote), nginx with the RTMP module (ingest), Xvfb + ImageMagick (preview window screenshot),
# libwayland/libxkbcommon (the compositor), bubblewrap (the sandbox for any game), and real
# Wayland clients: weston's demo clients, SDL2's test programs, glmark2, Xwayland, Mesa's
# llvmpipe for GL without a GPU; xdotool plays the streamer in the preview window. Game audio:
# PulseAudio clients (paplay/pacat, sox writes their files), ALSA's aplay through the pulse
# plugin, and GStreamer (waylandsink + pulsesink) for A/V sync through both paths. libegl-dev:
# the GL readback's tests link EGL (surfaceless, Mesa's llvmpipe). RTMPS: nginx's stream module
# terminates TLS in front of nginx-rtmp, with a test CA and certificate made by openssl.
# iproute2 (ip, tc): adaptive bitrate is tested on a veth pair between two network namespaces the
# test makes, with tc's tbf squeezing it.
packages=(pkg-config clang libclang-dev gcc libc6-dev
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libavdevice-dev libavfilter-dev libswresample-dev
  ffmpeg nginx libnginx-mod-rtmp xvfb x11-apps imagemagick xdotool
  libwayland-dev libxkbcommon-dev bubblewrap
  weston libsdl2-tests glmark2-es2-wayland xwayland x11-utils mesa-utils
  libegl-mesa0 libgl1-mesa-dri libgles2 python3
  pulseaudio-utils sox alsa-utils libasound2-plugins
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-pulseaudio libegl-dev
  libnginx-mod-stream openssl iproute2
  # taskset pins the encoder-overload test's runs to one CPU (crosscast/tests/encoder.rs).
  util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "test.sh: formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
# The shipped configuration (no bench feature) must stay clean too.
cargo clippy --locked -p crosscast -p crosscast-bench --all-targets -- -D warnings

echo "test.sh: tests"
# The C SDK tests link libcrosscast.so/.a, which `cargo test` does not build (it builds the
# crate's test harness, not its cdylib and staticlib).
cargo build --locked -p crosscast-sdk-c
# --all-features: `bench ipc` with its iceoryx2 reference and chart, which its test requires.
cargo test --locked --workspace --all-features --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"

# SKIP_FUZZ=1 is for quick local runs only: CI always fuzzes.
if [ "${SKIP_FUZZ:-}" != "1" ] || [ "${CI:-}" = "true" ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-40}"
fi
