// What each term of the encoder estimate stands for is named after the code that allocates it (Encoder.cpp,
// Ensemble.cpp, Assignment.cpp). Calibrated against measured peak RSS of `ecnr compress`: see the test
// MemoryEstimate* in Testing/Core/test_reliability.cpp and docs/ARCHIVE.md "Reliability".
#include "ecnr/MemoryEstimate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "ecnr/Pyramid.h"

namespace ecnr {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

/// Saturating arithmetic: once a term overflows, the estimate stays at UINT64_MAX and every check refuses it.
uint64_t mul(uint64_t a, uint64_t b) { return (a != 0 && b > kMax / a) ? kMax : a * b; }
uint64_t add(uint64_t a, uint64_t b) { return b > kMax - a ? kMax : a + b; }

constexpr uint64_t kFloat = 4;
/// The LibTorch / OpenMP / BLAS runtime and the program itself (measured ~150-200 MB RSS for a tiny encode).
constexpr uint64_t kRuntimeBytes = uint64_t(256) << 20;
/// Assignment.cpp keeps the blocks x MLPs distance matrix only up to this many entries.
constexpr uint64_t kMaxStoredDistances = 25000000;

uint64_t ceilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

uint64_t estimateEncoderPeakBytes(const Dims4& dims, const ResolvedSettings& r, bool inputHeld) {
  validateDims(dims);
  const PyramidPlan plan = planPyramid(dims, r.s.scales, r.s.minAxisLength);
  const int S = int(plan.dims.size());
  uint64_t levels = 0;  // the coarser levels of the normalized pyramid (Encoder.cpp `levels`; V_0 is never held)
  for (int i = 1; i < S; ++i) levels = add(levels, mul(uint64_t(plan.dims[size_t(i)].count()), kFloat));
  const bool quality = r.s.mode != QualityMode::Expert;  // the quality modes hold the series (Quality.cpp)
  const uint64_t input = inputHeld || quality ? mul(uint64_t(dims.count()), kFloat) : 0;
  const uint64_t step = mul(uint64_t(dims.voxelsPerStep()), kFloat);  // one finest time step

  // Building V_1 from the source: three smoothed fine steps and a buffer (Pyramid.cpp downsample).
  const uint64_t pyramid = mul(step, 4);
  // Choosing the block size from the data: the open-loop residuals of the coarser levels (held: at most the
  // levels again, with an upsample of each), the finest step by step (input, base, two upsampled coarse steps,
  // the step read for the counts).
  const bool chooseBlocks = r.s.blockDims[0] <= 0 || r.s.blockDims[1] <= 0 || r.s.blockDims[2] <= 0;
  const uint64_t choosing = chooseBlocks ? add(mul(levels, 2), mul(step, 5)) : 0;

  // The scale loop; the largest scale dominates but every one is evaluated.
  const MlpShape shape{r.s.latentDim, r.s.hidden, r.s.sineLayers, r.s.omega0, r.s.latentGrid, r.s.codeSteps};
  const uint64_t blockVoxels = uint64_t(r.blockDims[0]) * uint64_t(r.blockDims[1]) * uint64_t(r.blockDims[2]);
  const uint64_t batch = uint64_t(std::max(1, r.s.batchPerMlp));
  uint64_t loop = 0;
  for (int p = 0; p < S; ++p) {
    const Dims4& d = plan.dims[size_t(S - 1 - p)];
    const Dims4& coarser = plan.dims[size_t(std::min(S - 1, S - p))];
    uint64_t blocks = uint64_t(d.t);
    for (int a = 0; a < 3; ++a) blocks = mul(blocks, ceilDiv(uint64_t(d[a]), uint64_t(r.blockDims[size_t(a)])));
    const uint64_t mlps = p == S - 1 && r.s.finestMlps > 0
                              ? std::min(blocks, uint64_t(r.s.finestMlps))
                              : ceilDiv(blocks, uint64_t(std::max(1, r.blocksPerMlp[size_t(p)])));
    // A coarser scale: two fields of it at a time (target and base, then the new reconstruction and the one it
    // came from). The finest: four of its steps (the target step, its base, two upsampled coarse steps).
    const uint64_t fields = p + 1 < S ? mul(mul(uint64_t(d.count()), kFloat), 2) : mul(step, 4);
    uint64_t bytes = add(fields, mul(uint64_t(coarser.count()), kFloat));
    // TrainingSet values (padded blocks, reserved once; half floats for a large finest scale).
    const bool half = p + 1 == S && useHalfTrainingValues(dims, r);
    bytes = add(bytes, mul(mul(blocks, blockVoxels), half ? kFloat / 2 : kFloat));
    // Per block: record (20), valid dims (12), loss weight, MLP index, features (<= 512 floats), sampler ids (8).
    const uint64_t features = std::min<uint64_t>(blockVoxels, 512);
    bytes = add(bytes, mul(blocks, 20 + 12 + 4 + 4 + 8 + features * kFloat));
    // k-means / uniformization: the distance matrix when stored, centroids.
    bytes = add(bytes, mul(std::min(mul(blocks, mlps), kMaxStoredDistances), kFloat));
    bytes = add(bytes, mul(mul(mlps, features), kFloat));
    // Training: parameters and latents with gradient and two Adam moments; activations of one step (forward
    // values, sine outputs and their gradients per layer, for the input and every hidden layer).
    const uint64_t params = add(mul(mlps, uint64_t(shape.paramsPerMlp())), mul(blocks, uint64_t(shape.latentsPerBlock())));
    bytes = add(bytes, mul(params, 4 * kFloat));
    // LibTorch holds every MLP's batch at once; the fused CPU trainer (the default on the CPU for shapes it
    // supports: SirenTrainCpu.h) one sub-batch per thread.
    const uint64_t perSample = uint64_t(shape.inputDim()) * 2 + uint64_t(shape.sineLayers) * uint64_t(shape.hidden) * 4 + 8;
    const bool fused = r.s.trainer != "libtorch" && r.s.device == "cpu" && r.s.hidden <= 256 && r.s.sineLayers <= 16;
    const uint64_t threads = r.s.threads > 0 ? uint64_t(r.s.threads) : uint64_t(std::max(1u, std::thread::hardware_concurrency()));
    const uint64_t inFlight = fused ? mul(threads, std::min<uint64_t>(batch, 256)) : mul(mlps, batch);
    bytes = add(bytes, mul(mul(inFlight, perSample), 2 * kFloat));
    loop = std::max(loop, bytes);
  }
  // The boundary CNN after the last scale: its patches (drawn first, kept), the finest decode and the original
  // one step at a time with the upsampled coarse steps, the coarser reconstruction, and LibTorch's convolution
  // workspace (measured about 20 MiB on small patches; 48 MiB leaves room).
  uint64_t cnn = 0;
  if (r.s.boundaryCnn) {
    const int64_t halo = 5;  // layers x kernel / 2
    uint64_t in = 1, out = 1;
    for (int a = 0; a < 3; ++a) {
      const uint64_t p = uint64_t(std::min<int64_t>(16, dims[a]));
      in = mul(in, std::min<uint64_t>(p + 2 * halo, uint64_t(dims[a])));
      out = mul(out, p);
    }
    const uint64_t patches = mul(uint64_t(std::max(1, r.s.cnnSteps)) * 2 + 8, mul(add(in, out), kFloat));
    const uint64_t coarserRecon = S > 1 ? mul(uint64_t(plan.dims[1].count()), kFloat) : 0;
    cnn = add(add(add(patches, mul(step, 5)), coarserRecon), uint64_t(48) << 20);
  }
  // Quality modes (Quality.cpp), after the network: its decode, the corrected decode, the coded correction (at
  // most about the input), and per coding thread one step's integers and symbols (Residual.cpp: 28 bytes a voxel).
  uint64_t correction = 0;
  if (quality) {
    const uint64_t threads = std::min<uint64_t>(uint64_t(dims.t), r.s.threads > 0 ? uint64_t(r.s.threads)
                                                                                  : uint64_t(std::max(1u, std::thread::hardware_concurrency())));
    correction = add(mul(input, 3), mul(mul(uint64_t(dims.voxelsPerStep()), 32), threads));
  }
  const uint64_t working = std::max({pyramid, choosing, loop, cnn});
  return add(add(input, std::max(add(levels, working), correction)), kRuntimeBytes);
}

uint64_t modelMemoryBytes(const Model& m) {
  uint64_t model = 0;
  for (const ScaleModel& s : m.scales) {
    model = add(model, mul(uint64_t(s.blocks.size()), sizeof(BlockRecord)));
    model = add(model, mul(uint64_t(s.latents.size()), kFloat));
    for (const auto& w : s.weights) model = add(model, mul(uint64_t(w.size()), kFloat));
    for (const auto& b : s.biases) model = add(model, mul(uint64_t(b.size()), kFloat));
  }
  return model;
}

uint64_t estimateDecoderPeakBytes(const Model& m, int scales, bool fullResolution) {
  const int count = m.scaleCount();
  const int used = scales < 0 || scales > count ? count : std::max(1, scales);
  uint64_t model = modelMemoryBytes(m);
  // Two neighbouring reconstructions are alive at once (the coarser one and the one built from it).
  uint64_t peak = 0, previous = 0;
  for (int p = 0; p < used && p < count; ++p) {
    const uint64_t here = mul(uint64_t(m.scales[size_t(p)].dims.count()), kFloat);
    peak = std::max(peak, add(here, previous));
    previous = here;
  }
  if (fullResolution || count == 0) peak = std::max(peak, add(mul(uint64_t(m.dims.count()), kFloat), previous));
  // The correction (Residual.cpp), applied after the decode: its streams, and per decoding thread one step's
  // integers and symbols (16 bytes a voxel).
  if (m.residual.hasCorrection() && used == count) {
    const uint64_t threads = std::min<uint64_t>(uint64_t(m.dims.t), std::max(1u, std::thread::hardware_concurrency()));
    model = add(model, m.residual.bytes());
    peak = add(peak, mul(mul(uint64_t(m.dims.voxelsPerStep()), 16), threads));
  }
  return add(model, peak);
}

uint64_t availableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return mul(value, 1024);  // reported in kB
  }
  return 0;
}

