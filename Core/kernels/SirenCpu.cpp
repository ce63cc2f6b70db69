#include "SirenCpu.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "LatentGrid.h"
#include "SirenIsa.h"

// The portable copy of the vector helpers (this file has no -m flags), for fastSin.
#define ECNR_KERNEL_ISA generic
#include "SirenSimd.h"

namespace ecnr {
namespace kernels {

namespace {

constexpr float kInvPi = 0.318309886183790672f;

std::atomic<const IsaKernels*> forcedKernels{nullptr};

const IsaKernels& bestKernels() {
  static const IsaKernels* best = isaSupported(Isa::Avx512) ? &avx512::kKernels
                                  : isaSupported(Isa::Avx2) ? &avx2::kKernels
                                                            : &generic::kKernels;
  return *best;
}

// Per thread: the prepared weights, the coordinates of the block's valid voxels and the outputs.
struct DecodeScratch {
  std::vector<float> w, coords, y, act;
  std::array<int, 8> coordsKey{};  // block and valid dims, lanes and latent grid of the rows in `coords`
};

int padded(int h) { return (h + 7) / 8 * 8; }

}  // namespace

bool isaSupported(Isa isa) {
  switch (isa) {
    case Isa::Auto:
    case Isa::Generic:
      return true;
#if defined(ECNR_HAVE_X86_KERNELS)
    case Isa::Avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
    default:
      return false;
  }
}

const IsaKernels& activeKernels() {
  const IsaKernels* k = forcedKernels.load(std::memory_order_relaxed);
  return k ? *k : bestKernels();
}

bool forceIsa(Isa isa) {
  if (!isaSupported(isa)) return false;
  forcedKernels.store(isa == Isa::Auto      ? nullptr
                      : isa == Isa::Generic ? &generic::kKernels
                      : isa == Isa::Avx2    ? &avx2::kKernels
                                            : &avx512::kKernels);
  return true;
}

float fastSin(float x) { return generic::sinPiFast(generic::Vec::set1(x * kInvPi))[0]; }

void evalSirenBlock(const SirenView& v, const float* latent, const int blockDims[3], const int validDims[3],
                    float* out, float time) {
  const int H = v.hidden, S = v.sineLayers, Hp = padded(H);
  const int L = v.inDim - 3 - v.timeInputs;
  if (H < 1 || Hp > 1024 || S < 1 || S > kMaxSineLayers || L < 0 || v.timeInputs < 0 || v.timeInputs > 1 ||
      v.latentGrid < 1 || v.latentGrid > kMaxLatentGrid)
    throw std::invalid_argument("evalSirenBlock: unsupported MLP shape");
  const int corners = latentCorners(v.latentGrid);
  const IsaKernels& k = activeKernels();
  thread_local DecodeScratch s;
  // Weights: sine layers scaled by omega0 / pi, the latent (and time) part of layer 0 folded into its bias (one
  // code), or into one row per corner whose input is the corner's weight (a latent grid; the bias is then 0).
  const float scale = v.omega0 * kInvPi;
  const size_t hh = size_t(Hp) * size_t(Hp);
  const int rows = corners == 1 ? 3 : 3 + corners;
  s.w.assign(size_t((rows + 1) * Hp) + size_t(S - 1) * (hh + size_t(Hp)) + size_t(Hp), 0.0f);
  float* p = s.w.data();
  DecodeNet net;
  net.hidden = Hp;
  net.sineLayers = S;
  net.inRows = rows;
  net.w0 = p;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < H; ++j) p[i * Hp + j] = scale * v.W[0][i * H + j];
  auto folded = [&](const float* code, float* to) {
    for (int j = 0; j < H; ++j) {
      float bias = v.b[0][j];
      for (int q = 0; q < L; ++q) bias += code[q] * v.W[0][(3 + q) * H + j];
      if (v.timeInputs) bias += time * v.W[0][(3 + L) * H + j];
      to[j] = scale * bias;
    }
  };
  if (corners > 1)
    for (int c = 0; c < corners; ++c) folded(latent + c * L, p + (3 + c) * Hp);
  p += rows * Hp;
  net.b0 = p;
  if (corners == 1) folded(latent, p);
  p += Hp;
  for (int l = 1; l < S; ++l) {
    net.w[l] = p;
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < H; ++j) p[size_t(i * Hp + j)] = scale * v.W[l][i * H + j];
    p += hh;
    net.b[l] = p;
    for (int j = 0; j < H; ++j) p[j] = scale * v.b[l][j];
    p += Hp;
  }
  net.wOut = p;
  for (int j = 0; j < H; ++j) p[j] = v.W[S][j];
  net.bOut = v.b[S][0];

  // Coordinates of the valid voxels (x fastest), padded to whole vectors by repeating the last voxel. Neighbouring
  // blocks mostly share their shape, so the table is kept until the shape changes.
  const int bx = blockDims[0], by = blockDims[1], bz = blockDims[2];
  const int vx = validDims[0], vy = validDims[1], vz = validDims[2];
  const int count = vx * vy * vz;
  if (count <= 0) return;
  const int n = (count + k.lanes - 1) / k.lanes * k.lanes;
  const std::array<int, 8> key{bx, by, bz, vx, vy, vz, k.lanes, v.latentGrid};
  if (key != s.coordsKey) {
    s.coordsKey = key;
    s.coords.resize(size_t(rows) * size_t(n));
    float* cx = s.coords.data();
    float* cy = cx + n;
    float* cz = cy + n;
    auto axis = [](int len, int valid) {
      std::vector<float> t(static_cast<size_t>(valid));
      for (int i = 0; i < valid; ++i) t[size_t(i)] = len > 1 ? 2.0f * float(i) / float(len - 1) - 1.0f : 0.0f;
      return t;
    };
    const std::vector<float> tx = axis(bx, vx), ty = axis(by, vy), tz = axis(bz, vz);
    int idx = 0;
    for (int z = 0; z < vz; ++z)
      for (int y = 0; y < vy; ++y)
        for (int x = 0; x < vx; ++x, ++idx) {
          cx[idx] = tx[size_t(x)];
          cy[idx] = ty[size_t(y)];
          cz[idx] = tz[size_t(z)];
        }
    for (; idx < n; ++idx) {
      cx[idx] = cx[count - 1];
      cy[idx] = cy[count - 1];
      cz[idx] = cz[count - 1];
    }
    if (corners > 1)
      for (int i = 0; i < n; ++i) {
        const float u[3] = {cx[i], cy[i], cz[i]};
        float w[8] = {};
        latentCornerWeights(v.latentGrid, u, w);
        for (int c = 0; c < corners; ++c) s.coords[size_t(3 + c) * size_t(n) + size_t(i)] = w[c];
      }
  }
  s.y.resize(size_t(n));
  s.act.resize(size_t(2 * Hp * k.lanes));
  net.scratch = s.act.data();
  k.decode(net, s.coords.data(), n, s.y.data());
  if (vx == bx && vy == by && vz == bz) {
    std::copy(s.y.begin(), s.y.begin() + count, out);
    return;
  }
  int idx = 0;
  for (int z = 0; z < vz; ++z)
    for (int y = 0; y < vy; ++y)
      for (int x = 0; x < vx; ++x) out[(z * by + y) * bx + x] = s.y[size_t(idx++)];
}

}  // namespace kernels
}  // namespace ecnr
