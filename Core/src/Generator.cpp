#include "ecnr/Generator.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <omp.h>

namespace ecnr {
namespace {

/// SplitMix64: tiny, fast, and identical on every platform, so a seed always yields the same field
/// (std:: distributions are implementation-defined and would not).
struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) from the top 24 bits (exactly representable as float).
  float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
};

/// The two concentrations on a periodic grid; x fastest, then y, z.
struct State {
  int64_t nx, ny, nz;
  std::vector<float> u, v;
  State(int64_t x, int64_t y, int64_t z)
      : nx(x), ny(y), nz(z), u(size_t(x * y * z), 1.0f), v(size_t(x * y * z), 0.0f) {}
  int64_t index(int64_t x, int64_t y, int64_t z) const { return x + nx * (y + ny * z); }
};

int64_t wrap(int64_t i, int64_t n) { return ((i % n) + n) % n; }

/// Marks one seeded region (a sphere or a cube) where the reaction starts: u = 0.5, v = 0.25.
void seedRegion(State& s, SplitMix64& rng, int64_t radiusLimit) {
  const int64_t cx = rng.below(s.nx), cy = rng.below(s.ny), cz = rng.below(s.nz);
  const int64_t r = 2 + rng.below(std::max<int64_t>(1, radiusLimit - 1));  // 2 .. radiusLimit
  const bool sphere = rng.next() & 1;
  for (int64_t dz = -r; dz <= r; ++dz)
    for (int64_t dy = -r; dy <= r; ++dy)
      for (int64_t dx = -r; dx <= r; ++dx) {
        if (sphere && dx * dx + dy * dy + dz * dz > r * r) continue;
        const int64_t i = s.index(wrap(cx + dx, s.nx), wrap(cy + dy, s.ny), wrap(cz + dz, s.nz));
        s.u[size_t(i)] = 0.5f;
        s.v[size_t(i)] = 0.25f;
      }
}

/// Seeds regions (more on bigger grids so the pattern has as many starting points per volume), then adds
/// a little noise everywhere so that the seeded regions do not grow as perfectly symmetric shells.
void seedState(State& s, uint64_t seed) {
  SplitMix64 rng(seed);
  const double volume = double(s.nx) * double(s.ny) * double(s.nz);
  const int64_t regions = std::clamp<int64_t>(int64_t(std::lround(10.0 * volume / (64.0 * 64.0 * 64.0))), 8, 512);
  // Radius 2..5 voxels, about one pattern wavelength; smaller on tiny grids so regions stay separate.
  const int64_t minSide = std::min({s.nx, s.ny, s.nz});
  const int64_t radiusLimit = std::clamp<int64_t>(minSide / 8, 2, 5);
  for (int64_t i = 0; i < regions; ++i) seedRegion(s, rng, radiusLimit);
  for (size_t i = 0; i < s.u.size(); ++i) {
    s.u[i] -= 0.02f * rng.uniform();
    s.v[i] += 0.02f * rng.uniform();
  }
}

struct Rates {
  float Du, Dv, F, k;
};

/// One explicit Euler step (dt = 1) of voxel i given the indices of its six neighbours.
inline void updateVoxel(const Rates& r, const float* u, const float* v, float* un, float* vn, int64_t i,
                        int64_t xm, int64_t xp, int64_t ym, int64_t yp, int64_t zm, int64_t zp) {
  const float uc = u[i], vc = v[i];
  const float lu = u[xm] + u[xp] + u[ym] + u[yp] + u[zm] + u[zp] - 6.0f * uc;
  const float lv = v[xm] + v[xp] + v[ym] + v[yp] + v[zm] + v[zp] - 6.0f * vc;
  const float uvv = uc * vc * vc;
  un[i] = uc + r.Du * lu - uvv + r.F * (1.0f - uc);
  vn[i] = vc + r.Dv * lv + uvv - (r.F + r.k) * vc;
}

/// Updates one x-row; the two ends wrap around, the interior is a plain (vectorizable) loop.
void updateRow(const Rates& r, const State& s, const float* u, const float* v, float* un, float* vn, int64_t y,
               int64_t z) {
  const int64_t nx = s.nx;
  const int64_t row = s.index(0, y, z);
  const int64_t ym = s.index(0, wrap(y - 1, s.ny), z) - row, yp = s.index(0, wrap(y + 1, s.ny), z) - row;
  const int64_t zm = s.index(0, y, wrap(z - 1, s.nz)) - row, zp = s.index(0, y, wrap(z + 1, s.nz)) - row;
  auto at = [&](int64_t x, int64_t xm, int64_t xp) {
    const int64_t i = row + x;
    updateVoxel(r, u, v, un, vn, i, row + xm, row + xp, i + ym, i + yp, i + zm, i + zp);
  };
  at(0, nx - 1, nx > 1 ? 1 : 0);
  for (int64_t x = 1; x < nx - 1; ++x) at(x, x - 1, x + 1);
  if (nx > 1) at(nx - 1, nx - 2, 0);
}

