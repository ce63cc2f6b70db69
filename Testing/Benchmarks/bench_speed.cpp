// bench_speed: decoding and training speed of the LibTorch path and the fused CPU kernels on the same shapes, the
// machine's FMA peak measured by the same process, and the cost of random access (one time step, one sub-extent).
// Writes a markdown section for BENCHMARKS.md ("Speed").
//   ecnr_bench_speed [out.md] [--quick]
//
// FLOP counts (multiply-adds x 2; sines, Adam and data movement not counted), for input 3 + latent 8, 3 sine
// layers of 24 and a linear output: one decoded voxel = 11*24 + 24*24 + 24*24 + 24 = 1440 multiply-adds = 2880 FLOP;
// one training sample = forward 1440 + weight gradients 1440 + input gradients (24*24*2 + 24 + 8*24 latent rows)
// 1368 = 4248 multiply-adds = 8496 FLOP. The fused decoder folds the latent into the first bias, so it executes
// 1248 of the 1440 multiply-adds per voxel; rates below count 2880 FLOP per voxel for both paths.
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <omp.h>
#include <sys/utsname.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>

#include "../../Core/kernels/SirenCuda.h"
#include "../../Core/kernels/SirenIsa.h"
#include "ecnr/Decoder.h"
#include "ecnr/Ensemble.h"
#include "ecnr/Pyramid.h"

using namespace ecnr;

namespace {

constexpr double kDecodeFlop = 2880, kTrainFlop = 8496;

// ------------------------------------------------------------------------------------------------ FMA peak

#if defined(__x86_64__)
__attribute__((target("avx512f,fma"))) float fmaLoopAvx512(long iters) {
  __m512 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm512_set1_ps(float(k) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] = _mm512_fmadd_ps(a[k], m, c);
  __m512 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, a[k]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fmaLoopAvx2(long iters) {
  __m256 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_ps(float(k) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  __m256 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm256_add_ps(s, a[k]);
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0] + o[7];
}

#else
float fmaLoopAvx512(long) { return 0; }
float fmaLoopAvx2(long) { return 0; }
#endif

/// Peak single-precision FMA GFLOP/s over all OpenMP threads, with the widest vectors this CPU runs.
double measureFmaPeak(std::string& isa) {
  const bool wide = kernels::isaSupported(kernels::Isa::Avx512);
  const bool avx2 = kernels::isaSupported(kernels::Isa::Avx2);
  isa = wide ? "AVX-512" : avx2 ? "AVX2" : "none";
  if (!wide && !avx2) return 0;
  const long iters = 100000000;  // ~0.15 s per thread and repetition
  const int lanes = wide ? 16 : 8;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    float sink = 0;
    double t0 = 0, t1 = 0;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp barrier
#pragma omp master
      t0 = omp_get_wtime();
      sink += wide ? fmaLoopAvx512(iters) : fmaLoopAvx2(iters);
#pragma omp barrier
#pragma omp master
      t1 = omp_get_wtime();
    }
    if (sink == 12345.0f) std::cerr << "";
    best = std::max(best, double(omp_get_max_threads()) * double(iters) * 12 * lanes * 2 / (t1 - t0) / 1e9);
  }
  return best;
}

// ------------------------------------------------------------------------------------------------ models

MlpShape benchShape() { return MlpShape{8, 24, 3, 30.0f}; }

/// Random SIREN weights with the trainer's initial distribution, m MLPs.
void randomWeights(ScaleModel& s, const MlpShape& shape, int m, std::mt19937& rng) {
  s.mlpCount = m;
  s.weights.clear();
  s.biases.clear();
  for (int l = 0; l < shape.layerCount(); ++l) {
    const int in = shape.fanIn(l), out = shape.fanOut(l);
    const float wb = l == 0 ? 1.0f / float(in) : std::sqrt(6.0f / float(in)) / shape.omega0;
    const float bb = 1.0f / std::sqrt(float(in));
    std::uniform_real_distribution<float> uw(-wb, wb), ub(-bb, bb);
    std::vector<float> w(size_t(m) * size_t(in * out)), b(size_t(m) * size_t(out));
    for (float& v : w) v = uw(rng);
    for (float& v : b) v = ub(rng);
    s.weights.push_back(std::move(w));
    s.biases.push_back(std::move(b));
  }
}

