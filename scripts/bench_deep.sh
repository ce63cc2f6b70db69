#!/usr/bin/env bash
# Regenerates the deep-compression tables of BENCHMARKS.md (issue 4): the ablation (paper Tables 4, 5, 8) and the
# PSNR at CR 300 / 1000 beside SPERR, TTHRESH and SZ3. One process per dataset and mode.
# Usage: scripts/bench_deep.sh [preset] [dataset ...]     (preset default: default; about 45 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
shift || true
conf=Testing/Benchmarks/datasets.conf
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(grep -v '^#' "$conf" | grep '|' | cut -d'|' -f1 | tr -d ' '))
for mode in ablation rd; do
  out=build/bench-deep-$mode-$preset.md
  rm -f "$out"
  build/bin/ecnr_bench_deep "$mode" "$conf" "$preset" "$out" "${names[@]}"
  echo "table written to $out"
done
