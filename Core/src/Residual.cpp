// Residual: quantized correction per time step. Stream layout (docs/ARCHIVE.md, Residual section):
//   u8 predictor (0 zero, 1 plain, 2 Lorenzo); for 1 and 2: u8 symbol bits k, the symbol stream (Entropy.h,
//   one symbol per voxel: the zigzagged integer, or the escape 2^k - 1), LEB128 byte count of the escape stream
//   and, when > 0, that stream (Entropy.h, 8-bit symbols: LEB128 of each escaped value minus the escape);
//   then for every predictor: LEB128 count of exact voxels, each as LEB128 gap to the previous + float32 bits.
#include "ecnr/Residual.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ByteIO.h"
#include "ecnr/Entropy.h"

namespace ecnr {

namespace {

constexpr int kMaxSymbolBits = 12;
// Beyond this a voxel is stored exactly: keeps every Lorenzo sum (7 terms) far inside int64.
constexpr double kMaxQuantized = double(int64_t(1) << 40);

uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }
int64_t unzigzag(uint64_t z) { return int64_t(z >> 1) ^ -int64_t(z & 1); }

int bitLength(uint64_t v) {
  int n = 0;
  while (v) {
    ++n;
    v >>= 1;
  }
  return n;
}

/// Integer Lorenzo predictor (3D, within the step): the neighbours already decoded, zero outside the grid.
struct Lorenzo {
  int64_t nx, ny, nz;
  int64_t predict(const std::vector<int64_t>& q, int64_t x, int64_t y, int64_t z) const {
    auto at = [&](int64_t dx, int64_t dy, int64_t dz) -> int64_t {
      const int64_t X = x - dx, Y = y - dy, Z = z - dz;
      return X < 0 || Y < 0 || Z < 0 ? 0 : q[size_t((Z * ny + Y) * nx + X)];
    };
    return at(1, 0, 0) + at(0, 1, 0) + at(0, 0, 1) - at(1, 1, 0) - at(1, 0, 1) - at(0, 1, 1) + at(1, 1, 1);
  }
};

/// Symbols + escape bytes for one predictor's integers.
std::vector<uint8_t> codeIntegers(const std::vector<uint64_t>& z, ResidualPredictor predictor, int64_t* escapes) {
  uint64_t maxZ = 0;
  for (uint64_t v : z) maxZ = std::max(maxZ, v);
  const int k = std::clamp(bitLength(maxZ + 1), 1, kMaxSymbolBits);
  const uint64_t escape = (uint64_t(1) << k) - 1;
  std::vector<uint32_t> symbols(z.size());
  io::ByteWriter esc;
  *escapes = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    if (z[i] < escape) {
      symbols[i] = uint32_t(z[i]);
    } else {
      symbols[i] = uint32_t(escape);
      esc.uleb(z[i] - escape);
      ++*escapes;
    }
  }
  io::ByteWriter w;
  w.u8(uint8_t(predictor));
  w.u8(uint8_t(k));
  const std::vector<uint8_t> s = encodeSymbols(symbols, k);
  w.raw(s.data(), s.size());
  w.uleb(esc.bytes().size());
  if (!esc.bytes().empty()) {
    const std::vector<uint32_t> bytes(esc.bytes().begin(), esc.bytes().end());
    const std::vector<uint8_t> e = encodeSymbols(bytes, 8);
    w.raw(e.data(), e.size());
  }
  return std::move(w.bytes());
}

/// ulp of |v| (the float spacing there), the most one float rounding can move a value.
double ulpOf(float v) {
  const float a = std::fabs(v);
  return double(std::nextafter(a, std::numeric_limits<float>::infinity())) - double(a);
}

}  // namespace

const char* qualityModeName(QualityMode m) {
  switch (m) {
    case QualityMode::Expert: return "expert";
    case QualityMode::Ratio: return "ratio";
    case QualityMode::Psnr: return "psnr";
    case QualityMode::MaxError: return "max-error";
  }
  return "unknown";
}