/// A model whose scales follow planPyramid, every block of every step present, blocks spread over m MLPs.
Model syntheticModel(const Dims4& dims, int scales, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  Model model;
  model.dims = dims;
  model.shape = benchShape();
  model.dataMin = 0;
  model.dataMax = 1;
  const PyramidPlan plan = planPyramid(dims, scales, 8);
  const int count = int(plan.dims.size());
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int p = 0; p < count; ++p) {
    const int i = count - 1 - p;  // plan index, finest first
    ScaleModel s;
    s.dims = plan.dims[size_t(i)];
    s.halved = plan.halved[size_t(i)];
    s.blockDims = {16, 16, 16};
    const auto g = s.blockGrid();
    const int64_t perStep = g[0] * g[1] * g[2];
    for (int64_t t = 0; t < s.dims.t; ++t)
      for (int64_t b = 0; b < perStep; ++b)
        s.blocks.push_back(BlockRecord{uint32_t(b), uint32_t(t), uint32_t((t * perStep + b) % m), -0.1f, 0.1f});
    s.latents.resize(s.blocks.size() * size_t(model.shape.latentDim));
    for (float& v : s.latents) v = normal(rng);
    randomWeights(s, model.shape, m, rng);
    model.scales.push_back(std::move(s));
  }
  return model;
}

template <class F>
double bestSeconds(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = omp_get_wtime();
    f();
    best = std::min(best, omp_get_wtime() - t0);
  }
  return best;
}

// ------------------------------------------------------------------------------------------------ decoding

struct Rate {
  double libtorch = 0, fused = 0, endToEnd = 0;
};

// One time step of 128 x 128 x 64 (256 blocks of 16^3), blocks spread over m MLPs.
Model decodeModel(int m) { return syntheticModel(Dims4{128, 128, 64, 1}, 1, m, 7); }

void fusedDecodeRates(int m, bool quick, Rate& r) {
  const Model model = decodeModel(m);
  Decoder dec(model);
  const double voxels = double(model.dims.count());
  dec.decodeAll();  // warm-up: thread-local scratch, page faults
  r.endToEnd = voxels / bestSeconds(quick ? 2 : 7, [&] { dec.decodeAll(); });
  // the block evaluation alone (what the LibTorch row does): every block of the step added into one array
  std::vector<float> step(size_t(voxels), 0.0f);
  r.fused = voxels / bestSeconds(quick ? 2 : 7, [&] { addBlockOutputs(model, 0, 0, step.data()); });
}

void libtorchDecodeRate(int m, bool quick, Rate& r) {
  // the batched bmm forward over the same number of voxels, inputs = local coords + a latent
  const Model model = decodeModel(m);
  const double voxels = double(model.dims.count());
  const ScaleModel& s = model.scales[0];
  const int64_t batch = int64_t(voxels) / m / (quick ? 4 : 2);
  const int D = model.shape.inputDim();
  std::vector<float> inputs(size_t(m) * size_t(batch) * size_t(D));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& v : inputs) v = u(rng);
  r.libtorch = double(m) * double(batch) / bestSeconds(quick ? 1 : 3, [&] { batchedForward(s, model.shape, inputs, batch); });
}

// ------------------------------------------------------------------------------------------------ training

TrainingSet trainingSet(int m, int blocksPerMlp) {
  TrainingSet set;
  set.blockDims = {16, 16, 16};
  set.mlpCount = m;
  for (int b = 0; b < m * blocksPerMlp; ++b) {
    set.validDims.push_back({16, 16, 16});
    set.mlpOfBlock.push_back(b % m);
    for (int z = 0; z < 16; ++z)
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x)
          set.values.push_back(std::sin(0.3f * float(x) + 0.2f * float(y) * float(1 + b % 3) - 0.1f * float(z) * float(b % 5)));
  }
  return set;
}

double trainRate(const TrainingSet& set, const std::string& trainer, int batch, int epochs) {
  TrainOptions o;
  o.trainer = trainer;
  o.batchPerMlp = batch;
  o.epochs = epochs;
  ScaleModel out;
  for (int64_t b = 0; b < set.blockCount(); ++b) out.blocks.push_back(BlockRecord{uint32_t(b), 0, 0, -1, 1});
  const TrainStats st = trainEnsemble(set, benchShape(), o, out, Progress());
  return double(st.samples) / st.seconds;
}

std::string fmt(double v, int prec = 1) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  return s.str();
}

std::string cpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace

