#include "Conv3dCpu.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#define ECNR_CONV_X86 1
#endif
#if defined(__GNUC__)
#define ECNR_CONV_INLINE inline __attribute__((always_inline))
#else
#define ECNR_CONV_INLINE inline
#endif

namespace ecnr {
namespace kernels {
namespace {

constexpr int kTail = 8;  // rows are computed to a multiple of 8 in x: wide chunks first, then 8-wide ones

// OB output channels x XW consecutive x per chunk: the OB*XW accumulators stay in registers and every input
// vector loaded serves OB channels. The fixed trip counts let GCC vectorize and fully unroll the inner loops (the
// unroll pragmas make -O2 do what -O3 does by itself).
template <int OB, int XW, int K>
ECNR_CONV_INLINE void rowBlock(const float* const* rows, int nrows, const float* w, const float* bias, int64_t x0,
                               int64_t x1, float* const* outRows, bool act, float slope) {
  for (int64_t x = x0; x < x1; x += XW) {
    float acc[OB][XW];
    for (int o = 0; o < OB; ++o)
      for (int i = 0; i < XW; ++i) acc[o][i] = bias[o];
    const float* wp = w;
    for (int n = 0; n < nrows; ++n) {
      const float* row = rows[n] + x;
#pragma GCC unroll 8
      for (int kx = 0; kx < K; ++kx, wp += OB)
#pragma GCC unroll 16
        for (int o = 0; o < OB; ++o) {
          const float wv = wp[o];
#pragma omp simd
          for (int i = 0; i < XW; ++i) acc[o][i] += wv * row[kx + i];
        }
    }
    for (int o = 0; o < OB; ++o) {
      float* dst = outRows[o] + x;
      for (int i = 0; i < XW; ++i) {
        const float v = acc[o][i];
        dst[i] = act && v < 0 ? v * slope : v;
      }
    }
  }
}

// Padded plane geometry: every channel is (ny + 2r) rows of rowStride floats; voxel (x, y) sits at
// (y + r) * rowStride + x + r. The margins hold replicated edge values (the replicate padding).
struct Geometry {
  int64_t nx = 0, ny = 0, nxPad = 0, rowStride = 0, chanStride = 0;
  int r = 0;
};

// One layer, weights regrouped for the kernel: group g covers output channels [start, start + size) and its
// weights are [ic][kz][ky][kx][o] (o fastest), so the inner loop reads them sequentially.
struct Layer {
  int cin = 0, cout = 0, kd = 0;  // kd: taps along z (1 when nz == 1, see conv3dStack)
  bool act = false;
  std::vector<float> w, bias;
  std::vector<int> start, size;
  std::vector<size_t> wOffset;
};

// Copies padded row y (x margins included) into the r margin rows above (y == 0) or below (y == ny - 1).
inline void fillYMargins(float* chan, int64_t y, const Geometry& g) {
  const float* row = chan + (y + g.r) * g.rowStride;
  if (y == 0)
    for (int i = 0; i < g.r; ++i) std::copy(row, row + g.rowStride, chan + i * g.rowStride);
  if (y == g.ny - 1)
    for (int i = 1; i <= g.r; ++i) std::copy(row, row + g.rowStride, chan + (y + g.r + i) * g.rowStride);
}

// One task: row y of one channel group of one output plane. planes[kz] are the kd input planes.
struct Task {
  const Layer* layer;
  const Geometry* g;
  const float* planes[5];
  float* outPlane;
  float slope;
  // Last layer only: out = (residual ? in : 0) + result, row by row.
  const float* resIn;
  float* out;
  bool residual;
};

template <int OBM, int XWM, int XWS, int K>
ECNR_CONV_INLINE void runTaskK(const Task& t, int group, int64_t y, const float** rows) {
  const Layer& L = *t.layer;
  const Geometry& g = *t.g;
  int n = 0;
  for (int ic = 0; ic < L.cin; ++ic)
    for (int kz = 0; kz < L.kd; ++kz)
      for (int ky = 0; ky < K; ++ky) rows[n++] = t.planes[kz] + ic * g.chanStride + (y + ky) * g.rowStride;
  const int oc0 = L.start[size_t(group)], ob = L.size[size_t(group)];
  float* outRows[OBM];
  for (int o = 0; o < ob; ++o) outRows[o] = t.outPlane + (oc0 + o) * g.chanStride + (y + g.r) * g.rowStride + g.r;
  const float* w = L.w.data() + L.wOffset[size_t(group)];
  const float* b = L.bias.data() + oc0;
  if (ob == OBM) {
    const int64_t xm = g.nxPad / XWM * XWM;
    rowBlock<OBM, XWM, K>(rows, n, w, b, 0, xm, outRows, L.act, t.slope);
    rowBlock<OBM, kTail, K>(rows, n, w, b, xm, g.nxPad, outRows, L.act, t.slope);
  } else {
    const int64_t xm = g.nxPad / XWS * XWS;
    rowBlock<1, XWS, K>(rows, n, w, b, 0, xm, outRows, L.act, t.slope);
    rowBlock<1, kTail, K>(rows, n, w, b, xm, g.nxPad, outRows, L.act, t.slope);
  }
  if (t.out) {
    const float* o = outRows[0];
    const float* src = t.resIn + y * g.nx;
    float* dst = t.out + y * g.nx;
    for (int64_t x = 0; x < g.nx; ++x) dst[x] = t.residual ? src[x] + o[x] : o[x];
    return;
  }
  // Margins of the rows just written (the chunks also overwrote the right margin with values for x >= nx).
  for (int o = 0; o < ob; ++o) {
    float* row = outRows[o];
    for (int i = 1; i <= g.r; ++i) {
      row[-i] = row[0];
      row[g.nx - 1 + i] = row[g.nx - 1];
    }
    fillYMargins(t.outPlane + (oc0 + o) * g.chanStride, y, g);
  }
}

template <int OBM, int XWM, int XWS>
ECNR_CONV_INLINE void runTask(const Task& t, int group, int64_t y, const float** rows) {
  switch (t.g->r) {
    case 0: runTaskK<OBM, XWM, XWS, 1>(t, group, y, rows); break;
    case 1: runTaskK<OBM, XWM, XWS, 3>(t, group, y, rows); break;
    default: runTaskK<OBM, XWM, XWS, 5>(t, group, y, rows); break;
  }
}

using TaskFn = void (*)(const Task&, int, int64_t, const float**);

// Block sizes per instruction set, measured: SSE2 has 16 registers of 4 (2 x 16 accumulators); AVX2 16 of 8
// (4 x 16); AVX-512 32 of 16 (8 x 32).
constexpr int kGenericOB = 2, kAvx2OB = 4, kAvx512OB = 8;
void taskGeneric(const Task& t, int group, int64_t y, const float** rows) {
  runTask<kGenericOB, 16, 16>(t, group, y, rows);
}
#ifdef ECNR_CONV_X86
__attribute__((target("avx2,fma"))) void taskAvx2(const Task& t, int group, int64_t y, const float** rows) {
  runTask<kAvx2OB, 16, 32>(t, group, y, rows);
}
__attribute__((target("avx512f,avx2,fma"))) void taskAvx512(const Task& t, int group, int64_t y, const float** rows) {
  runTask<kAvx512OB, 32, 64>(t, group, y, rows);
}
#endif

ConvIsa detectIsa() {
#ifdef ECNR_CONV_X86
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f")) return ConvIsa::Avx512;
  if (avx2) return ConvIsa::Avx2;
#endif
  return ConvIsa::Generic;
}

std::atomic<int> gForced{int(ConvIsa::Auto)};

Layer prepareLayer(const ConvStackView& net, int l, int kd, int obm) {
  Layer L;
  const int k = net.kernel;
  L.cin = net.channels[l];
  L.cout = net.channels[l + 1];
  L.kd = kd;
  L.act = l + 1 < net.layers;
  L.bias.assign(net.b[l], net.b[l] + L.cout);
  for (int oc = 0; oc < L.cout;) {
    const int s = L.cout - oc >= obm ? obm : 1;
    L.start.push_back(oc);
    L.size.push_back(s);
    L.wOffset.push_back(L.w.size());
    for (int ic = 0; ic < L.cin; ++ic)
      for (int kz = 0; kz < kd; ++kz)
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx)
            for (int o = 0; o < s; ++o) {
              // kd == 1 < k: all z taps read the same (replicated) plane, so their weights add up.
              const float* src = net.W[l] + ((int64_t(oc + o) * L.cin + ic) * k) * k * k;
              float v = 0;
              if (kd == k) {
                v = src[(kz * k + ky) * k + kx];
              } else {
                for (int z = 0; z < k; ++z) v += src[(z * k + ky) * k + kx];
              }
              L.w.push_back(v);
            }
    oc += s;
  }
  return L;
}

}  // namespace

void forceConvIsa(ConvIsa isa) { gForced.store(int(isa)); }

ConvIsa convIsaInUse() {
  static const ConvIsa best = detectIsa();
  const ConvIsa forced = ConvIsa(gForced.load());
  if (forced == ConvIsa::Auto) return best;
  return int(forced) <= int(best) ? forced : best;
}

void conv3dStack(const ConvStackView& net, const float* in, float* out, int64_t nx, int64_t ny, int64_t nz) {
  if (net.layers < 1 || net.layers > kMaxConvLayers) throw std::invalid_argument("conv3dStack: bad layer count");
  if (net.kernel != 1 && net.kernel != 3 && net.kernel != 5) throw std::invalid_argument("conv3dStack: kernel must be 1, 3 or 5");
  if (net.channels[0] != 1 || net.channels[net.layers] != 1) throw std::invalid_argument("conv3dStack: input and output must be 1 channel");
  for (int l = 0; l < net.layers; ++l) {
    if (net.channels[l] < 1 || net.channels[l] > kMaxConvChannels) throw std::invalid_argument("conv3dStack: bad channel count");
    if (!net.W[l] || !net.b[l]) throw std::invalid_argument("conv3dStack: missing weights");
  }
  if (nx < 1 || ny < 1 || nz < 1) throw std::invalid_argument("conv3dStack: empty volume");

  TaskFn task = taskGeneric;
  int obm = kGenericOB;
#ifdef ECNR_CONV_X86
  switch (convIsaInUse()) {
    case ConvIsa::Avx512: task = taskAvx512; obm = kAvx512OB; break;
    case ConvIsa::Avx2: task = taskAvx2; obm = kAvx2OB; break;
    default: break;
  }
#endif

  const int k = net.kernel, r = k / 2;
  // A single plane (2D data): the replicate-padded z taps all see that plane, so the kernel collapses to k x k.
  const int kd = nz == 1 ? 1 : k;
  const int rz = kd / 2;
  Geometry g;
  g.nx = nx;
  g.ny = ny;
  g.r = r;
  g.nxPad = (nx + kTail - 1) / kTail * kTail;
  g.rowStride = g.nxPad + (2 * r + kTail - 1) / kTail * kTail;
  g.chanStride = (ny + 2 * r) * g.rowStride;

  const int L = net.layers;
  std::vector<Layer> layers;
  size_t maxRows = 0;
  for (int l = 0; l < L; ++l) {
    layers.push_back(prepareLayer(net, l, kd, obm));
    maxRows = std::max(maxRows, size_t(layers.back().cin) * size_t(kd) * size_t(k));
  }
  // Wavefront over z with a lag of rz + 1 planes per layer: at step s the input plane s is loaded and layer l
  // produces its plane s - (l+1)(rz+1), whose inputs (layer l-1's planes up to s - l(rz+1) - 1) all date from
  // earlier steps. Each ring holds kd + 2 planes: the kd being read, the one being written, and one of slack so a
  // writer only waits for the readers of two steps back.
  const int lag = rz + 1, ring = kd + 2;
  // buf[j]: ring of the input (j = 0) and of layer j-1's output (j = 1 .. L-1); buf[L]: the last layer's plane.
  std::vector<std::vector<float>> buf(size_t(L) + 1);
  for (int j = 0; j < L; ++j) buf[size_t(j)].assign(size_t(net.channels[j]) * size_t(g.chanStride) * size_t(ring), 0.0f);
  buf[size_t(L)].assign(size_t(g.chanStride) * size_t(ring), 0.0f);
  auto plane = [&](int j, int64_t z) {  // z already clamped to [0, nz)
    const size_t c = j < L ? size_t(net.channels[j]) : 1;
    return buf[size_t(j)].data() + size_t(z % ring) * c * size_t(g.chanStride);
  };
  const int64_t planeSize = nx * ny;
  const int64_t lastStep = nz - 1 + int64_t(L) * lag;

  // Tasks of one step: the ny row loads of the input plane, then each active layer's groups x ny rows.
  auto buildStep = [&](int64_t s, std::vector<Task>& tasks, std::vector<int64_t>& first) {
    int64_t count = s < nz ? ny : 0;
    for (int l = 0; l < L; ++l) {
      first[size_t(l)] = count;
      const int64_t z = s - int64_t(l + 1) * lag;
      if (z < 0 || z >= nz) continue;
      Task& t = tasks[size_t(l)];
      t.layer = &layers[size_t(l)];
      t.g = &g;
      for (int kz = 0; kz < kd; ++kz) t.planes[kz] = plane(l, std::min(std::max(z - rz + kz, int64_t(0)), nz - 1));
      t.outPlane = plane(l + 1, z);
      t.slope = net.negativeSlope;
      const bool last = l + 1 == L;
      t.resIn = last ? in + z * planeSize : nullptr;  // read here, before out's plane z is written: out may alias in
      t.out = last ? out + z * planeSize : nullptr;
      t.residual = net.residual;
      count += int64_t(t.layer->start.size()) * ny;
    }
    first[size_t(L)] = count;
    return count;
  };
  // Stage q: 0 the input loads, q >= 1 layer q - 1. stageStart[q][s]: stage q's tasks in the steps before s.
  const size_t steps = size_t(lastStep) + 1;
  std::vector<std::vector<int64_t>> stageStart(size_t(L) + 1, std::vector<int64_t>(steps + 1, 0));
  std::vector<int64_t> stepStart(steps + 1, 0);
  {
    std::vector<Task> tasks(static_cast<size_t>(L));
    std::vector<int64_t> first(static_cast<size_t>(L) + 1);
    for (size_t s = 0; s < steps; ++s) {
      stepStart[s + 1] = stepStart[s] + buildStep(int64_t(s), tasks, first);
      for (size_t q = 0; q <= size_t(L); ++q) {
        const int64_t n = (q < size_t(L) ? first[q] : first[size_t(L)]) - (q == 0 ? 0 : first[q - 1]);
        stageStart[q][s + 1] = stageStart[q][s] + n;
      }
    }
  }
  const int64_t total = stepStart.back();

  // No barriers: threads take tasks in order from one counter and wait only for what a task needs: its own stage
  // through the previous step (so done[q] counts whole steps), the previous stage through the previous step (its
  // input planes), and the next stage through two steps back (the readers of the ring slot it overwrites). A
  // descheduled thread (more threads than free cores: MPI ranks, ParaView) then delays only the tasks that need
  // its task, not every step as a barrier would.
  std::atomic<int64_t> next{0};
  std::vector<std::atomic<int64_t>> done(size_t(L) + 1);
  for (auto& d : done) d.store(0);
  auto waitFor = [&](size_t q, int64_t count) {
    while (done[q].load(std::memory_order_acquire) < count) std::this_thread::yield();
  };
#pragma omp parallel
  {
    std::vector<const float*> rows(maxRows);
    std::vector<Task> tasks(static_cast<size_t>(L));
    std::vector<int64_t> first(static_cast<size_t>(L) + 1);
    size_t s = 0, readyStage = size_t(-1);
    bool built = false;
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= total) break;
      if (!built || i >= stepStart[s + 1]) {
        while (i >= stepStart[s + 1]) ++s;
        buildStep(int64_t(s), tasks, first);
        built = true;
        readyStage = size_t(-1);
      }
      const int64_t j = i - stepStart[s];
      size_t q = 0;
      while (q < size_t(L) && j >= first[q]) ++q;
      if (q != readyStage) {
        waitFor(q, stageStart[q][s]);
        if (q > 0) waitFor(q - 1, stageStart[q - 1][s]);
        if (q < size_t(L) && s > 0) waitFor(q + 1, stageStart[q + 1][s - 1]);
        readyStage = q;
      }
      if (q == 0) {
        const float* sr = in + int64_t(s) * planeSize + j * nx;
        float* chan = plane(0, int64_t(s));
        float* dr = chan + (j + r) * g.rowStride;
        for (int m = 0; m < r; ++m) dr[m] = sr[0];
        std::copy(sr, sr + nx, dr + r);
        for (int m = 0; m < r; ++m) dr[r + nx + m] = sr[nx - 1];
        fillYMargins(chan, j, g);
      } else {
        const int64_t jj = j - first[q - 1];
        task(tasks[q - 1], int(jj / ny), jj % ny, rows.data());
      }
      done[q].fetch_add(1, std::memory_order_release);
    }
  }
}

}  // namespace kernels
}  // namespace ecnr
