#include "SirenCpu.h"

#include <cmath>
#include <vector>

namespace ecnr {
namespace kernels {

namespace {

constexpr int kChunk = 16;  // voxels per inner vector loop (one AVX-512 register of floats)

inline float sinInline(float x) {
  // Reduce by multiples of pi (three-part constant keeps the remainder exact to float precision), then an
  // odd Taylor polynomial on [-pi/2, pi/2] (truncation error < 6e-8); the sign flips for odd multiples.
  const float k = std::floor(x * 0.318309886183790672f + 0.5f);
  float r = x - k * 3.140625f;
  r = r - k * 9.67502593994140625e-4f;
  r = r - k * 1.509957990978376432e-7f;
  const float r2 = r * r;
  const float p =
      r + r * r2 * (-1.6666667e-1f + r2 * (8.3333333e-3f + r2 * (-1.9841270e-4f + r2 * (2.7557319e-6f + r2 * -2.5052108e-8f))));
  const int odd = int(k) & 1;
  return odd ? -p : p;
}

// Scratch for one call: omega0-scaled weights (so the sine argument needs no extra multiply) and activations.
struct Scratch {
  std::vector<float> w, b, h0, h1;
};

void prepare(const SirenView& net, const float* latent, Scratch& s, std::vector<int>& wOffset) {
  const int H = net.hidden, L = net.sineLayers;
  s.w.clear();
  s.b.clear();
  wOffset.assign(size_t(L + 1), 0);
  // Layer 0: coordinate rows only; the latent part is constant in a block, folded into the bias.
  for (int l = 0; l <= L; ++l) {
    const bool sine = l < L;
    const int in = l == 0 ? 3 : H, out = l == L ? 1 : H;
    const float scale = sine ? net.omega0 : 1.0f;
    wOffset[size_t(l)] = int(s.w.size());
    for (int i = 0; i < in * out; ++i) s.w.push_back(scale * net.W[l][i]);
    for (int j = 0; j < out; ++j) {
      float bias = net.b[l][j];
      if (l == 0)
        for (int k = 0; k < net.inDim - 3; ++k) bias += latent[k] * net.W[0][(3 + k) * H + j];
      s.b.push_back(scale * bias);
    }
  }
  s.h0.assign(size_t(H * kChunk), 0.0f);
  s.h1.assign(size_t(H * kChunk), 0.0f);
}

}  // namespace

float fastSin(float x) { return sinInline(x); }

__attribute__((target_clones("avx512f", "avx2", "default")))
void evalSirenBlock(const SirenView& net, const float* latent, const int blockDims[3], const int validDims[3],
                    float* out) {
  thread_local Scratch s;
  thread_local std::vector<int> wOffset;
  prepare(net, latent, s, wOffset);
  const int H = net.hidden, L = net.sineLayers;
  const int bx = blockDims[0], by = blockDims[1], bz = blockDims[2];
  auto coord = [](int i, int n) { return n > 1 ? 2.0f * float(i) / float(n - 1) - 1.0f : 0.0f; };
  const int total = validDims[0] * validDims[1] * validDims[2];
  float cx[kChunk], cy[kChunk], cz[kChunk], y[kChunk];
  int dst[kChunk];
  for (int start = 0; start < total; start += kChunk) {
    const int n = std::min(kChunk, total - start);
    for (int v = 0; v < kChunk; ++v) {
      const int i = start + std::min(v, n - 1);  // tail lanes repeat the last voxel
      const int x = i % validDims[0], yy = (i / validDims[0]) % validDims[1], z = i / (validDims[0] * validDims[1]);
      cx[v] = coord(x, bx);
      cy[v] = coord(yy, by);
      cz[v] = coord(z, bz);
      dst[v] = (z * by + yy) * bx + x;
    }
    float* h = s.h0.data();
    float* g = s.h1.data();
    const float* W0 = s.w.data() + wOffset[0];
    for (int j = 0; j < H; ++j) {
      const float a = W0[j], bb = W0[H + j], c = W0[2 * H + j], bias = s.b[size_t(j)];
#pragma omp simd
      for (int v = 0; v < kChunk; ++v) h[j * kChunk + v] = sinInline(bias + a * cx[v] + bb * cy[v] + c * cz[v]);
    }
    for (int l = 1; l <= L; ++l) {
      const float* W = s.w.data() + wOffset[size_t(l)];
      const float* B = s.b.data() + (l * H);
      const int outN = l == L ? 1 : H;
      for (int j = 0; j < outN; ++j) {
        float acc[kChunk];
        for (int v = 0; v < kChunk; ++v) acc[v] = B[j];
        for (int i = 0; i < H; ++i) {
          const float w = W[i * outN + j];
#pragma omp simd
          for (int v = 0; v < kChunk; ++v) acc[v] += w * h[i * kChunk + v];
        }
        if (l == L) {
          for (int v = 0; v < kChunk; ++v) y[v] = acc[v];
        } else {
#pragma omp simd
          for (int v = 0; v < kChunk; ++v) g[j * kChunk + v] = sinInline(acc[v]);
        }
      }
      std::swap(h, g);
    }
    for (int v = 0; v < n; ++v) out[dst[v]] = y[v];
  }
  (void)bz;
}

}  // namespace kernels
}  // namespace ecnr