int main(int argc, char** argv) {
  std::string outPath;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else outPath = a;
  }
  std::string isa;
  // The peak is measured several times through the run and the best kept: on a shared machine a single short
  // measurement can land in someone else's time slice.
  double peak = 0;
  auto updatePeak = [&] {
    const double p = measureFmaPeak(isa);
    std::cerr << "FMA peak now " << fmt(p) << " GFLOP/s\n";
    peak = std::max(peak, p);
  };
  updatePeak();
  const int threads = omp_get_max_threads();
  struct Row {
    std::string what;
    int m;
    double libtorch, fused, flop;
  };
  std::vector<Row> rows;
  auto row = [&](const std::string& what, int m, double lt, double fu, double flop) {
    rows.push_back(Row{what, m, lt, fu, flop});
    std::cerr << what << ", " << m << " MLPs: LibTorch " << fmt(lt / 1e6, 2) << " M/s, fused " << fmt(fu / 1e6, 2)
              << " M/s\n";
  };
  if (getenv("ECNR_BENCH_CPU")) {  // development aid on a busy machine: rates per CPU-second of one thread
    auto cpu = [] {
      timespec ts{};
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
    };
    omp_set_num_threads(1);
    double c0 = cpu();
    if (kernels::isaSupported(kernels::Isa::Avx512)) {
      const float sink = fmaLoopAvx512(20000000);
      std::cerr << "FMA peak: " << fmt(20000000.0 * 12 * 16 * 2 / (cpu() - c0) / 1e9) << " GFLOP per CPU-s"
                << (sink == 1 ? " " : "") << "\n";
    }
    const Model model = syntheticModel(Dims4{128, 128, 64, 1}, 1, 64, 7);
    std::vector<float> step(size_t(model.dims.count()), 0.0f);
    addBlockOutputs(model, 0, 0, step.data());
    c0 = cpu();
    for (int i = 0; i < 10; ++i) addBlockOutputs(model, 0, 0, step.data());
    std::cerr << "decode: " << fmt(10 * double(model.dims.count()) / (cpu() - c0) / 1e6, 2) << " M voxels per CPU-s\n";
    const TrainingSet set = trainingSet(16, 2);
    for (int batch : {512, 2048}) {
      TrainOptions o;
      o.trainer = "fused";
      o.batchPerMlp = batch;
      o.epochs = 8;
      o.threads = 1;
      ScaleModel out;
      c0 = cpu();
      const TrainStats st = trainEnsemble(set, benchShape(), o, out, Progress());
      std::cerr << "train batch " << batch << ": " << fmt(double(st.samples) / (cpu() - c0) / 1e6, 2)
                << " M samples per CPU-s\n";
    }
    return 0;
  }
  // All fused measurements first: after LibTorch has run, its BLAS threads keep spinning for a while and slow
  // whatever runs next on this 2-core machine.
  const int ms[2] = {64, 256};
  Rate decode[2];
  for (int k = 0; k < 2; ++k) fusedDecodeRates(ms[k], quick, decode[k]);
  std::vector<std::pair<std::string, double>> isaRates;
  const std::string picked = kernels::activeKernels().name;
  for (kernels::Isa isa : {kernels::Isa::Avx2, kernels::Isa::Generic}) {  // the paths the dispatch did not pick
    if (!kernels::forceIsa(isa)) continue;
    if (picked == kernels::activeKernels().name) {
      kernels::forceIsa(kernels::Isa::Auto);
      continue;
    }
    const Model model = syntheticModel(Dims4{128, 128, quick ? 16 : 32, 1}, 1, 64, 7);
    std::vector<float> step(size_t(model.dims.count()), 0.0f);
    addBlockOutputs(model, 0, 0, step.data());
    isaRates.emplace_back(std::string("decode: block evaluation, ") + kernels::activeKernels().name + " path",
                          double(model.dims.count()) /
                              bestSeconds(quick ? 1 : 3, [&] { addBlockOutputs(model, 0, 0, step.data()); }));
    kernels::forceIsa(kernels::Isa::Auto);
  }
  // The CUDA decoder on the same step, when this build has it and a GPU is visible (block lists up, outputs down).
  double gpuRate = 0;
  std::string gpuStatus = kernels::cudaDecoderStatus();
  if (gpuStatus.empty()) {
    const Model model = decodeModel(256);
    const ScaleModel& s = model.scales[0];
    const MlpShape& sh = model.shape;
    kernels::CudaScaleDecoder gpu(s.mlpCount, sh.latentDim, sh.hidden, sh.sineLayers, sh.omega0, s.weights, s.biases,
                                  s.latents, s.blockDims.data());
    kernels::CudaBlockList list;
    for (size_t i = 0; i < s.blocks.size(); ++i) {
      list.mlp.push_back(int32_t(s.blocks[i].mlp));
      list.latentRow.push_back(int32_t(i));
      list.validDims.insert(list.validDims.end(), {16, 16, 16});
    }
    std::vector<float> out(s.blocks.size() * 4096);
    gpu.decode(list, out.data());
    gpuRate = double(out.size()) / bestSeconds(quick ? 3 : 10, [&] { gpu.decode(list, out.data()); });
  }
  updatePeak();
  struct TrainCase {
    int m, batch, epochs;
    double libtorch = 0, fused = 0;
  };
  std::vector<TrainCase> train;
  for (int m : ms)
    for (int batch : {512, 2048}) train.push_back({m, batch, quick ? 1 : (m == 64 ? 4 : 1) * (batch == 512 ? 2 : 1)});
  for (TrainCase& c : train) c.fused = trainRate(trainingSet(c.m, 2), "fused", c.batch, c.epochs * 8);
  updatePeak();
  // Random access on a 3-scale pyramid of a 128 x 128 x 64 x 16 series (every block present, 64 MLPs per scale).
  const Model model = syntheticModel(Dims4{128, 128, 64, 16}, 3, 64, 11);
  Decoder dec(model);
  int64_t allBlocks = 0;
  for (const ScaleModel& s : model.scales) allBlocks += int64_t(s.blocks.size());
  const double tAll = bestSeconds(quick ? 1 : 2, [&] { dec.decodeAll(); });
  const int64_t t = 9;
  const double tStep = bestSeconds(quick ? 2 : 5, [&] { dec.decodeStep(t); });
  const int64_t stepBlocks = dec.lastBlockEvaluations();
  const Extent box{0, 31, 0, 31, 0, 31};
  const double tBox = bestSeconds(quick ? 2 : 5, [&] { dec.decodeRegion(t, box); });
  const int64_t boxBlocks = dec.lastBlockEvaluations();
  // LibTorch last
  for (int k = 0; k < 2; ++k) libtorchDecodeRate(ms[k], quick, decode[k]);
  for (TrainCase& c : train) c.libtorch = trainRate(trainingSet(c.m, 2), "libtorch", c.batch, c.epochs);
  for (int k = 0; k < 2; ++k) {
    row("decode: block evaluation (voxels)", ms[k], decode[k].libtorch, decode[k].fused, kDecodeFlop);
    row("decode: Decoder::decodeAll, end to end", ms[k], decode[k].libtorch, decode[k].endToEnd, kDecodeFlop);
  }
  for (const auto& [name, rate] : isaRates) row(name, 64, 0, rate, kDecodeFlop);
  if (gpuRate > 0) row("decode: CUDA kernel (fused column = GPU)", 256, decode[1].fused, gpuRate, kDecodeFlop);
  for (const TrainCase& c : train)
    row("train (samples), batch " + std::to_string(c.batch), c.m, c.libtorch, c.fused, kTrainFlop);
  updatePeak();
  std::ostringstream md;
  md << "## Speed\n\n";
  md << "Machine: " << cpuName() << ", " << threads << " threads; fused kernels: " << kernels::activeKernels().name
     << "; measured FMA peak (" << isa << ", 12 independent FMA chains per thread, all threads, best of the run): **"
     << fmt(peak)
     << " GFLOP/s**. Shapes: input 3 + latent 8, 3 sine layers of 24, linear output, 16^3 blocks. FLOP = 2 x "
        "multiply-adds: 2880 per decoded voxel, 8496 per training sample (see bench_speed.cpp).\n\n";
  md << "| work | MLPs | LibTorch /s | LibTorch GFLOP/s | fused /s | fused GFLOP/s | fused % of peak | fused / LibTorch |\n";
  md << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    const bool lt = r.libtorch > 0;
    md << "| " << r.what << " | " << r.m << " | " << (lt ? fmt(r.libtorch / 1e6, 2) + " M" : "-") << " | "
       << (lt ? fmt(r.libtorch * r.flop / 1e9) : "-") << " | " << fmt(r.fused / 1e6, 2) << " M | "
       << fmt(r.fused * r.flop / 1e9) << " | "
       << (peak > 0 ? fmt(100 * r.fused * r.flop / 1e9 / peak) + " %" : "-") << " | "
       << (lt ? fmt(r.fused / r.libtorch) + "x" : "-") << " |\n";
  }
  if (gpuRate > 0)
    md << "\nThe CUDA row's ratio column is GPU / fused CPU (its LibTorch column holds the fused CPU rate); % of peak is "
          "relative to the CPU peak and meaningless there.\n";
  else
    md << "\nCUDA decoder: not measured (" << gpuStatus << ").\n";
  md << "\nRandom access (fused decoder, 3 scales of a 128x128x64x16 series, time and space halved, "
     << allBlocks << " blocks in all):\n\n";
  md << "| request | seconds | blocks evaluated | cost vs reference |\n|---|---:|---:|---:|\n";
  md << "| all 16 time steps | " << fmt(tAll, 3) << " | " << allBlocks << " | 1 |\n";
  md << "| one time step (t = " << t << ") | " << fmt(tStep, 3) << " | " << stepBlocks << " | " << fmt(tStep / tAll, 3)
     << " of all |\n";
  md << "| 32^3 sub-extent of that step | " << fmt(tBox, 4) << " | " << boxBlocks << " | " << fmt(tBox / tStep, 3)
     << " of the step (blocks: " << fmt(double(boxBlocks) / double(stepBlocks), 3) << ") |\n";
  std::cout << md.str();
  if (!outPath.empty()) {
    std::ofstream out(outPath);
    out << md.str();
  }
  return 0;
}
