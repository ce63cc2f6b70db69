#!/usr/bin/env bash
# Regenerates the "Scale" section of BENCHMARKS.md (issue 9): the memory of an out-of-core encode of a generated
# series of 2 GB (256^3 x 32 float32, the embedded Gray-Scott generator), read through a memory map and never held,
# with a preset of one epoch per scale (this is about memory and correctness, not quality); the same under a
# --memory-limit below that peak (the encoder then picks time windows that fit); and a one-step decode.
# Peak memory is the process's maximum resident set (GNU time's %M), start-up included; the baseline is that of
# `ecnr --help` (the program and its libraries: LibTorch, OpenMP, BLAS).
# Usage: scripts/bench_scale.sh [X,Y,Z,T (default 256,256,256,32)] [limit as a fraction of the raw size (0.9)]
# About 70 min on 2 cores for the default size.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-256,256,256,32}
fraction=${2:-0.9}
cmake --build build --target ecnr -j"$(nproc)" >/dev/null
work=build/bench-scale
mkdir -p "$work"
ecnr=build/bin/ecnr
if [ "$(cat "$work/series.size" 2>/dev/null)" != "$size" ]; then
  "$ecnr" generate "$work/series.npy" --size "$size" >/dev/null
  echo "$size" > "$work/series.size"
fi
start=$(date +%s)
opts=(--preset fast --epochs 1,1,1 --seed 1)

# peak resident KB and wall seconds of a command: "KB seconds" (its output goes to $work/<name>.log)
measure() {
  local name=$1
  shift
  /usr/bin/time -f "%M %e" -o "$work/$name.time" "$@" > "$work/$name.log" 2>&1
  cat "$work/$name.time"
}
mib() { python3 -c "print(f'{$1 / 1048576:.0f}')"; }
IFS=, read -r nx ny nz steps <<< "$size"
step=$((nx * ny * nz * 4))
raw=$((step * steps))

read -r base _ < <(measure baseline "$ecnr" --help)
read -r enc_kb enc_s < <(measure encode "$ecnr" compress "$work/series.npy" "$work/series.ecnr" "${opts[@]}")
limit=$(python3 -c "print(int($fraction * $raw))")
read -r lim_kb lim_s < <(measure limited "$ecnr" compress "$work/series.npy" "$work/limited.ecnr" "${opts[@]}" \
                         --memory-limit "$limit")
t=$((steps / 2))
read -r dec_kb dec_s < <(measure decode "$ecnr" decompress "$work/series.ecnr" "$work/step.npy" --timestep "$t")
model=$("$ecnr" info "$work/series.ecnr" | sed -n 's/.*, \([0-9]*\) bytes in memory when read$/\1/p' | head -1)
windows=$(sed -n 's/.*encoding in windows of \([0-9]*\) steps.*/\1/p' "$work/limited.log" | head -1)
ratio() { sed -n 's/^wrote .*ratio \([0-9.]*\),.*/\1/p' "$work/$1.log"; }
finest() { grep '^  scale' "$work/$1.log" | tail -1 | sed -n 's/.*PSNR \([0-9.]*\) dB.*/\1/p'; }
x() { python3 -c "print(f'{$1:.2f}')"; }
minutes=$(( ($(date +%s) - start + 59) / 60 ))
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')

section=$(mktemp)
{
  echo "<!-- bench_scale begin -->"
  echo "## Scale: a series larger than its memory budget (issue 9)"
  echo
  echo "\`scripts/bench_scale.sh $size $fraction\` ($minutes min), measured $(date -u '+%Y-%m-%d %H:%M UTC') on $cpu,"
  echo "$(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown). Embedded Gray–Scott series $size"
  echo "($(mib "$raw") MiB of float32 in a .npy file), \`${opts[*]}\`. Peak = maximum resident set of the"
  echo "process (GNU time), start-up included; the program alone (\`ecnr --help\`: LibTorch, OpenMP, BLAS) is"
  echo "$(mib $((base * 1024))) MiB of it."
  echo
  echo "| run | peak (MiB) | peak / raw size | limit | seconds | ratio | PSNR finest scale (dB; windows: the last) |"
  echo "|---|---|---|---|---|---|---|"
  echo "| compress | $(mib $((enc_kb * 1024))) | $(x "$enc_kb * 1024 / $raw") | — | $enc_s | $(ratio encode) | $(finest encode) |"
  echo "| compress --memory-limit $(mib "$limit") MiB (${fraction} × raw): windows of ${windows:-all} steps | $(mib $((lim_kb * 1024))) | $(x "$lim_kb * 1024 / $raw") | $(x "$lim_kb * 1024 / $limit") × limit | $lim_s | $(ratio limited) | $(finest limited) |"
  echo "| decompress --timestep $t | $(mib $((dec_kb * 1024))) | $(x "$dec_kb * 1024 / $raw") | — | $dec_s | | |"
  echo
  echo "One decoded step is $(mib "$step") MiB and the model $(mib "$model") MiB in memory: the decode's peak above"
  echo "the program alone, $(mib $(((dec_kb - base) * 1024))) MiB, is $(x "($dec_kb - $base) * 1024 / ($step + $model)") × (one step + model)."
  echo "<!-- bench_scale end -->"
} > "$section"
scripts/splice_section.py bench_scale "$section"
rm -f "$section"
echo "BENCHMARKS.md: scale section rewritten ($work)"
