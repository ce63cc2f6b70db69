// The .ecnr container. Byte layout and compatibility rule: docs/ARCHIVE.md.
//
// Archives come from disk and may be truncated, corrupted or hostile, so the reader checks every read
// against the bounds of its section, and checks every count against the bytes left before it allocates.
#include "ecnr/Archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "ecnr/Blocks.h"
#include "ecnr/Checksum.h"
#include "ecnr/Entropy.h"
#include "ecnr/Half.h"
#include "ecnr/Pyramid.h"
#include "ByteIO.h"
#include "ecnr/Series.h"

namespace ecnr {
namespace {

using io::ByteReader;
using io::ByteWriter;
using io::saturatingMul;
using io::valueBytes;

constexpr uint8_t kMagic[8] = {'E', 'C', 'N', 'R', 0x89, '\r', '\n', 0x1A};
constexpr uint64_t kPrefixBytes = 16;  // magic, version, section count
constexpr uint64_t kTocEntryBytes = 32;
constexpr uint64_t kTocCrcBytes = 4;
constexpr uint64_t kMinArchiveBytes = kPrefixBytes + kTocCrcBytes;

constexpr int kMaxLatentDim = 256, kMaxHidden = 1024, kMaxSineLayers = 16;
constexpr int kMaxScales = 16;
// A Scale payload's fixed fields: dims, halved flags, blockDims, mlpCount, precision, blockCount.
constexpr uint64_t kScaleFixedBytes = 4 * 8 + 4 * 1 + 3 * 4 + 4 + 1 + 8;
constexpr uint64_t kBlockRecordBytes = 5 * 4;

/// Stored u32 counts are kept in ints; values beyond int become -1 so that the range checks refuse them.
int toInt(uint32_t v) { return v > uint32_t(INT_MAX) ? -1 : int(v); }

std::string sectionName(SectionType type, uint32_t array, uint32_t scale) {
  switch (type) {
    case SectionType::Header: return "header of array " + std::to_string(array);
    case SectionType::Scale: return "scale " + std::to_string(scale) + " of array " + std::to_string(array);
    case SectionType::BoundaryCnn: return "boundary CNN of array " + std::to_string(array);
    case SectionType::Residual: return "residual of array " + std::to_string(array);
    case SectionType::Window: return "time window of array " + std::to_string(array);
  }
  return "section of type " + std::to_string(uint32_t(type)) + " of array " + std::to_string(array);
}

std::string sectionName(const SectionInfo& s) { return sectionName(s.type, s.array, s.scale); }

bool isKnown(SectionType t) {
  return t == SectionType::Header || t == SectionType::Scale || t == SectionType::BoundaryCnn ||
         t == SectionType::Residual || t == SectionType::Window;
}

// ---------------------------------------------------------------------------------------------------------------
// Consistency rules, shared by the writer (so it never writes what the reader refuses) and the reader.
// `where` starts every message: "archive section 'scale 1 of array 0'" or "cannot write archive: scale 1 ...".

void checkDims(const Dims4& d, const std::string& where) {
  try {
    validateDims(d);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

void checkHeader(const Model& m, int64_t scaleCount, const std::string& where) {
  checkDims(m.dims, where);
  const MlpShape& s = m.shape;
  auto inRange = [&](int64_t v, int64_t lo, int64_t hi, const char* what) {
    if (v < lo || v > hi)
      throw Error(where + ": " + what + " " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "]");
  };
  inRange(s.latentDim, 0, kMaxLatentDim, "latent size");
  inRange(s.latentGrid, 1, 2, "latent grid");
  inRange(s.codeSteps, 1, 1024, "steps per latent code");
  inRange(s.hidden, 1, kMaxHidden, "hidden width");
  inRange(s.sineLayers, 1, kMaxSineLayers, "sine layer count");
  inRange(scaleCount, 1, kMaxScales, "scale count");
  if (!std::isfinite(s.omega0)) throw Error(where + ": omega0 is not finite");
  // NaN or infinite metadata would decode to a silently wrong volume (or grid, or time axis).
  if (!std::isfinite(m.dataMin) || !std::isfinite(m.dataMax) || m.dataMin > m.dataMax)
    throw Error(where + ": data range [" + std::to_string(m.dataMin) + ", " + std::to_string(m.dataMax) +
                "] is invalid");
  for (int a = 0; a < 3; ++a)
    if (!std::isfinite(m.meta.spacing[size_t(a)]) || !std::isfinite(m.meta.origin[size_t(a)]))
      throw Error(where + ": spacing or origin is not finite");
  for (double v : m.meta.times)
    if (!std::isfinite(v)) throw Error(where + ": a time value is not finite");
  if (!m.meta.times.empty() && int64_t(m.meta.times.size()) != m.dims.t)
    throw Error(where + ": " + std::to_string(m.meta.times.size()) + " time values for " +
                std::to_string(m.dims.t) + " time steps");
}

/// The fields that fix the sizes of everything after them.
void checkScaleFixed(const ScaleModel& s, const Model& m, const std::string& where) {
  checkDims(s.dims, where);
  for (int a = 0; a < 4; ++a)
    if (s.dims[a] > m.dims[a])
      throw Error(where + ": scale dims " + s.dims.str() + " exceed the array's " + m.dims.str());
  // A block never exceeds the array's grid (the encoder clamps it); this also bounds a block's voxel count, which
  // the decoder allocates, by the grid's own (64-bit safe) size.
  for (int a = 0; a < 3; ++a)
    if (s.blockDims[a] < 1 || s.blockDims[a] > m.dims[a])
      throw Error(where + ": block size " + std::to_string(s.blockDims[a]) + " is invalid for an axis of " +
                  std::to_string(m.dims[a]));
  if (s.mlpCount < 0) throw Error(where + ": MLP count is invalid");
  if (s.precision != WeightPrecision::Float32 && s.precision != WeightPrecision::Float16)
    throw Error(where + ": unknown precision " + std::to_string(int(s.precision)));
}

/// Every record must point into the scale (block grid, time steps, MLPs), in strictly increasing (t, block)
/// order, because the latent slot of a block is its position and the decoder looks blocks up by (t, block).
void checkBlocks(const ScaleModel& s, const std::string& where) {
  const auto grid = s.blockGrid();
  const uint64_t gridCount = uint64_t(grid[0] * grid[1] * grid[2]);  // <= voxel count, which validateDims bounds
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    const BlockRecord& b = s.blocks[i];
    const std::string rec = where + ": block record " + std::to_string(i);
    if (b.block >= gridCount)
      throw Error(rec + " names block " + std::to_string(b.block) + " of " + std::to_string(gridCount));
    if (b.t >= uint64_t(s.dims.t))
      throw Error(rec + " names time step " + std::to_string(b.t) + " of " + std::to_string(s.dims.t));
    if (b.mlp >= uint32_t(s.mlpCount))
      throw Error(rec + " names MLP " + std::to_string(b.mlp) + " of " + std::to_string(s.mlpCount));
    if (!std::isfinite(b.minValue) || !std::isfinite(b.maxValue) || b.minValue > b.maxValue)
      throw Error(rec + " has an invalid value range");
    if (i > 0) {
      const BlockRecord& p = s.blocks[i - 1];
      if (b.t < p.t || (b.t == p.t && b.block <= p.block)) throw Error(rec + " is out of (t, block) order");
    }
  }
}

/// The scales must form the pyramid the decoder walks: each coarser scale is the next finer one halved along the
/// axes it flags, and the finest scale (when present: a preview holds only the coarsest) has the array's grid and
/// halves nothing. The decoder indexes one scale's voxels with the dims of its neighbour, so a mismatch would
/// read outside its buffers.
void checkPyramid(const Model& m, bool complete, const std::string& where) {
  for (size_t p = 0; p + 1 < m.scales.size(); ++p) {
    const ScaleModel& coarse = m.scales[p];
    const Dims4 expected = downsampledDims(m.scales[p + 1].dims, coarse.halved);
    if (coarse.dims != expected)
      throw Error(where + ": scale " + std::to_string(p) + " has dims " + coarse.dims.str() + " but halving scale " +
                  std::to_string(p + 1) + " gives " + expected.str());
  }
  if (!complete || m.scales.empty()) return;
  const ScaleModel& finest = m.scales.back();
  if (finest.dims != m.dims)
    throw Error(where + ": the finest scale has dims " + finest.dims.str() + " but the array has " + m.dims.str());
  for (bool h : finest.halved)
    if (h) throw Error(where + ": the finest scale is marked as halved");
}

/// Latents, weights and biases must be finite: a NaN or an infinity decodes to NaN voxels, a silently wrong volume.
/// (The writer clamps float16 values to +-65504, so a file of ours never holds an infinity.)
void checkFiniteParameters(const ScaleModel& s, const std::string& where) {
  auto scan = [&](const std::vector<float>& v, const std::string& what) {
    for (float x : v)
      if (!std::isfinite(x)) throw Error(where + ": " + what + " hold a non-finite value");
  };
  scan(s.latents, "latents");
  scan(s.codebooks.latents, "latent codebook");
  for (const auto& c : s.codebooks.weights) scan(c, "weight codebooks");
  for (const auto& c : s.codebooks.biases) scan(c, "bias codebooks");
  for (size_t l = 0; l < s.weights.size(); ++l) scan(s.weights[l], "weights of layer " + std::to_string(l));
  for (size_t l = 0; l < s.biases.size(); ++l) scan(s.biases[l], "biases of layer " + std::to_string(l));
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

void checkArrayForWrite(const Model& m, const Model& first, uint32_t array) {
  const std::string where = "cannot write archive: array " + std::to_string(array);
  checkHeader(m, m.scaleCount(), where);
  (void)first;  // the grids of several arrays and windows are checked together (seriesOf)
  if (m.meta.arrayName.size() > UINT32_MAX || m.preset.size() > UINT32_MAX) throw Error(where + ": name too long");
  const MlpShape& shape = m.shape;
  for (int i = 0; i < m.scaleCount(); ++i) {
    const ScaleModel& s = m.scales[size_t(i)];
    const std::string at = "cannot write archive: " + sectionName(SectionType::Scale, array, uint32_t(i));
    checkScaleFixed(s, m, at);
    checkBlocks(s, at);
    auto expectSize = [&](size_t actual, int64_t expected, const std::string& what) {
      if (int64_t(actual) != expected)
        throw Error(at + ": " + what + " has " + std::to_string(actual) + " values, expected " +
                    std::to_string(expected));
    };
    int64_t codes = 0;
    codeSlots(s, shape.codeSteps, &codes);
    expectSize(s.latents.size(), codes * shape.latentsPerBlock(), "latents");
    expectSize(s.weights.size(), shape.layerCount(), "weights (layers)");
    expectSize(s.biases.size(), shape.layerCount(), "biases (layers)");
    for (int l = 0; l < shape.layerCount(); ++l) {
      const int64_t fanOut = shape.fanOut(l), mlps = s.mlpCount;
      expectSize(s.weights[size_t(l)].size(), mlps * shape.fanIn(l) * fanOut, "weights of layer " + std::to_string(l));
      expectSize(s.biases[size_t(l)].size(), mlps * fanOut, "biases of layer " + std::to_string(l));
    }
    checkFiniteParameters(s, at);
  }
  checkPyramid(m, true, where);
}

// The lowest file version that holds these arrays (see kArchiveVersion): 4 for a latent grid or shared codes, 3 for
// a Residual or Window section, else 2, so older readers keep reading what they can.
uint32_t requiredVersion(const std::vector<Model>& arrays) {
  uint32_t v = 2;
  for (const Model& m : arrays) {
    if (m.hasResidualSection() || m.firstStep != 0) v = std::max(v, 3u);
    if (m.shape.latentGrid != 1 || m.shape.codeSteps != 1) v = std::max(v, 4u);
  }
  return v;
}

// The Header payload of a file of this version: from version 4 on every Header carries the latent grid and code
// steps fields (so a file mixing arrays or windows reads alike whichever needed them).
std::vector<uint8_t> headerPayload(const Model& m, uint32_t version) {
  ByteWriter w;
  w.string(m.meta.arrayName);
  for (int a = 0; a < 4; ++a) w.i64(m.dims[a]);
  for (double v : m.meta.spacing) w.f64(v);
  for (double v : m.meta.origin) w.f64(v);
  w.u64(m.meta.times.size());
  for (double v : m.meta.times) w.f64(v);
  w.f32(m.dataMin);
  w.f32(m.dataMax);
  w.u32(uint32_t(m.shape.latentDim));
  w.u32(uint32_t(m.shape.hidden));
  w.u32(uint32_t(m.shape.sineLayers));
  w.f32(m.shape.omega0);
  w.u32(uint32_t(m.scaleCount()));
  w.string(m.preset);
  if (version >= 4) {
    w.u32(uint32_t(m.shape.latentGrid));
    w.u32(uint32_t(m.shape.codeSteps));
  }
  return std::move(w.bytes());
}

// ---------------------------------------------------------------------------------------------------------------
// Version 2 Scale payloads: side data and parameters entropy-coded (docs/ARCHIVE.md).

constexpr uint8_t kRangesOnGrid = 1, kLocalCodebooks = 2;  // Scale flags
constexpr uint8_t kGroupMasked = 1, kGroupCoded = 2;        // parameter group kinds
constexpr uint8_t kGroupDeltaBook = 4;  // the float16 codebook as entropy-coded differences of its ordered keys
constexpr int kDeltaBits = 16;          // a zigzag difference of two 16-bit keys, each part starting from +0
constexpr int64_t kDeltaStart = 0x8000;  // the key of +0
constexpr int kRangeBits = 16;
/// Entropy-coded streams may expand; a stream that claims more than this factor of the bytes left is refused
/// before anything is allocated (real streams stay far below it).
constexpr uint64_t kMaxExpansion = uint64_t(1) << 16;

/// Bits of a symbol that takes n values (at least 1).
int symbolBits(uint64_t n) {
  int b = 1;
  while (b < 32 && (uint64_t(1) << b) < n) ++b;
  return b;
}

void writeStream(ByteWriter& w, const std::vector<uint8_t>& stream) { w.raw(stream.data(), stream.size()); }

/// Codebook entry index of each value, per part (MLP for local codebooks): the first entry with the same bits.
class CodebookIndex {
public:
  CodebookIndex(const std::vector<float>& codebook, size_t parts) : size_(codebook.size() / parts) {
    maps_.resize(parts);
    for (size_t q = 0; q < parts; ++q)
      for (size_t j = size_; j-- > 0;) maps_[q][bitsOf(codebook[q * size_ + j])] = uint32_t(j);
  }
  bool find(size_t part, float v, uint32_t* j) const {
    const auto it = maps_[part].find(bitsOf(v));
    if (it == maps_[part].end()) return false;
    *j = it->second;
    return true;
  }

private:
  static uint32_t bitsOf(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return b;
  }
  size_t size_;
  std::vector<std::unordered_map<uint32_t, uint32_t>> maps_;
};

/// +0.0 marks a pruned parameter; -0.0 is kept as a value so that the round trip stays bit-exact.
bool isPrunedZero(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b == 0;
}

/// A half's bits as a key that orders like the value (negatives below positives), and back.
uint32_t halfKey(uint16_t h) { return (h & 0x8000u) ? 0x7FFFu - (h & 0x7FFFu) : 0x8000u + h; }
uint16_t keyHalf(uint32_t k) { return k >= 0x8000u ? uint16_t(k - 0x8000u) : uint16_t(0x8000u | (0x7FFFu - k)); }

// A codebook is sorted when quantized and its values move little in fine-tuning: the differences of successive
// keys (zigzag, restarting from +0 at each MLP's codebook) are small numbers that entropy-code to about half the
// bytes of plain halves (BENCHMARKS.md "Rate–distortion race"). Empty when a difference does not fit 16 bits.
std::vector<uint32_t> codebookDeltas(const std::vector<float>& codebook, size_t parts) {
  std::vector<uint32_t> d;
  const size_t K = codebook.size() / parts;
  int64_t prev = kDeltaStart;
  for (size_t i = 0; i < codebook.size(); ++i) {
    const int64_t key = halfKey(ByteWriter::storedHalf(codebook[i]));
    if (i % K == 0) prev = kDeltaStart;
    const int64_t diff = key - prev;
    if (diff < -32768 || diff > 32767) return {};
    d.push_back(uint32_t(diff >= 0 ? 2 * diff : -2 * diff - 1));
    prev = key;
  }
  return d;
}

/// One parameter group: [mask of the nonzero values], then the kept values: codebook indices or plain values.
/// Masks are derived from the values: a pruned parameter is 0, and any 0 decodes the same with or without one.
void writeGroup(ByteWriter& w, const std::vector<float>& v, const std::vector<float>& codebook, size_t parts,
                bool maskable, WeightPrecision p, const std::string& what) {
  const bool masked = maskable && std::any_of(v.begin(), v.end(), isPrunedZero);
  const bool coded = !codebook.empty() && !v.empty();
  std::vector<uint8_t> deltaBook;
  if (coded && p == WeightPrecision::Float16 && parts > 0 && codebook.size() % parts == 0) {
    const std::vector<uint32_t> deltas = codebookDeltas(codebook, parts);
    if (!deltas.empty()) deltaBook = encodeSymbols(deltas, kDeltaBits);
    if (deltaBook.size() >= 2 * codebook.size()) deltaBook.clear();  // plain halves are smaller
  }
  w.u8(uint8_t((masked ? kGroupMasked : 0) | (coded ? kGroupCoded : 0) |
               (deltaBook.empty() ? 0 : kGroupDeltaBook)));
  if (masked) {
    std::vector<uint8_t> mask;
    for (float x : v) mask.push_back(isPrunedZero(x) ? 0 : 1);
    writeStream(w, encodeBits(mask));
  }
  if (!coded) {
    std::vector<float> kept;
    for (float x : v)
      if (!masked || !isPrunedZero(x)) kept.push_back(x);
    w.values(kept, p);
    return;
  }
  if (parts == 0 || codebook.size() % parts != 0 || v.size() % parts != 0)
    throw Error("cannot write archive: " + what + ": codebook size does not match the MLP count");
  const size_t K = codebook.size() / parts, per = v.size() / parts;
  w.u32(uint32_t(K));
  if (deltaBook.empty()) w.values(codebook, p);
  else writeStream(w, deltaBook);
  const CodebookIndex index(codebook, parts);
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    if (masked && isPrunedZero(v[i])) continue;
    uint32_t j = 0;
    if (!index.find(i / per, v[i], &j)) throw Error("cannot write archive: " + what + " hold a value outside their codebook");
    ids.push_back(j);
  }
  writeStream(w, encodeSymbols(ids, symbolBits(K)));
}

/// The block table: which (t, block) are kept (a bitmap; none when no block is: a constant field may claim a
/// huge grid), the MLP of each, and the value ranges.
void writeBlockTable(ByteWriter& w, const ScaleModel& s, bool onGrid, const RangeGrid& grid) {
  if (s.blocks.empty()) return;
  const auto g = s.blockGrid();
  const uint64_t perStep = uint64_t(g[0] * g[1] * g[2]);
  std::vector<uint8_t> keep(size_t(perStep * uint64_t(s.dims.t)), 0);
  for (const BlockRecord& b : s.blocks) keep[size_t(uint64_t(b.t) * perStep + b.block)] = 1;
  writeStream(w, encodeBits(keep));
  if (s.mlpCount > 1) {
    std::vector<uint32_t> mlp;
    for (const BlockRecord& b : s.blocks) mlp.push_back(b.mlp);
    writeStream(w, encodeSymbols(mlp, symbolBits(uint64_t(s.mlpCount))));
  }
  if (!onGrid) {
    for (const BlockRecord& b : s.blocks) {
      w.f32(b.minValue);
      w.f32(b.maxValue);
    }
    return;
  }
  w.f32(grid.lo);
  w.f32(grid.step);
  std::vector<uint32_t> lo, span;
  for (const BlockRecord& b : s.blocks) {
    lo.push_back(uint32_t(grid.exact(b.minValue)));
    span.push_back(uint32_t(grid.exact(b.maxValue)) - lo.back());
  }
  writeStream(w, encodeSymbols(lo, kRangeBits));
  writeStream(w, encodeSymbols(span, kRangeBits));
}

bool rangesOnGrid(const ScaleModel& s, const RangeGrid& grid) {
  if (!(grid.step > 0) || !std::isfinite(grid.lo) || !std::isfinite(grid.step)) return false;
  for (const BlockRecord& b : s.blocks) {
    const int64_t lo = grid.exact(b.minValue), hi = grid.exact(b.maxValue);
    if (lo < 0 || hi < lo) return false;
  }
  return true;
}

std::vector<uint8_t> scalePayload(const ScaleModel& s, const MlpShape& shape) {
  ByteWriter w;
  for (int a = 0; a < 4; ++a) w.i64(s.dims[a]);
  for (bool h : s.halved) w.u8(h ? 1 : 0);
  for (int b : s.blockDims) w.u32(uint32_t(b));
  w.u32(uint32_t(s.mlpCount));
  w.u8(uint8_t(s.precision));
  w.u64(s.blocks.size());
  const RangeGrid grid{s.rangeLo, s.rangeStep};
  const bool onGrid = !s.blocks.empty() && rangesOnGrid(s, grid);
  const bool local = s.codebooks.local;
  w.u8(uint8_t((onGrid ? kRangesOnGrid : 0) | (local ? kLocalCodebooks : 0)));
  writeBlockTable(w, s, onGrid, grid);
  writeGroup(w, s.latents, s.codebooks.latents, 1, false, s.precision, "latents");
  const size_t parts = local ? size_t(s.mlpCount) : 1;
  auto book = [](const std::vector<std::vector<float>>& b, int l) {
    return size_t(l) < b.size() ? b[size_t(l)] : std::vector<float>{};
  };
  for (int l = 0; l < shape.layerCount(); ++l) {
    writeGroup(w, s.weights[size_t(l)], book(s.codebooks.weights, l), parts, true, s.precision,
               "weights of layer " + std::to_string(l));
    writeGroup(w, s.biases[size_t(l)], book(s.codebooks.biases, l), parts, true, s.precision,
               "biases of layer " + std::to_string(l));
  }
  return std::move(w.bytes());
}

// Residual section: the quality mode and figures, the bound, the step, then one length-prefixed stream per step.
constexpr uint64_t kResidualFixedBytes = 1 + 7 * 8 + 8;

std::vector<uint8_t> residualPayload(const ResidualCorrection& c) {
  ByteWriter w;
  w.u8(uint8_t(c.quality.mode));
  for (double v : {c.quality.target, c.quality.achievedPsnr, c.quality.achievedMaxError, c.quality.networkPsnr,
                   c.bound, c.step, c.slack})
    w.f64(v);
  w.u64(c.hasCorrection() ? c.steps.size() : 0);
  if (c.hasCorrection())
    for (const auto& st : c.steps) {
      w.uleb(st.size());
      w.raw(st.data(), st.size());
    }
  return std::move(w.bytes());
}

/// The fixed fields; `steps` (the streams) only when withStreams. Streams are checked when applied (Residual.cpp).
ResidualCorrection parseResidual(ByteReader& r, const Model& m, bool withStreams) {
  ResidualCorrection c;
  r.require(1, kResidualFixedBytes);
  const uint8_t mode = r.u8();
  if (mode > uint8_t(QualityMode::MaxError)) r.fail("has an unknown quality mode " + std::to_string(mode));
  c.quality.mode = QualityMode(mode);
  c.quality.target = r.f64();
  c.quality.achievedPsnr = r.f64();
  c.quality.achievedMaxError = r.f64();
  c.quality.networkPsnr = r.f64();
  c.bound = r.f64();
  c.step = r.f64();
  c.slack = r.f64();
  for (double v : {c.bound, c.step, c.slack})
    if (!std::isfinite(v) || v < 0) r.fail("has a negative or non-finite bound, step or slack");
  const uint64_t count = r.u64();
  if (count != 0 && (count != uint64_t(m.dims.t) || c.step <= 0))
    r.fail("holds " + std::to_string(count) + " time steps for a series of " + std::to_string(m.dims.t) +
           (c.step <= 0 ? " with a zero step" : ""));
  r.require(count, 1);
  if (withStreams) c.steps.resize(size_t(count));
  for (uint64_t t = 0; t < count; ++t) {
    const uint64_t n = r.uleb();
    r.require(n, 1);
    if (withStreams) c.steps[size_t(t)].assign(r.cursor(), r.cursor() + n);
    r.skip(n);
  }
  r.finish();
  return c;
}

struct PendingSection {
  SectionInfo info;
  std::vector<uint8_t> payload;
};

/// Prefix, table of contents and its checksum, then the payloads back to back in TOC order.
std::vector<uint8_t> assemble(std::vector<PendingSection>& sections, uint32_t version) {
  ByteWriter w;
  w.raw(kMagic, sizeof kMagic);
  w.u32(version);
  w.u32(uint32_t(sections.size()));
  uint64_t offset = kPrefixBytes + kTocEntryBytes * sections.size() + kTocCrcBytes;
  for (PendingSection& s : sections) {
    s.info.offset = offset;
    s.info.length = s.payload.size();
    s.info.crc = crc32c(s.payload.data(), s.payload.size());
    offset += s.info.length;
    w.u32(uint32_t(s.info.type));
    w.u32(s.info.array);
    w.u32(s.info.scale);
    w.u32(s.info.crc);
    w.u64(s.info.offset);
    w.u64(s.info.length);
  }
  w.u32(crc32c(w.bytes().data(), w.bytes().size()));
  w.bytes().reserve(size_t(offset));
  for (const PendingSection& s : sections) w.raw(s.payload.data(), s.payload.size());
  return std::move(w.bytes());
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: table of contents

struct TableOfContents {
  uint32_t version = 0;
  std::vector<SectionInfo> sections;
};

/// Checks, in order: size, magic, version, section count against the file size, TOC checksum, and that the
/// payloads tile the rest of the file exactly (contiguous, in TOC order, nothing after the last).
TableOfContents readTableOfContents(const uint8_t* data, size_t size) {
  if (size < kMinArchiveBytes) {
    if (size < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0)
      throw Error("not an ECNR archive (" + std::to_string(size) + " bytes)");
    throw Error("archive is truncated: " + std::to_string(size) + " bytes, the fixed prefix needs " +
                std::to_string(kMinArchiveBytes));
  }
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0) throw Error("not an ECNR archive");

  ByteReader prefix(data + sizeof kMagic, kPrefixBytes - sizeof kMagic, "file prefix");
  TableOfContents toc;
  toc.version = prefix.u32();
  if (toc.version == 0) throw Error("archive version 0 is invalid");
  if (toc.version > kArchiveVersion)
    throw Error("archive version " + std::to_string(toc.version) + " is newer than this reader (" +
                std::to_string(kArchiveVersion) + ")");
  const uint64_t count = prefix.u32();
  const uint64_t maxCount = (size - kMinArchiveBytes) / kTocEntryBytes;
  if (count > maxCount)
    throw Error("archive table of contents lists " + std::to_string(count) + " sections but the file can hold " +
                std::to_string(maxCount));

  const uint64_t tocEnd = kPrefixBytes + count * kTocEntryBytes;
  ByteReader entries(data + kPrefixBytes, tocEnd - kPrefixBytes + kTocCrcBytes, "table of contents");
  entries.require(count, kTocEntryBytes);
  toc.sections.resize(size_t(count));
  for (SectionInfo& s : toc.sections) {
    s.type = SectionType(entries.u32());
    s.array = entries.u32();
    s.scale = entries.u32();
    s.crc = entries.u32();
    s.offset = entries.u64();
    s.length = entries.u64();
  }
  if (entries.u32() != crc32c(data, size_t(tocEnd))) throw Error("checksum mismatch in the table of contents");

  // Requiring the payloads to tile the file leaves no unchecked gap in which corruption could hide.
  uint64_t expected = tocEnd + kTocCrcBytes;
  for (const SectionInfo& s : toc.sections) {
    if (s.offset != expected)
      throw Error("archive section '" + sectionName(s) + "' starts at byte " + std::to_string(s.offset) +
                  ", expected " + std::to_string(expected));
    if (s.length > size - expected)
      throw Error("archive section '" + sectionName(s) + "' runs past the end of the file");
    expected += s.length;
  }
  if (expected != size) throw Error("trailing bytes after the last section");
  return toc;
}

/// The known sections of one array, located by the table of contents.
struct ArrayLayout {
  const SectionInfo* header = nullptr;
  const SectionInfo* cnn = nullptr;
  const SectionInfo* residual = nullptr;
  const SectionInfo* window = nullptr;
  std::vector<const SectionInfo*> scales;  // by scale position
};

std::vector<ArrayLayout> groupByArray(const std::vector<SectionInfo>& sections) {
  std::vector<ArrayLayout> arrays;
  for (const SectionInfo& s : sections) {
    if (!isKnown(s.type)) continue;  // a newer writer's extension: skipped
    const std::string name = "archive section '" + sectionName(s) + "'";
    // An array index can only be as large as the number of sections, which the file size bounds.
    if (s.array >= sections.size()) throw Error(name + " names an array beyond the section count");
    if (s.array >= arrays.size()) arrays.resize(s.array + 1);
    ArrayLayout& a = arrays[s.array];
    if (s.type != SectionType::Scale) {
      const SectionInfo*& slot = s.type == SectionType::Header        ? a.header
                                 : s.type == SectionType::BoundaryCnn ? a.cnn
                                 : s.type == SectionType::Residual    ? a.residual
                                                                      : a.window;
      if (slot) throw Error(name + " appears twice");
      slot = &s;
      continue;
    }
    if (s.scale >= uint32_t(kMaxScales))
      throw Error(name + " is beyond the maximum of " + std::to_string(kMaxScales) + " scales");
    if (s.scale >= a.scales.size()) a.scales.resize(s.scale + 1, nullptr);
    if (a.scales[s.scale]) throw Error(name + " appears twice");
    a.scales[s.scale] = &s;
  }
  if (arrays.empty()) throw Error("archive holds no arrays");
  for (size_t i = 0; i < arrays.size(); ++i) {
    if (!arrays[i].header) throw Error("archive has no header for array " + std::to_string(i));
    for (size_t k = 0; k < arrays[i].scales.size(); ++k)
      if (!arrays[i].scales[k])
        throw Error("archive is missing " + sectionName(SectionType::Scale, uint32_t(i), uint32_t(k)));
  }
  return arrays;
}

void verifyChecksum(const uint8_t* data, const SectionInfo& s) {
  if (crc32c(data + s.offset, size_t(s.length)) != s.crc)
    throw Error("checksum mismatch in section '" + sectionName(s) + "'");
}

ByteReader openSection(const uint8_t* data, const SectionInfo& s) {
  return ByteReader(data + s.offset, s.length, sectionName(s));
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: payloads

Dims4 readDims(ByteReader& r) {
  Dims4 d;
  for (int a = 0; a < 4; ++a) d[a] = r.i64();
  return d;
}

/// Header fields only; the caller checks the scale count against the table of contents.
Model parseHeader(ByteReader& r, uint32_t& scaleCount, uint32_t version) {
  Model m;
  m.meta.arrayName = r.string();
  m.dims = readDims(r);
  for (double& v : m.meta.spacing) v = r.f64();
  for (double& v : m.meta.origin) v = r.f64();
  const uint64_t timeCount = r.u64();
  r.require(timeCount, 8);
  m.meta.times.resize(size_t(timeCount));
  for (double& v : m.meta.times) v = r.f64();
  m.dataMin = r.f32();
  m.dataMax = r.f32();
  m.shape.latentDim = toInt(r.u32());
  m.shape.hidden = toInt(r.u32());
  m.shape.sineLayers = toInt(r.u32());
  m.shape.omega0 = r.f32();
  scaleCount = r.u32();
  m.preset = r.string();
  if (version >= 4) {
    m.shape.latentGrid = toInt(r.u32());
    m.shape.codeSteps = toInt(r.u32());
  }
  r.finish();
  checkHeader(m, scaleCount, "archive section '" + r.name() + "'");
  return m;
}

/// Reads the fields that size the rest of a Scale payload and returns the block count.
uint64_t readScaleFixed(ByteReader& r, ScaleModel& s) {
  s.dims = readDims(r);
  for (bool& h : s.halved) {
    const uint8_t v = r.u8();
    if (v > 1) r.fail("has an invalid halved flag " + std::to_string(v));
    h = v == 1;
  }
  for (int& b : s.blockDims) b = toInt(r.u32());
  s.mlpCount = toInt(r.u32());
  const uint8_t precision = r.u8();
  if (precision > 1) r.fail("has an unknown precision " + std::to_string(precision));
  s.precision = WeightPrecision(precision);
  return r.u64();
}

ScaleModel parseScaleV1(ByteReader& r, const Model& m) {
  const std::string where = "archive section '" + r.name() + "'";
  ScaleModel s;
  const uint64_t blockCount = readScaleFixed(r, s);
  checkScaleFixed(s, m, where);
  r.require(blockCount, kBlockRecordBytes);
  s.blocks.resize(size_t(blockCount));
  for (BlockRecord& b : s.blocks) {
    b.block = r.u32();
    b.t = r.u32();
    b.mlp = r.u32();
    b.minValue = r.f32();
    b.maxValue = r.f32();
  }
  checkBlocks(s, where);
  const MlpShape& shape = m.shape;
  r.values(s.latents, saturatingMul(blockCount, uint64_t(shape.latentsPerBlock())), s.precision);
  s.weights.resize(size_t(shape.layerCount()));
  s.biases.resize(size_t(shape.layerCount()));
  for (int l = 0; l < shape.layerCount(); ++l) {
    const uint64_t fanOut = uint64_t(shape.fanOut(l)), mlps = uint64_t(s.mlpCount);
    r.values(s.weights[size_t(l)], saturatingMul(mlps, uint64_t(shape.fanIn(l)) * fanOut), s.precision);
    r.values(s.biases[size_t(l)], saturatingMul(mlps, fanOut), s.precision);
  }
  r.finish();
  checkFiniteParameters(s, where);
  return s;
}

/// One entropy-coded stream at the reader's position; errors name the section.
std::vector<uint32_t> readSymbols(ByteReader& r, uint64_t count, int bits) {
  if (saturatingMul(count, uint64_t((bits + 7) / 8)) > saturatingMul(r.remaining() + 1, kMaxExpansion))
    r.fail("claims a stream larger than the section can hold");
  size_t used = 0;
  try {
    std::vector<uint32_t> v = decodeSymbols(r.cursor(), size_t(r.remaining()), count, bits, &used);
    r.skip(used);
    return v;
  } catch (const Error& e) {
    r.fail(std::string("has a bad stream: ") + e.what());
  }
}

std::vector<uint8_t> readBits(ByteReader& r, uint64_t count) {
  if (count > saturatingMul(r.remaining() + 1, kMaxExpansion)) r.fail("claims a stream larger than the section can hold");
  size_t used = 0;
  try {
    std::vector<uint8_t> v = decodeBits(r.cursor(), size_t(r.remaining()), count, &used);
    r.skip(used);
    return v;
  } catch (const Error& e) {
    r.fail(std::string("has a bad stream: ") + e.what());
  }
}

/// Where the bytes of a version 2 Scale payload go, for `ecnr info`.
struct GroupBytes {
  uint64_t* masks;
  uint64_t* codebooks;  // with the codebook size
  uint64_t* indices;
  uint64_t* plain;      // values of groups without a codebook
};

/// The codebook of a kGroupDeltaBook group (writeGroup): K entries per part from key differences.
void readDeltaBook(ByteReader& r, std::vector<float>& codebook, uint64_t K, uint64_t parts, const char* what) {
  const std::vector<uint32_t> d = readSymbols(r, saturatingMul(K, parts), kDeltaBits);
  codebook.resize(d.size());
  int64_t key = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i % K == 0) key = kDeltaStart;
    key += (d[i] & 1u) ? -int64_t(d[i] >> 1) - 1 : int64_t(d[i] >> 1);
    if (key < 0 || key > 0xFFFF) r.fail(std::string("has a codebook key out of range in its ") + what);
    codebook[i] = halfToFloat(keyHalf(uint32_t(key)));
  }
}

void readGroup(ByteReader& r, std::vector<float>& out, std::vector<float>& codebook, uint64_t count, uint64_t parts,
               bool maskable, WeightPrecision p, const char* what, const GroupBytes* acc) {
  uint64_t at = r.position();
  auto account = [&](uint64_t* field) {
    if (acc && field) *field += r.position() - at;
    at = r.position();
  };
  const uint8_t kind = r.u8();
  at = r.position();  // the kind byte counts with the values: indices for a coded group, plain values otherwise
  if (acc) *((kind & kGroupCoded) ? acc->indices : acc->plain) += 1;
  if (kind > (kGroupMasked | kGroupCoded | kGroupDeltaBook) || ((kind & kGroupMasked) && !maskable) ||
      ((kind & kGroupDeltaBook) && (!(kind & kGroupCoded) || p != WeightPrecision::Float16)))
    r.fail(std::string("has an invalid kind for its ") + what);
  std::vector<uint8_t> mask;
  uint64_t kept = count;
  if (kind & kGroupMasked) {
    mask = readBits(r, count);
    kept = uint64_t(std::count(mask.begin(), mask.end(), uint8_t(1)));
  }
  account(acc ? acc->masks : nullptr);
  std::vector<float> values;
  if (!(kind & kGroupCoded)) {
    r.values(values, kept, p);
    account(acc ? acc->plain : nullptr);
  } else {
    if (count == 0 || parts == 0) r.fail(std::string("has a codebook for empty ") + what);
    const uint64_t K = r.u32();
    if (K == 0) r.fail(std::string("has an empty codebook for its ") + what);
    if (kind & kGroupDeltaBook) readDeltaBook(r, codebook, K, parts, what);
    else r.values(codebook, saturatingMul(K, parts), p);
    account(acc ? acc->codebooks : nullptr);
    const std::vector<uint32_t> ids = readSymbols(r, kept, symbolBits(K));
    account(acc ? acc->indices : nullptr);
    if (count % parts != 0) r.fail(std::string("has local codebooks that do not match its ") + what);
    const uint64_t per = count / parts;
    values.resize(ids.size());
    size_t k = 0;
    for (uint64_t i = 0; i < count; ++i) {
      if (!mask.empty() && !mask[size_t(i)]) continue;
      if (ids[k] >= K) r.fail(std::string("has a codebook index out of range in its ") + what);
      values[k] = codebook[size_t((i / per) * K + ids[k])];
      ++k;
    }
  }
  out.assign(size_t(count), 0.0f);
  size_t k = 0;
  for (uint64_t i = 0; i < count; ++i)
    if (mask.empty() || mask[size_t(i)]) out[size_t(i)] = values[k++];
}

void readBlockTable(ByteReader& r, ScaleModel& s, uint64_t blockCount, bool onGrid) {
  if (blockCount == 0) {
    if (onGrid) r.fail("has a range grid but no block");
    return;
  }
  const auto g = s.blockGrid();
  const uint64_t perStep = uint64_t(g[0] * g[1] * g[2]);
  const std::vector<uint8_t> keep = readBits(r, saturatingMul(perStep, uint64_t(s.dims.t)));
  if (uint64_t(std::count(keep.begin(), keep.end(), uint8_t(1))) != blockCount)
    r.fail("keeps a number of blocks other than its block count");
  s.blocks.resize(size_t(blockCount));
  size_t k = 0;
  for (uint64_t i = 0; i < keep.size(); ++i)
    if (keep[size_t(i)]) {
      s.blocks[k].t = uint32_t(i / perStep);
      s.blocks[k].block = uint32_t(i % perStep);
      ++k;
    }
  if (s.mlpCount > 1) {
    const std::vector<uint32_t> mlp = readSymbols(r, blockCount, symbolBits(uint64_t(s.mlpCount)));
    for (size_t i = 0; i < mlp.size(); ++i) s.blocks[i].mlp = mlp[i];
  }
  if (!onGrid) {
    r.require(blockCount, 8);
    for (BlockRecord& b : s.blocks) {
      b.minValue = r.f32();
      b.maxValue = r.f32();
    }
    return;
  }
  RangeGrid grid;
  grid.lo = r.f32();
  grid.step = r.f32();
  if (!std::isfinite(grid.lo) || !std::isfinite(grid.step) || !(grid.step > 0)) r.fail("has an invalid range grid");
  s.rangeLo = grid.lo;
  s.rangeStep = grid.step;
  const std::vector<uint32_t> lo = readSymbols(r, blockCount, kRangeBits);
  const std::vector<uint32_t> span = readSymbols(r, blockCount, kRangeBits);
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    if (uint64_t(lo[i]) + span[i] > RangeGrid::kLevels) r.fail("has a block range beyond its grid");
    s.blocks[i].minValue = grid.value(lo[i]);
    s.blocks[i].maxValue = grid.value(lo[i] + span[i]);
  }
}

ScaleModel parseScaleV2(ByteReader& r, const Model& m, ComponentBytes* bytes = nullptr) {
  const std::string where = "archive section '" + r.name() + "'";
  ScaleModel s;
  const uint64_t blockCount = readScaleFixed(r, s);
  checkScaleFixed(s, m, where);
  const uint8_t flags = r.u8();
  if (flags > (kRangesOnGrid | kLocalCodebooks)) r.fail("has unknown flags " + std::to_string(flags));
  s.codebooks.local = (flags & kLocalCodebooks) != 0;
  readBlockTable(r, s, blockCount, (flags & kRangesOnGrid) != 0);
  checkBlocks(s, where);
  if (bytes) bytes->blockTable += r.position();
  uint64_t at = r.position();
  const MlpShape& shape = m.shape;
  int64_t codes = 0;
  codeSlots(s, shape.codeSteps, &codes);
  readGroup(r, s.latents, s.codebooks.latents, saturatingMul(uint64_t(codes), uint64_t(shape.latentsPerBlock())), 1,
            false, s.precision, "latents", nullptr);
  if (bytes) bytes->latents += r.position() - at;
  GroupBytes acc{bytes ? &bytes->masks : nullptr, bytes ? &bytes->codebooks : nullptr,
                 bytes ? &bytes->indices : nullptr, bytes ? &bytes->weights : nullptr};
  const uint64_t parts = s.codebooks.local ? uint64_t(s.mlpCount) : 1;
  s.weights.resize(size_t(shape.layerCount()));
  s.biases.resize(size_t(shape.layerCount()));
  s.codebooks.weights.resize(size_t(shape.layerCount()));
  s.codebooks.biases.resize(size_t(shape.layerCount()));
  for (int l = 0; l < shape.layerCount(); ++l) {
    const uint64_t fanOut = uint64_t(shape.fanOut(l)), mlps = uint64_t(s.mlpCount);
    for (int bias = 0; bias < 2; ++bias) {
      const uint64_t count = saturatingMul(mlps, bias ? fanOut : uint64_t(shape.fanIn(l)) * fanOut);
      auto& out = bias ? s.biases[size_t(l)] : s.weights[size_t(l)];
      auto& book = bias ? s.codebooks.biases[size_t(l)] : s.codebooks.weights[size_t(l)];
      readGroup(r, out, book, count, parts, true, s.precision, bias ? "biases" : "weights", bytes ? &acc : nullptr);
    }
  }
  r.finish();
  checkFiniteParameters(s, where);
  return s;
}

/// The grid of a Scale section the caller does not load: dims, halved axes and block dims, no blocks, no MLPs.
ScaleModel parseScaleGrid(ByteReader& r, const Model& m) {
  ScaleModel s;
  readScaleFixed(r, s);
  checkScaleFixed(s, m, "archive section '" + r.name() + "'");
  s.mlpCount = 0;
  s.weights.assign(size_t(m.shape.layerCount()), {});
  s.biases.assign(size_t(m.shape.layerCount()), {});
  return s;
}

/// Adds a Scale section's components from its counts, without reading the block table or the values.
void measureScale(ByteReader& r, const MlpShape& shape, ComponentBytes& bytes) {
  ScaleModel s;
  const uint64_t blockCount = readScaleFixed(r, s);
  if (s.mlpCount < 0) r.fail("has an invalid MLP count");
  const uint64_t element = valueBytes(s.precision);
  const uint64_t table = saturatingMul(blockCount, kBlockRecordBytes);
  const uint64_t latents = saturatingMul(saturatingMul(blockCount, uint64_t(shape.latentsPerBlock())), element);
  const uint64_t weights = saturatingMul(saturatingMul(uint64_t(s.mlpCount), uint64_t(shape.paramsPerMlp())), element);
  // Each term is checked on its own first so that their sum cannot overflow.
  const uint64_t left = r.remaining();
  if (table > left || latents > left || weights > left || table + latents + weights != left)
    r.fail("does not match its counts");
  bytes.blockTable += kScaleFixedBytes + table;
  bytes.latents += latents;
  bytes.weights += weights;
}

[[noreturn]] void systemError(const std::string& verb, const std::string& path, int err) {
  throw Error("cannot " + verb + " " + path + ": " + std::strerror(err));
}

std::vector<uint8_t> readWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) systemError("open", path, errno);
  std::vector<uint8_t> bytes;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) bytes.reserve(size_t(st.st_size));
  uint8_t chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      systemError("read", path, err);
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  ::close(fd);
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Atomic writing

