#!/usr/bin/env bash
# A bounded libFuzzer pass over the archive reader (issue 7), for CI and by hand.
# Usage: Testing/Fuzz/fuzz.sh [total seconds, default 60] [seed folder, default build/fuzz-corpus]
# Builds build-fuzz/ (or $ECNR_FUZZ_BUILD) with clang++-14 from the Core sources only (no LibTorch), replays the seeds and
# Testing/Fuzz/regressions/ under ASan/UBSan, then fuzzes ecnr_fuzz_archive (2/3 of the time) and ecnr_fuzz_decode
# (1/3). The seeds are real small archives from ecnr_make_corpus (the ctest fixture FuzzCorpusGenerate writes them
# to build/fuzz-corpus). New inputs accumulate in build-fuzz/corpus-*; a finding is written to build-fuzz/artifacts/
# and fails the script: minimize it (-minimize_crash=1), fix, and add it to Testing/Fuzz/regressions/.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
seeds=${2:-build/fuzz-corpus}
out=${ECNR_FUZZ_BUILD:-build-fuzz}  # the clang build folder
if ! command -v clang++-14 >/dev/null; then
  echo "fuzz.sh: clang++-14 is missing (Debian: clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
  echo "fuzz.sh: no seed archives in $seeds (run ecnr_make_corpus $seeds)" >&2
  exit 1
fi
cmake -S Testing/Fuzz -B "$out" -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$out" -j"$(nproc)" >/dev/null
mkdir -p "$out"/artifacts
for target in archive decode; do
  if [ "$target" = archive ]; then budget=$((seconds * 2 / 3)); else budget=$((seconds - seconds * 2 / 3)); fi
  corpus="$out"/corpus-$target
  mkdir -p "$corpus"
  # libFuzzer runs every file of the given folders once with -runs=0: the seeds and the regressions.
  if ! "$out"/ecnr_fuzz_$target -runs=0 "$seeds" Testing/Fuzz/regressions >"$out/replay-$target.log" 2>&1; then
    tail -40 "$out/replay-$target.log" >&2
    echo "fuzz.sh: ecnr_fuzz_$target fails on a seed or a regression input" >&2
    exit 1
  fi
  set +e
  "$out"/ecnr_fuzz_$target "$corpus" "$seeds" -max_total_time="$budget" -max_len=4096 \
    -artifact_prefix="$out"/artifacts/ -print_final_stats=1 >"$out/fuzz-$target.log" 2>&1
  status=$?
  set -e
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec)|ERROR|runtime error|invariant|artifact" \
    "$out/fuzz-$target.log" | sed "s/^/ecnr_fuzz_$target: /" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$out/fuzz-$target.log" >&2
    echo "fuzz.sh: ecnr_fuzz_$target found a failing input (see $out/artifacts/)" >&2
    exit 1
  fi
done
echo "fuzz.sh: no findings"