uint64_t ResidualCorrection::bytes() const {
  uint64_t n = 0;
  for (const auto& s : steps) n += s.size();
  return n;
}

std::vector<uint8_t> encodeResidualStep(const float* original, const float* decoded, const Dims4& d, double step,
                                        double bound, double slack, ResidualStepStats* stats) {
  if (!(step > 0) || !std::isfinite(step)) throw Error("residual step must be positive and finite");
  const int64_t V = d.voxelsPerStep();
  std::vector<int64_t> q(static_cast<size_t>(V), 0);
  std::vector<std::pair<int64_t, float>> exact;
  ResidualStepStats st;
  for (int64_t i = 0; i < V; ++i) {
    const double r = double(original[i]) - double(decoded[i]);
    const double qd = std::isfinite(r) ? std::nearbyint(r / step) : 0.0;
    const bool representable = std::isfinite(r) && std::fabs(qd) <= kMaxQuantized;
    if (representable) q[size_t(i)] = int64_t(qd);
    const float v = float(double(decoded[i]) + double(q[size_t(i)]) * step);
    // Another decode path differs by at most `slack` before the correction and, when it adds one, by one float
    // rounding after it (with q = 0 its value is its own decode, unrounded).
    const double err = std::fabs(double(original[i]) - double(v));
    const double rounding = q[size_t(i)] != 0 ? 2.0 * ulpOf(v) : 0.0;
    const bool miss = bound > 0 ? !(err + slack + rounding <= bound) : !std::isfinite(v);
    if (miss || !representable) exact.emplace_back(i, original[i]);
    if (q[size_t(i)] != 0) ++st.nonZero;
  }
  io::ByteWriter w;
  if (st.nonZero == 0) {
    w.u8(uint8_t(ResidualPredictor::Zero));
  } else {
    std::vector<uint64_t> plain(static_cast<size_t>(V)), lorenzo(static_cast<size_t>(V));
    const Lorenzo L{d.x, d.y, d.z};
    for (int64_t z = 0, i = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x, ++i) {
          plain[size_t(i)] = zigzag(q[size_t(i)]);
          lorenzo[size_t(i)] = zigzag(q[size_t(i)] - L.predict(q, x, y, z));
        }
    int64_t escPlain = 0, escLorenzo = 0;
    std::vector<uint8_t> a = codeIntegers(plain, ResidualPredictor::Plain, &escPlain);
    std::vector<uint8_t> b = codeIntegers(lorenzo, ResidualPredictor::Lorenzo, &escLorenzo);
    const bool useLorenzo = b.size() < a.size();
    st.predictor = useLorenzo ? ResidualPredictor::Lorenzo : ResidualPredictor::Plain;
    st.escapes = useLorenzo ? escLorenzo : escPlain;
    w.raw(useLorenzo ? b.data() : a.data(), useLorenzo ? b.size() : a.size());
  }
  w.uleb(exact.size());
  int64_t prev = -1;
  for (const auto& [i, v] : exact) {
    w.uleb(uint64_t(i - prev - 1));
    w.f32(v);
    prev = i;
  }
  st.exact = int64_t(exact.size());
  st.bytes = w.bytes().size();
  if (stats) *stats = st;
  return std::move(w.bytes());
}

