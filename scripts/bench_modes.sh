#!/usr/bin/env bash
# Regenerates the "Quality modes" section of BENCHMARKS.md (issue 8): ratio mode (landing, network alone at the same
# ratio, the rate split), PSNR mode (landing) and max-error mode (ratio at 1e-2 .. 1e-4 of the range, ZFP's
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
       grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) threads. Every figure is measured after"
  echo "writing the archive, reading it back and decoding it."
  echo
  echo "### Target ratio: where it lands, and the network alone at the same ratio"
  echo
  echo "The ratio mode sizes the network for the budget (the block-size chooser, then the blocks per MLP), and the"
  echo "correction spends what is left. *Network alone* interpolates, in log CR, the PSNR of the networks the mode"
  echo "trained (each a network-only archive); *half-budget* sizes the network for half the bytes and gives the"
  echo "correction the other half (the rate split)."
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
python3 - "$section" <<'PY'
import re, sys
section = open(sys.argv[1]).read().rstrip() + "\n"
text = open("BENCHMARKS.md").read()
pattern = re.compile(r"<!-- bench_modes begin -->.*?<!-- bench_modes end -->\n?", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
open("BENCHMARKS.md", "w").write(text)
PY
rm -f "$section"
echo "BENCHMARKS.md: quality-modes section rewritten from $out.*.md"
