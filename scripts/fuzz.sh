#!/usr/bin/env bash
# Time-boxed fuzzing of the wire decoder (and of input bodies), both handshake state machines and the
# PulseAudio server's frame decoding and stream conversion with cargo-fuzz (libFuzzer, nightly).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (long runs: 3600 or more)
# Crashes land in fuzz/artifacts/<target>/; turn each into a regression test in the crate it
# exercises (crates/wire, or crates/pulse for `pulse`).
#
# Exit status, so that CI tells the cases apart:
#   0  every target ran its time without a crash (or, outside CI only, fuzzing was skipped
#      because nightly or cargo-fuzz is missing, with a loud message)
#   1  libFuzzer found a crash (the artifact path is printed)
#   2  the fuzz targets do not build
#   3  nightly or cargo-fuzz is missing under CI=true (CI must fuzz, never skip)
#   4  a fuzzer run failed without a crash artifact (e.g. it could not start)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-40}"
targets=(decode handshake_host handshake_game input pulse)

in_ci=0
case "${CI:-}" in true | TRUE | True | 1 | yes) in_ci=1 ;; esac

# A missing tool fails CI (a skipped fuzz run would look like a passing one); on a developer's
# machine it is a skip, said loudly on stderr.
missing_tool() {
  if [ "$in_ci" -eq 1 ]; then
    echo "fuzz.sh: FAILED: $1 (CI=true: fuzzing is required, not skipped)" >&2
    exit 3
  fi
  {
    echo "################################################################"
    echo "fuzz.sh: SKIPPED, NOTHING WAS FUZZED: $1"
    echo "################################################################"
  } >&2
  exit 0
}

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal || missing_tool "no nightly toolchain, and it cannot be installed here"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz || missing_tool "cargo-fuzz is not installed, and it cannot be installed here"
fi

# Build every target first, so a compile error is reported as such and never as a crash.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzz.sh: building the fuzz targets"
if ! (cd fuzz && cargo +nightly fuzz build) >"$log" 2>&1; then
  cat "$log" >&2
  echo "fuzz.sh: BUILD FAILED: the fuzz targets do not compile (see the errors above); nothing was fuzzed" >&2
  exit 2
fi

total=0
for t in "${targets[@]}"; do
  if (cd fuzz && cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1) >"$log" 2>&1; then
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
    if [ -z "$runs" ]; then
      cat "$log" >&2
      echo "fuzz.sh: $t: the run ended without libFuzzer's final stats; it did not fuzz" >&2
      exit 4
    fi
    echo "fuzz.sh: $t: $runs executions in ${secs}s, 0 crashes"
    total=$((total + runs))
    continue
  fi
  cat "$log" >&2
  # libFuzzer writes the crashing input and says where: "Test unit written to <path>".
  artifact=$(grep -Eo 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)
  if [ -n "$artifact" ]; then
    case "$artifact" in /*) ;; *) artifact="fuzz/${artifact#./}" ;; esac
    echo "fuzz.sh: $t FOUND A CRASH; input: $artifact (reproduce: cd fuzz && cargo +nightly fuzz run $t ${artifact#fuzz/})" >&2
    exit 1
  fi
  echo "fuzz.sh: $t: the fuzzer failed without a crash artifact (see the log above); not a crash" >&2
  exit 4
done
echo "fuzz.sh: $total executions in all, 0 crashes"