uint64_t parseByteSize(const std::string& text) {
  const auto bad = [&]() {
    return Error("invalid byte size '" + text + "' (expected a number with an optional K, M, G or T suffix)");
  };
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string suffix = text.substr(used);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  if (suffix.size() >= 2 && suffix.compare(suffix.size() - 2, 2, "IB") == 0) suffix.resize(suffix.size() - 2);
  else if (!suffix.empty() && suffix.back() == 'B') suffix.pop_back();
  double scale = 1;
  if (suffix == "K") scale = 1024.0;
  else if (suffix == "M") scale = 1024.0 * 1024;
  else if (suffix == "G") scale = 1024.0 * 1024 * 1024;
  else if (suffix == "T") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!suffix.empty()) throw bad();
  const double bytes = value * scale;
  if (!std::isfinite(bytes) || bytes < 1 || bytes >= 1.8e19) throw bad();
  return uint64_t(bytes);
}

std::string formatBytes(uint64_t bytes) {
  if (bytes == kMax) return "more than 16 EiB";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = double(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 5) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

void checkMemory(uint64_t need, uint64_t limit, const std::string& what, const std::string& limitName) {
  if (limit == 0 || need <= limit) return;
  throw Error(what + " needs about " + formatBytes(need) + " of memory, more than " + limitName + " (" +
              formatBytes(limit) + ")");
}

}  // namespace ecnr
