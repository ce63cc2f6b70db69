#!/usr/bin/env bash
# Regenerates the quality table of BENCHMARKS.md: every dataset of Testing/Benchmarks/datasets.conf, one process
# each, with the given preset (default: default). Usage: scripts/bench.sh [preset] [dataset ...]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
shift || true
conf=Testing/Benchmarks/datasets.conf
out=build/bench-quality-$preset.md
rm -f "$out"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(grep -v '^#' "$conf" | grep '|' | cut -d'|' -f1 | tr -d ' '))
for n in "${names[@]}"; do
  build/bin/ecnr_bench_quality "$conf" "$preset" "$out" "$n"
done
echo "table written to $out"
