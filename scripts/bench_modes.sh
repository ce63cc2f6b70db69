#!/usr/bin/env bash
# Regenerates the "Quality modes" section of BENCHMARKS.md (issue 8): ratio mode (landing, network alone at the same
# ratio, the correction filling the budget, the rate split), PSNR mode (landing) and max-error mode (ratio at 1e-2 .. 1e-4 of the range, ZFP's
# fixed-accuracy mode at the same bound). One process per dataset. About 40 min on 2 idle cores with `fast`.
# Usage: scripts/bench_modes.sh [preset] [dataset ...]     (preset default: fast)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-fast}
shift || true
conf=Testing/Benchmarks/datasets.conf
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(grep -v '^#' "$conf" | grep '|' | cut -d'|' -f1 | tr -d ' '))
[ -x build/bin/ecnr_bench_modes ] || cmake --build build --target ecnr_bench_modes -j"$(nproc)"
out=build/bench-modes/$preset
mkdir -p build/bench-modes
start=$(date +%s)
# ASSEMBLE_ONLY=1: rewrite the section from the tables already in build/bench-modes (runs done piecewise).
if [ "${ASSEMBLE_ONLY:-0}" != 1 ]; then
  rm -f "$out".*.md
  for n in "${names[@]}"; do
    build/bin/ecnr_bench_modes "$conf" "$preset" "$out" "$n"
  done
fi
minutes=$(( ($(date +%s) - start + 59) / 60 ))
[ "${ASSEMBLE_ONLY:-0}" != 1 ] || minutes="${MINUTES:-?}"
section=$(mktemp)
{
  echo "<!-- bench_modes begin -->"
  echo "## Quality modes (issue 8)"
  echo
  echo "\`scripts/bench_modes.sh $preset\` ($minutes min), measured on $(build/bin/ecnr_bench_modes 2>&1 | true; \
       grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), ${OMP_NUM_THREADS:-$(nproc)} thread(s). Every figure is measured after"
  echo "writing the archive, reading it back and decoding it."
  echo
  echo "### Target ratio: where it lands, and the network alone at the same ratio"
  echo
  echo "The ratio mode sizes the network for the budget (the block-size chooser, then the coarser scales' blocks per"
  echo "MLP and the finest scale's MLP count), keeps the best-PSNR network within 10 % under to 5 % over it, and tops"
  echo "it up with the correction only when it lands more than 10 % short. *Network alone* interpolates, in log CR, the PSNR of the networks the"
  echo "mode trained (each a network-only archive; the mode's own archive adds a 97-byte quality record: mode,"
  echo "target, achieved figures); *filling the budget* adds the correction up to the target ratio on the kept"
  echo "network (what the mode did before: it shows what the correction's bytes buy at these ratios); *half-budget*"
  echo "sizes the network for half the bytes and gives the correction the other half (the rate split)."
  echo
  cat "$out.ratio.md"
  echo
  echo "### Target PSNR: the mode (it sizes its own network), and the correction alone on the CR-300 network"
  echo
  cat "$out.psnr.md"
  echo
  echo "### Max error (on the same network), beside ZFP's fixed-accuracy mode"
  echo
  echo "Max error / bound is measured over every voxel of the decoded series (at most 1 is the guarantee); the"
  echo "tests check every decoder path (each step alone, sub-extents, every instruction set)."
  echo
  cat "$out.bound.md"
  echo "<!-- bench_modes end -->"
} > "$section"
scripts/splice_section.py bench_modes "$section"
rm -f "$section"
echo "BENCHMARKS.md: quality-modes section rewritten from $out.*.md"
