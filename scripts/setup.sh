#!/usr/bin/env bash
# Installs the Debian 12 packages ECNR needs (idempotent), configures and builds into ./build.
# Usage: scripts/setup.sh [extra cmake arguments]   (-DECNR_BUILD_PARAVIEW=ON also installs ParaView 5.11)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libtorch-dev libopenblas0-pthread libpng-dev libzstd-dev
          libxxhash-dev googletest libgtest-dev libbenchmark-dev libzfp-dev
          clang-14 libclang-rt-14-dev libomp-14-dev   # clang: the fuzzers and the ASan/UBSan tests (.ci/run)
          libopenmpi-dev openmpi-bin)                  # `mpiexec -n N ecnr compress|decompress` (issue 9)
# With -DECNR_BUILD_PARAVIEW=ON: Debian's ParaView 5.11 (its own VTK; never libvtk9-dev), the -dev packages its
# full CMake config asks for (Qt, for the writer's size-estimate widget), and what the ParaView tests run
# (Xvfb for rendering; mpiexec for pvbatch pieces comes with the base packages).
if [[ " $* " == *" -DECNR_BUILD_PARAVIEW=ON "* ]]; then
  packages+=(paraview paraview-dev python3-paraview python3-numpy python3-matplotlib
             libqt5svg5-dev libutfcpp-dev qttools5-dev libxml2-dev libhdf5-dev libogg-dev libtheora-dev
             libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libgl2ps-dev libnetcdf-dev libgdal-dev
             libglew-dev libdouble-conversion-dev libfreetype-dev qtxmlpatterns5-dev-tools
             xvfb xauth)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