/// The process umask, read without changing it (umask() would race with other threads creating files).
mode_t currentUmask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Umask:", 0) == 0) return mode_t(std::stoul(line.substr(6), nullptr, 8));
  return 022;
}

std::string parentDirectory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// A mkstemp file next to the target; removed on destruction unless it was renamed over the target.
class TempFile {
public:
  explicit TempFile(const std::string& target) : target_(target), name_(target + ".tmp-XXXXXX") {
    fd_ = ::mkstemp(&name_[0]);
    if (fd_ < 0) systemError("write", target_, errno);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(name_.c_str());
  }

  void write(const uint8_t* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) systemError("write", target_, n < 0 ? errno : EIO);
      data += n;
      size -= size_t(n);
    }
  }
  /// mkstemp creates the file 0600; give it the mode a plain create (or the file it replaces) would have.
  void setMode() {
    struct stat st;
    const mode_t mode = ::stat(target_.c_str(), &st) == 0 ? (st.st_mode & 07777) : (0666 & ~currentUmask());
    if (::fchmod(fd_, mode) != 0) systemError("write", target_, errno);
  }
  /// Flushes to disk before the rename so a crash never leaves a renamed but empty file.
  void commit() {
    if (::fsync(fd_) != 0) systemError("write", target_, errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) systemError("write", target_, errno);
    if (::rename(name_.c_str(), target_.c_str()) != 0) systemError("write", target_, errno);
    committed_ = true;
    syncDirectory();
  }

