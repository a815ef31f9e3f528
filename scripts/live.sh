#!/usr/bin/env bash
# The main job on a fresh Debian/Ubuntu machine: installs the build dependencies (FFmpeg's
# development libraries, clang for bindgen) when missing, then builds and runs `crosscast live`.
# Extra arguments go to `crosscast live` (e.g. --push rtmp://host/app/key --seconds 60).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libavdevice-dev libavfilter-dev libswresample-dev
  libxkbcommon-dev bubblewrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
exec cargo run --locked --release --bin crosscast -- live "$@"
