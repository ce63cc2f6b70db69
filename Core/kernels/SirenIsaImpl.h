// SirenIsaImpl: the fused SIREN kernels written once against SirenSimd.h's Vec; each SirenIsa*.cpp includes it
// under its own instruction-set flags. Activations live in (feature x voxel) arrays, so one vector holds one
// neuron for `lanes` voxels; a layer is a tile of T output neurons kept in T registers while the inputs stream
// by, each weight broadcast from memory into a fused multiply-add (the "outer product" form).
#pragma once

#include "SirenIsa.h"
#include "SirenSimd.h"

namespace ecnr {
namespace kernels {
namespace ECNR_KERNEL_ISA {

constexpr int L = Vec::W;
// Output neurons per register tile: 24 of AVX-512's 32 registers, 8 of AVX2's 16.
constexpr int kTile = Vec::W == 16 ? 24 : 8;

/// acc[t] = B[j0 + t] + sum_i W[i * ldW + j0 + t] * in[i * ldIn + s0 ..], then epi(j, acc) for each t.
template <int T, class Epi>
inline void denseTile(const float* W, int ldW, const float* B, int fanIn, const float* in, size_t ldIn, int j0, Epi& epi) {
  R acc[T];
#pragma GCC unroll 32
  for (int t = 0; t < T; ++t) acc[t] = B ? Vec::set1(B[j0 + t]) : Vec::zero();
  for (int i = 0; i < fanIn; ++i) {
    const R v = Vec::load(in + size_t(i) * ldIn);
    const float* w = W + size_t(i) * size_t(ldW) + j0;
#pragma GCC unroll 32
    for (int t = 0; t < T; ++t) acc[t] = Vec::fma(Vec::set1(w[t]), v, acc[t]);
  }
#pragma GCC unroll 32
  for (int t = 0; t < T; ++t) epi(j0 + t, acc[t]);
}

/// All fanOut outputs for one vector of voxels (in points at the vector's first voxel of input row 0).
template <class Epi>
inline void dense(const float* W, int ldW, const float* B, int fanIn, int fanOut, const float* in, size_t ldIn, Epi&& epi) {
  int j = 0;
  for (; j + kTile <= fanOut; j += kTile) denseTile<kTile>(W, ldW, B, fanIn, in, ldIn, j, epi);
  for (; j + 8 <= fanOut; j += 8) denseTile<8>(W, ldW, B, fanIn, in, ldIn, j, epi);
  for (; j < fanOut; ++j) denseTile<1>(W, ldW, B, fanIn, in, ldIn, j, epi);
}

// ---------------------------------------------------------------------------------------------- decoding

void decode(const DecodeNet& net, const float* coords, int n, float* y) {
  const int H = net.hidden;
  for (int s0 = 0; s0 < n; s0 += L) {
    float* h = net.scratch;
    float* g = net.scratch + size_t(H) * L;
    dense(net.w0, H, net.b0, net.inRows, H, coords + s0, size_t(n), [&](int j, R a) { Vec::store(h + j * L, sinPiFast(a)); });
    R out[2] = {Vec::set1(net.bOut), Vec::zero()};
    for (int l = 1; l < net.sineLayers; ++l) {
      if (l + 1 < net.sineLayers) {
        dense(net.w[l], H, net.b[l], H, H, h, L, [&](int j, R a) { Vec::store(g + j * L, sinPiFast(a)); });
        float* tmp = h;
        h = g;
        g = tmp;
      } else {  // the last sine layer feeds the linear output directly
        dense(net.w[l], H, net.b[l], H, H, h, L,
              [&](int j, R a) { out[j & 1] = Vec::fma(Vec::set1(net.wOut[j]), sinPiFast(a), out[j & 1]); });
      }
    }
    if (net.sineLayers == 1)
      for (int j = 0; j < H; ++j) out[j & 1] = Vec::fma(Vec::set1(net.wOut[j]), Vec::load(h + j * L), out[j & 1]);
    Vec::store(y + s0, Vec::add(out[0], out[1]));
  }
}

// ---------------------------------------------------------------------------------------------- training

/// g[i * fanOut + j] += sum over the n samples of A[i][s] * D[j][s], for a tile of TI x TJ weights.
template <int TI, int TJ>
inline void gradTile(const float* A, const float* D, int n, int fanOut, int i0, int j0, float* g) {
  R acc[TI * TJ];
#pragma GCC unroll 32
  for (int t = 0; t < TI * TJ; ++t) acc[t] = Vec::zero();
  for (int s = 0; s < n; s += L) {
    R av[TI];
#pragma GCC unroll 32
    for (int a = 0; a < TI; ++a) av[a] = Vec::load(A + size_t(i0 + a) * size_t(n) + s);
#pragma GCC unroll 32
    for (int b = 0; b < TJ; ++b) {
      const R d = Vec::load(D + size_t(j0 + b) * size_t(n) + s);
#pragma GCC unroll 32
      for (int a = 0; a < TI; ++a) acc[a * TJ + b] = Vec::fma(av[a], d, acc[a * TJ + b]);
    }
  }
#if defined(__AVX512F__)
  if constexpr (TI * TJ == 16) {
    alignas(64) float sums[16];
    Vec::hsum16(acc, sums);
    for (int a = 0; a < TI; ++a)
      for (int b = 0; b < TJ; ++b) g[size_t(i0 + a) * size_t(fanOut) + size_t(j0 + b)] += sums[a * TJ + b];
    return;
  }
#endif
#pragma GCC unroll 32
  for (int a = 0; a < TI; ++a)
#pragma GCC unroll 32
    for (int b = 0; b < TJ; ++b) g[size_t(i0 + a) * size_t(fanOut) + size_t(j0 + b)] += Vec::hsum(acc[a * TJ + b]);
}

template <int TI>
inline void gradRows(const float* A, const float* D, int n, int fanOut, int i0, float* g) {
  int j = 0;
  for (; j + 8 <= fanOut; j += 8) gradTile<TI, 8>(A, D, n, fanOut, i0, j, g);
  for (; j < fanOut; ++j) gradTile<TI, 1>(A, D, n, fanOut, i0, j, g);
}

/// Weight gradient of a layer: rows of A (fanIn x n) times rows of D (fanOut x n).
inline void weightGrad(const float* A, const float* D, int n, int fanIn, int fanOut, float* g) {
  constexpr int TI = Vec::W == 16 ? 2 : 1;
  int i = 0;
  for (; i + TI <= fanIn; i += TI) gradRows<TI>(A, D, n, fanOut, i, g);
  for (; i < fanIn; ++i) gradRows<1>(A, D, n, fanOut, i, g);
}

inline void biasGrad(const float* D, int n, int fanOut, float* g) {
  for (int j = 0; j < fanOut; ++j) {
    R acc = Vec::zero();
    for (int s = 0; s < n; s += L) acc = Vec::add(acc, Vec::load(D + size_t(j) * size_t(n) + s));
    g[j] += Vec::hsum(acc);
  }
}

double trainBatch(const TrainNet& net, int n, const float* x, const float* target, const float* scale, float* dLatent,
                  float* scratch) {
  const int H = net.hidden, S = net.sineLayers, D = net.inDim;
  const size_t N = size_t(n);
  // scratch: h[l] (H x n) and c[l] (H x n) per sine layer, then y / dy (n)
  auto hOf = [&](int l) { return scratch + size_t(2 * l) * H * N; };
  auto cOf = [&](int l) { return scratch + size_t(2 * l + 1) * H * N; };
  float* dy = scratch + size_t(2 * S) * H * N;
  const R omega = Vec::set1(net.omega0);
  R lossAcc = Vec::zero();
  for (int s0 = 0; s0 < n; s0 += L) {
    // forward: keep sin (the activation) and omega0 * cos (its derivative) of every sine layer
    for (int l = 0; l < S; ++l) {
      const float* in = l == 0 ? x + s0 : hOf(l - 1) + s0;
      float* h = hOf(l) + s0;
      float* c = cOf(l) + s0;
      dense(net.w[l], H, net.b[l], l == 0 ? D : H, H, in, N, [&](int j, R a) {
        R sv, cv;
        sinCosPi(a, sv, cv);
        Vec::store(h + size_t(j) * N, sv);
        Vec::store(c + size_t(j) * N, Vec::mul(omega, cv));
      });
    }
    const float* hl = hOf(S - 1) + s0;
    R y0 = Vec::set1(net.b[S][0]), y1 = Vec::zero();
    for (int j = 0; j + 1 < H; j += 2) {
      y0 = Vec::fma(Vec::set1(net.w[S][j]), Vec::load(hl + size_t(j) * N), y0);
      y1 = Vec::fma(Vec::set1(net.w[S][j + 1]), Vec::load(hl + size_t(j + 1) * N), y1);
    }
    if (H & 1) y0 = Vec::fma(Vec::set1(net.w[S][H - 1]), Vec::load(hl + size_t(H - 1) * N), y0);
    const R e = Vec::sub(Vec::add(y0, y1), Vec::load(target + s0));
    const R se = Vec::mul(Vec::load(scale + s0), e);
    lossAcc = Vec::fma(se, e, lossAcc);
    const R d = Vec::add(se, se);
    Vec::store(dy + s0, d);
    // backward: overwrite c[l] with the pre-activation gradient da[l] = dh[l] * omega0 cos(.)
    {
      float* c = cOf(S - 1) + s0;
      for (int j = 0; j < H; ++j)
        Vec::store(c + size_t(j) * N, Vec::mul(Vec::mul(Vec::set1(net.w[S][j]), d), Vec::load(c + size_t(j) * N)));
    }
    for (int l = S - 1; l >= 1; --l) {
      float* cPrev = cOf(l - 1) + s0;
      dense(net.wt[l], H, nullptr, H, H, cOf(l) + s0, N, [&](int i, R a) {
        float* p = cPrev + size_t(i) * N;
        Vec::store(p, Vec::mul(a, Vec::load(p)));
      });
    }
    // input gradient of the latent rows only (the coordinates are not trained)
    float* dl = dLatent + s0;
    dense(net.wt[0] + 3, D, nullptr, H, D - 3, cOf(0) + s0, N,
          [&](int k, R a) { Vec::store(dl + size_t(k) * N, a); });
  }
  // weight and bias gradients over the whole batch
  for (int l = 0; l < S; ++l) {
    weightGrad(l == 0 ? x : hOf(l - 1), cOf(l), n, l == 0 ? D : H, H, net.gw[l]);
    biasGrad(cOf(l), n, H, net.gb[l]);
  }
  weightGrad(hOf(S - 1), dy, n, H, 1, net.gw[S]);
  biasGrad(dy, n, 1, net.gb[S]);
  return double(Vec::hsum(lossAcc));
}

}  // namespace ECNR_KERNEL_ISA
}  // namespace kernels
}  // namespace ecnr
