#!/usr/bin/env bash
# The rate-distortion race of issue 10: each idea (a variant of the default preset) against the paper-faithful
# preset, PSNR at CR 300 and 1000 on the datasets of Testing/Benchmarks/race.conf; rewrites the "Rate–distortion
# race" section of BENCHMARKS.md (between its bench_race markers).
# Usage: [BUILD=build] [RACE_OUT=dir] scripts/bench_race.sh [--quick] [--variants a,b,..] [dataset ...]
#   full: every variant (`build/bin/ecnr_bench_race list`) on every dataset, about an hour per variant at one thread;
#   the points go to $RACE_OUT (default $BUILD/bench-race), one file per dataset and variant, and pairs already
#   there are kept (--resume): run several of these at once with OMP_NUM_THREADS=1 and different --variants,
#   then ASSEMBLE_ONLY=1 scripts/bench_race.sh to write the section from what is there.
#   --quick: a small generated series with a few epochs (what CI runs), to $BUILD/bench-race-quick; BENCHMARKS.md
#   is not touched; fails when the report lacks a row.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
suite=full
if [ "${1:-}" = "--quick" ]; then suite=quick; shift; fi
out=${RACE_OUT:-$build/bench-race$([ "$suite" = quick ] && echo -quick || true)}
conf=Testing/Benchmarks/race.conf
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target ecnr_bench_race -j"$(nproc)" >/dev/null
bin=$build/bin/ecnr_bench_race
start=$(date +%s)
if [ "$suite" = quick ]; then
  rm -rf "$out"
  "$bin" run "$conf" "$out" --suite quick --variants paper,default "$@"
  "$bin" report "$conf" "$out" "$out/race.md"
  cat "$out/race.md"
  for v in paper default; do
    grep -q "^| gs-quick | $v |" "$out/race.md" || { echo "bench_race: no $v row" >&2; exit 1; }
  done
  echo "bench_race: quick suite done in $(($(date +%s) - start)) s"
  exit 0
fi
[ "${ASSEMBLE_ONLY:-0}" = 1 ] || "$bin" run "$conf" "$out" --resume "$@"
"$bin" report "$conf" "$out" "$out/race.md"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
section=$(mktemp)
{
  echo "<!-- bench_race begin -->"
  echo "## Rate–distortion race (issue 10)"
  echo
  echo "\`scripts/bench_race.sh\` (report written $(date -u '+%Y-%m-%d %H:%M UTC') at $commit from the points in"
  echo "\`$out\`), measured on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), one thread per"
  echo "process. Every variant of a dataset has the same epoch budget (30/30/40, the \`fast\` preset's), seed and"
  echo "CNN steps; each point is an archive written, read back and decoded; PSNR at CR 300 and 1000 is interpolated"
  echo "in log CR between the points that bracket it (n/a: no point on one side — the smallest network of gs48 and"
  echo "navy stays under CR 1000). \`paper\` is \`--preset paper\` (Settings.cpp says what it holds) without"
  echo "training its 32-channel boundary CNN: at 9 bits it is 95 KB, more than any archive here, so the encoder's"
  echo "keep rule (a CNN must pay for its bytes) would drop it every time. The other rows change one knob each of"
  echo "their base: \`code-per-step\` (the previous default, a latent code per block per step) for most, or"
  echo "\`codebook-size\` (the default before the rate-aware codebooks) for the ideas raced before those. SPERR / TTHRESH / SZ3: reference figures measured outside this project (issue 4), not run here."
  echo
  cat "$out/race.md"
  echo "<!-- bench_race end -->"
} > "$section"
scripts/splice_section.py bench_race "$section"
rm -f "$section"
echo "BENCHMARKS.md: race section rewritten from $out ($(($(date +%s) - start)) s)"