/// Advances the state by `iterations` steps, ping-ponging between s and a scratch buffer. One parallel region
/// for all iterations (a barrier per iteration, no fork/join) keeps the cost low when the cores are shared.
/// Every voxel is computed the same way whatever the thread count, so results do not depend on it.
void simulate(const Rates& r, State& s, State& scratch, int64_t iterations) {
  float* const buffers[2][2] = {{s.u.data(), s.v.data()}, {scratch.u.data(), scratch.v.data()}};
  // Each iteration ends in a barrier, and a barrier costs a scheduler time slice when the cores are shared
  // (measured: 64^3 x 16 took 4 s on 2 threads vs 1.3 s on 1 thread on a busy 2-core machine). So a thread
  // is only added per 2^18 voxels, where an iteration's work clearly outweighs that risk.
  const int64_t byWork = s.nx * s.ny * s.nz / (int64_t(1) << 18);
  const int threads = int(std::clamp<int64_t>(byWork, 1, omp_get_max_threads()));
#pragma omp parallel num_threads(threads)
  for (int64_t it = 0; it < iterations; ++it) {
    const int from = int(it & 1), to = 1 - from;
#pragma omp for schedule(static)
    for (int64_t z = 0; z < s.nz; ++z)
      for (int64_t y = 0; y < s.ny; ++y)
        updateRow(r, s, buffers[from][0], buffers[from][1], buffers[to][0], buffers[to][1], y, z);
  }
  if (iterations & 1) {  // the newest values are in scratch
    std::swap(s.u, scratch.u);
    std::swap(s.v, scratch.v);
  }
}

void checkParams(const GrayScottParams& p) {
  if (p.nx < 1 || p.ny < 1 || p.nz < 1 || p.steps < 1)
    throw Error("Gray-Scott: grid and step count must be >= 1");
  if (p.itersPerStep < 1 || p.warmup < 0) throw Error("Gray-Scott: itersPerStep must be >= 1 and warmup >= 0");
  if (!(p.F > 0 && p.k > 0 && p.F + p.k < 1)) throw Error("Gray-Scott: F and k must be positive with F + k < 1");
  // Explicit Euler (dt = 1) with a 7-point Laplacian damps the checkerboard mode only while its growth factor
  // 1 - 12 D - (F + k) - v^2 stays above -1. The textbook bound 6 D < 1 ignores the reaction terms: with
  // Du = 0.16 the checkerboard does grow inside spots (v ~ 0.45) and shows as a grid texture.
  const double maxV2 = 0.25, reaction = p.F + p.k + maxV2;
  for (double D : {p.Du, p.Dv})
    if (!(D > 0 && 12 * D + reaction < 2))
      throw Error("Gray-Scott: diffusion rate " + std::to_string(D) + " is unstable with dt = 1 (need 0 < D < " +
                  std::to_string((2 - reaction) / 12) + ")");
}

}  // namespace

namespace {

// Periodic trilinear resampling of one simulated step (sx, sy, sz) onto the output grid of `out`'s step.
void resamplePeriodic(const State& s, const float* v, const Dims4& d, float* out) {
  auto axis = [](int64_t i, int64_t n, int64_t ns, int64_t& i0, int64_t& i1, float& w) {
    const double pos = (double(i) + 0.5) * double(ns) / double(n) - 0.5;
    const double f = std::floor(pos);
    w = float(pos - f);
    i0 = wrap(int64_t(f), ns);
    i1 = wrap(int64_t(f) + 1, ns);
  };
  for (int64_t z = 0; z < d.z; ++z) {
    int64_t z0, z1;
    float wz;
    axis(z, d.z, s.nz, z0, z1, wz);
    for (int64_t y = 0; y < d.y; ++y) {
      int64_t y0, y1;
      float wy;
      axis(y, d.y, s.ny, y0, y1, wy);
      for (int64_t x = 0; x < d.x; ++x) {
        int64_t x0, x1;
        float wx;
        axis(x, d.x, s.nx, x0, x1, wx);
        auto at = [&](int64_t xx, int64_t yy, int64_t zz) { return v[size_t(s.index(xx, yy, zz))]; };
        auto row = [&](int64_t yy, int64_t zz) { return at(x0, yy, zz) + wx * (at(x1, yy, zz) - at(x0, yy, zz)); };
        const float a = row(y0, z0) + wy * (row(y1, z0) - row(y0, z0));
        const float b = row(y0, z1) + wy * (row(y1, z1) - row(y0, z1));
        out[(z * d.y + y) * d.x + x] = a + wz * (b - a);
      }
    }
  }
}

}  // namespace

Field generateGrayScott(const GrayScottParams& p) {
  checkParams(p);
  if (p.featureScale < 1) throw Error("Gray-Scott: featureScale must be >= 1");
  Field out(Dims4{p.nx, p.ny, p.nz, p.steps});
  const Rates rates{float(p.Du), float(p.Dv), float(p.F), float(p.k)};
  auto reduced = [&](int64_t n) { return std::max<int64_t>(1, (n + p.featureScale - 1) / p.featureScale); };
  const int64_t sx = reduced(p.nx), sy = reduced(p.ny), sz = reduced(p.nz);
  State s(sx, sy, sz), scratch(sx, sy, sz);
  seedState(s, p.seed);
  simulate(rates, s, scratch, p.warmup);
  for (int64_t t = 0; t < p.steps; ++t) {
    if (t > 0) simulate(rates, s, scratch, p.itersPerStep);
    if (p.featureScale == 1) std::copy(s.v.begin(), s.v.end(), out.step(t));
    else resamplePeriodic(s, s.v.data(), out.dims, out.step(t));
  }
  return out;
}

}  // namespace ecnr
