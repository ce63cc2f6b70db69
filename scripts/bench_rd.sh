#!/usr/bin/env bash
# Regenerates the "Rate–distortion and speed against ZFP" section of BENCHMARKS.md (between its bench_rd marker
# comments) and the plots docs/bench/rd-<dataset>.png (issue 6), from scratch:
#   ecnr_bench_rd  ECNR and ZFP (libzfp) on the datasets of Testing/Benchmarks/rd.conf -> $BUILD/bench-rd/*.csv
#   rd_metrics.py  pvpython under Xvfb: Chamfer distance of isosurfaces, SSIM of volume renderings
#   rd_report.py   the plots, the markdown section, and a check (missing output or NaN metric: exit 1)
# Usage: [BUILD=build] scripts/bench_rd.sh [--quick] [dataset ...]
#   full suite: about 30 min on 2 cores (measured 32 min with other jobs sharing them; run it niced); naming
#   datasets runs only those (the section then has only them).
#   --quick: the quick suite (a small generated series, about a minute; what CI runs), written to
#   $BUILD/bench-rd-quick/ only: BENCHMARKS.md and docs/ are not touched. It asserts no speed.
# Needs the ParaView packages of `scripts/setup.sh -DECNR_BUILD_PARAVIEW=ON` (pvpython, Xvfb, python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
suite=full
if [ "${1:-}" = "--quick" ]; then suite=quick; shift; fi
out=$build/bench-rd$([ "$suite" = quick ] && echo -quick || true)
start=$(date +%s)

[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target ecnr_bench_rd -j"$(nproc)" >/dev/null
if ! command -v pvpython >/dev/null; then
  echo "bench_rd: pvpython not found (scripts/setup.sh -DECNR_BUILD_PARAVIEW=ON installs it)" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out/steps"
"$build/bin/ecnr_bench_rd" Testing/Benchmarks/rd.conf "$suite" "$out" "$@"
Testing/Python/with_xvfb.sh pvpython Testing/Benchmarks/rd_metrics.py "$out"
commit=unknown
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- Core || commit="$commit + uncommitted Core changes"
fi
report=(/usr/bin/python3 Testing/Benchmarks/rd_report.py "$out" --date "$(date -u '+%Y-%m-%d %H:%M UTC')"
        --commit "$commit")
if [ "$suite" = quick ]; then
  "${report[@]}" --plots "$out/plots" --section "$out/section.md" --wall $(($(date +%s) - start)) --check
else
  "${report[@]}" --plots docs/bench --section "$out/section.md" --wall $(($(date +%s) - start)) --check \
    --splice BENCHMARKS.md
fi
echo "bench_rd: $suite suite done in $(($(date +%s) - start)) s; results in $out"