private:
  // Best effort: makes the rename itself durable. Failure here does not undo a complete write.
  void syncDirectory() const {
    const int dir = ::open(parentDirectory(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    (void)::fsync(dir);
    ::close(dir);
  }

  std::string target_, name_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

uint64_t residualSectionBytes(const ResidualCorrection& c) {
  uint64_t n = kTocEntryBytes + kResidualFixedBytes;
  if (c.hasCorrection())
    for (const auto& st : c.steps) {
      ByteWriter w;
      w.uleb(st.size());
      n += w.bytes().size() + st.size();
    }
  return n;
}

namespace {

void addSections(std::vector<PendingSection>& sections, const std::vector<Model>& arrays, size_t firstIndex,
                 uint32_t version) {
  for (size_t k = 0; k < arrays.size(); ++k) {
    const size_t a = firstIndex + k;
    const Model& m = arrays[k];
    checkArrayForWrite(m, arrays[0], uint32_t(a));
    sections.push_back({{SectionType::Header, uint32_t(a), 0, 0, 0, 0}, headerPayload(m, version)});
    for (int s = 0; s < m.scaleCount(); ++s)
      sections.push_back(
          {{SectionType::Scale, uint32_t(a), uint32_t(s), 0, 0, 0}, scalePayload(m.scales[size_t(s)], m.shape)});
    if (m.hasCnn()) {
      std::vector<uint8_t> payload;
      try {
        payload = serializeBoundaryCnn(m.cnn);
      } catch (const Error& e) {
        throw Error("cannot write archive: boundary CNN of array " + std::to_string(a) + ": " + e.what());
      }
      sections.push_back({{SectionType::BoundaryCnn, uint32_t(a), 0, 0, 0, 0}, std::move(payload)});
    }
    if (m.hasResidualSection()) {
      const ResidualCorrection& c = m.residual;
      if (c.hasCorrection() && int64_t(c.steps.size()) != m.dims.t)
        throw Error("cannot write archive: the residual of array " + std::to_string(a) + " has " +
                    std::to_string(c.steps.size()) + " steps for " + std::to_string(m.dims.t));
      sections.push_back({{SectionType::Residual, uint32_t(a), 0, 0, 0, 0}, residualPayload(c)});
    }
    if (m.firstStep != 0) {
      ByteWriter w;
      w.u64(uint64_t(m.firstStep));
      sections.push_back({{SectionType::Window, uint32_t(a), 0, 0, 0, 0}, std::move(w.bytes())});
    }
  }
}

void checkSeriesForWrite(const std::vector<Model>& parts) {
  try {
    seriesOf(parts);
  } catch (const Error& e) {
    throw Error(std::string("cannot write archive: ") + e.what());
  }
}

}  // namespace

std::vector<uint8_t> serializeArchive(const std::vector<Model>& arrays) {
  if (arrays.empty()) throw Error("cannot write archive: no arrays");
  checkSeriesForWrite(arrays);
  std::vector<PendingSection> sections;
  const uint32_t version = requiredVersion(arrays);
  addSections(sections, arrays, 0, version);
  return assemble(sections, version);
}

namespace {

// `existing` = parseArchive(data, size), which verified every checksum of what is copied.
std::vector<uint8_t> appendParsed(const uint8_t* data, size_t size, std::vector<Model> existing,
                                  const std::vector<Model>& parts) {
  if (parts.empty()) throw Error("cannot append: nothing to add");
  const size_t first = existing.size();
  existing.insert(existing.end(), parts.begin(), parts.end());
  checkSeriesForWrite(existing);
  const TableOfContents toc = readTableOfContents(data, size);
  // A version-1 file's Scale payloads cannot be copied into a newer one: write everything anew (losslessly).
  if (toc.version < 2) return serializeArchive(existing);
  // The file keeps at least its version (an unknown section it carries may need it). Headers are written anew
  // for the new version (a version-4 Header has fields an older one lacks); everything else is copied.
  const uint32_t version = std::max(toc.version, requiredVersion(existing));
  std::vector<PendingSection> sections;
  for (const SectionInfo& s : toc.sections)
    sections.push_back({{s.type, s.array, s.scale, 0, 0, 0},
                        s.type == SectionType::Header
                            ? headerPayload(existing[s.array], version)
                            : std::vector<uint8_t>(data + s.offset, data + s.offset + s.length)});
  addSections(sections, parts, first, version);
  return assemble(sections, version);
}

}  // namespace

std::vector<uint8_t> appendToArchive(const uint8_t* data, size_t size, const std::vector<Model>& parts) {
  return appendParsed(data, size, parseArchive(data, size), parts);
}

uint64_t appendStepsToArchive(const std::string& path, std::vector<Model> parts) {
  const std::vector<uint8_t> bytes = readWholeFile(path);
  std::vector<Model> existing;
  try {
    existing = parseArchive(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  const std::vector<SeriesView> series = seriesOf(existing);
  for (Model& m : parts) {
    auto it = std::find_if(series.begin(), series.end(), [&](const SeriesView& v) { return v.name == m.meta.arrayName; });
    if (it == series.end()) throw Error("cannot append: " + path + " has no array '" + m.meta.arrayName + "'");
    m.firstStep += it->steps();
  }
  const std::vector<uint8_t> out = appendParsed(bytes.data(), bytes.size(), std::move(existing), parts);
  writeFileAtomic(path, out.data(), out.size());
  return out.size();
}

std::vector<Model> parseArchive(const uint8_t* data, size_t size, int maxScales) {
  const TableOfContents toc = readTableOfContents(data, size);
  const std::vector<ArrayLayout> layout = groupByArray(toc.sections);
  // A full read verifies every payload, extensions included; a preview touches only the sections it decodes.
  if (maxScales < 0)
    for (const SectionInfo& s : toc.sections)
      if (!isKnown(s.type)) verifyChecksum(data, s);

  std::vector<Model> arrays;
  for (size_t a = 0; a < layout.size(); ++a) {
    const ArrayLayout& l = layout[a];
    verifyChecksum(data, *l.header);
    ByteReader header = openSection(data, *l.header);
    uint32_t scaleCount = 0;
    Model m = parseHeader(header, scaleCount, toc.version);
    if (scaleCount != l.scales.size())
      header.fail("declares " + std::to_string(scaleCount) + " scales but the archive has " +
                  std::to_string(l.scales.size()));
    const size_t load = maxScales < 0 ? l.scales.size() : std::min(l.scales.size(), size_t(maxScales));
    for (size_t s = 0; s < load; ++s) {
      verifyChecksum(data, *l.scales[s]);
      ByteReader scale = openSection(data, *l.scales[s]);
      m.scales.push_back(toc.version == 1 ? parseScaleV1(scale, m) : parseScaleV2(scale, m));
    }
    // A preview keeps the grids of the scales it skips (their fixed fields only, no blocks and no MLPs), so the
    // decoder still climbs to the full grid: the skipped residuals simply decode to zero.
    for (size_t s = load; s < l.scales.size(); ++s) {
      ByteReader scale = openSection(data, *l.scales[s]);
      m.scales.push_back(parseScaleGrid(scale, m));
    }
    checkPyramid(m, true, "archive array " + std::to_string(a));
    // The CNN corrects the full-resolution decode only: a coarse preview does not read it.
    if (l.cnn && load == l.scales.size()) {
      verifyChecksum(data, *l.cnn);
      try {
        m.cnn = parseBoundaryCnn(data + l.cnn->offset, size_t(l.cnn->length));
      } catch (const Error& e) {
        throw Error("archive section '" + sectionName(*l.cnn) + "': " + e.what());
      }
    }
    if (l.window) {
      verifyChecksum(data, *l.window);
      ByteReader r = openSection(data, *l.window);
      const uint64_t first = r.u64();
      if (first > (uint64_t(1) << 62)) r.fail("starts at step " + std::to_string(first));
      r.finish();
      m.firstStep = int64_t(first);
    }
    // Likewise the correction: it belongs to the full decode (a preview keeps only the mode and its figures).
    if (l.residual) {
      const bool full = load == l.scales.size();
      if (full) verifyChecksum(data, *l.residual);
      ByteReader r = openSection(data, *l.residual);
      m.residual = parseResidual(r, m, full);
    }
    arrays.push_back(std::move(m));
  }
  try {
    seriesOf(arrays);  // the windows of each array tile its steps; every array has one grid
  } catch (const Error& e) {
    throw Error(std::string("archive: ") + e.what());
  }
  return arrays;
}

void writeArchive(const std::vector<Model>& arrays, const std::string& path) {
  const std::vector<uint8_t> bytes = serializeArchive(arrays);
  writeFileAtomic(path, bytes.data(), bytes.size());
}

std::vector<Model> readArchive(const std::string& path, int maxScales) {
  const std::vector<uint8_t> bytes = readWholeFile(path);
  try {
    return parseArchive(bytes.data(), bytes.size(), maxScales);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

ArchiveSummary summarizeArchive(const uint8_t* data, size_t size) {
  TableOfContents toc = readTableOfContents(data, size);
  const std::vector<ArrayLayout> layout = groupByArray(toc.sections);
  ArchiveSummary summary;
  summary.version = toc.version;
  summary.fileBytes = size;
  summary.bytes.header = kPrefixBytes;
  summary.bytes.toc = kTocEntryBytes * toc.sections.size() + kTocCrcBytes;
  for (const ArrayLayout& l : layout) {
    // The header is small and sizes the scales, so it is verified and decoded; scales are only measured.
    verifyChecksum(data, *l.header);
    ByteReader header = openSection(data, *l.header);
    uint32_t scaleCount = 0;
    const Model m = parseHeader(header, scaleCount, toc.version);
    ResidualCorrection c;
    if (l.residual) {
      verifyChecksum(data, *l.residual);
      ByteReader r = openSection(data, *l.residual);
      c = parseResidual(r, m, false);
    }
    summary.quality.push_back(c.quality);
    summary.bound.push_back(c.bound);
    for (const SectionInfo* s : l.scales) {
      ByteReader scale = openSection(data, *s);
      if (toc.version == 1) {
        measureScale(scale, m.shape, summary.bytes);
      } else {  // entropy-coded: the sizes are known only by reading the streams (small next to decoding)
        verifyChecksum(data, *s);
        parseScaleV2(scale, m, &summary.bytes);
      }
    }
  }
  // Header sections and extension sections are both metadata, so total() equals the file size.
  for (const SectionInfo& s : toc.sections) {
    if (s.type == SectionType::BoundaryCnn) summary.bytes.cnn += s.length;
    else if (s.type == SectionType::Residual) summary.bytes.residual += s.length;
    else if (s.type != SectionType::Scale) summary.bytes.header += s.length;
  }
  summary.sections = std::move(toc.sections);
  return summary;
}

ArchiveSummary summarizeArchive(const std::string& path) {
  const std::vector<uint8_t> bytes = readWholeFile(path);
  try {
    return summarizeArchive(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

void writeFileAtomic(const std::string& path, const uint8_t* data, size_t size) { writeFileAtomic(path, {{data, size}}); }

void writeFileAtomic(const std::string& path, const std::vector<std::pair<const uint8_t*, size_t>>& parts) {
  TempFile tmp(path);
  for (const auto& [data, size] : parts) tmp.write(data, size);
  tmp.setMode();
  tmp.commit();
}

}  // namespace ecnr