void applyResidualStep(const std::vector<uint8_t>& stream, const Dims4& d, double step, float* values,
                       const std::array<int64_t, 6>* box) {
  io::ByteReader r(stream.data(), stream.size(), "residual step");
  const int64_t V = d.voxelsPerStep();
  const std::array<int64_t, 6> all{0, d.x - 1, 0, d.y - 1, 0, d.z - 1};
  const std::array<int64_t, 6>& b = box ? *box : all;
  const int64_t bx = b[1] - b[0] + 1, by = b[3] - b[2] + 1;
  auto inBox = [&](int64_t x, int64_t y, int64_t z) {
    return x >= b[0] && x <= b[1] && y >= b[2] && y <= b[3] && z >= b[4] && z <= b[5];
  };
  auto slot = [&](int64_t x, int64_t y, int64_t z) -> float& {
    return values[size_t(((z - b[4]) * by + (y - b[2])) * bx + (x - b[0]))];
  };
  const uint8_t predictor = r.u8();
  if (predictor > uint8_t(ResidualPredictor::Lorenzo)) r.fail("has an unknown predictor " + std::to_string(predictor));
  if (predictor != uint8_t(ResidualPredictor::Zero)) {
    const int k = r.u8();
    if (k < 1 || k > kMaxSymbolBits) r.fail("has symbol width " + std::to_string(k));
    size_t used = 0;
    const std::vector<uint32_t> symbols = decodeSymbols(r.cursor(), size_t(r.remaining()), uint64_t(V), k, &used);
    r.skip(used);
    const uint64_t escBytes = r.uleb();
    std::vector<uint32_t> esc;
    if (escBytes > 0) {
      // Every escape takes at least one byte, and there is at most one per voxel.
      if (escBytes > uint64_t(V) * 10) r.fail("has more escape bytes than voxels allow");
      esc = decodeSymbols(r.cursor(), size_t(r.remaining()), escBytes, 8, &used);
      r.skip(used);
    }
    const uint64_t escape = (uint64_t(1) << k) - 1;
    size_t e = 0;
    auto nextEscape = [&]() -> uint64_t {
      uint64_t v = 0;
      for (int shift = 0;; shift += 7) {
        if (e >= esc.size() || shift > 56) r.fail("has a malformed escape stream");
        const uint32_t byte = esc[e++];
        v |= uint64_t(byte & 0x7F) << shift;
        if (!(byte & 0x80)) return v;
      }
    };
    std::vector<int64_t> q(static_cast<size_t>(V));
    const Lorenzo L{d.x, d.y, d.z};
    for (int64_t z = 0, i = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x, ++i) {
          uint64_t zz = symbols[size_t(i)];
          if (zz == escape) {
            const uint64_t extra = nextEscape();
            if (extra > (uint64_t(1) << 44)) r.fail("has an escaped value out of range");
            zz += extra;
          }
          int64_t v = unzigzag(zz);
          if (predictor == uint8_t(ResidualPredictor::Lorenzo)) v += L.predict(q, x, y, z);
          if (std::llabs(v) > (int64_t(1) << 44)) r.fail("has a correction out of range");
          q[size_t(i)] = v;
          if (v != 0 && inBox(x, y, z)) {
            float& out = slot(x, y, z);
            out = float(double(out) + double(v) * step);
          }
        }
    if (e != esc.size()) r.fail("has unused escape bytes");
  }
  const uint64_t count = r.uleb();
  r.require(count, 5);
  int64_t i = -1;
  for (uint64_t n = 0; n < count; ++n) {
    const uint64_t gap = r.uleb();
    if (gap >= uint64_t(V) || i + 1 + int64_t(gap) >= V) r.fail("has an exact voxel beyond the step");
    i += 1 + int64_t(gap);
    const float v = r.f32();
    if (!std::isfinite(v)) r.fail("has a non-finite exact value");
    const int64_t x = i % d.x, y = (i / d.x) % d.y, z = i / (d.x * d.y);
    if (inBox(x, y, z)) slot(x, y, z) = v;
  }
  r.finish();
}

CorrectedError correctedError(const Field& original, const Field& decoded, double step) {
  const size_t n = original.values.size();
  double sum = 0, worst = 0;
#pragma omp parallel for reduction(+ : sum) reduction(max : worst)
  for (int64_t i = 0; i < int64_t(n); ++i) {
    const double o = original.values[size_t(i)], dec = decoded.values[size_t(i)];
    const double v = step > 0 ? double(float(dec + std::nearbyint((o - dec) / step) * step)) : dec;
    const double e = std::fabs(o - v);
    sum += e * e;
    worst = std::max(worst, e);
  }
  return {sum, worst};
}

}  // namespace ecnr
