#!/usr/bin/env bash
# Time-boxed fuzzing of the wire decoder and both handshake state machines with cargo-fuzz
# (libFuzzer, nightly). Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (long runs: 3600 or more)
# Crashes land in fuzz/artifacts/<target>/; turn each into a regression test in crates/wire.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-40}"
if ! rustup toolchain list | grep -q nightly; then
  rustup toolchain install nightly --profile minimal || { echo "fuzz.sh: SKIPPED: no nightly toolchain can be installed here"; exit 0; }
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz || { echo "fuzz.sh: SKIPPED: cargo-fuzz cannot be installed here"; exit 0; }
fi
total=0
for t in decode handshake_host handshake_game; do
  log=$(mktemp)
  (cd fuzz && cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1) >"$log" 2>&1 || { cat "$log"; echo "fuzz.sh: $t FOUND A CRASH"; exit 1; }
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo 0)
  echo "fuzz.sh: $t: $runs executions in ${secs}s, 0 crashes"
  total=$((total + runs))
  rm -f "$log"
done
echo "fuzz.sh: $total executions in all, 0 crashes"
