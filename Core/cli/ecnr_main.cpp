// ecnr: the command-line tool. compress | decompress | info | eval | generate | demo.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ecnr/Archive.h"
#include "ecnr/Blocks.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Ensemble.h"
#include "ecnr/Generator.h"
#include "ecnr/Image.h"
#include "ecnr/MemoryEstimate.h"
#include "ecnr/Metrics.h"
#include "ecnr/Series.h"
#include "ecnr/VolumeIO.h"
#ifdef ECNR_WITH_MPI
#include "MpiComm.h"
#endif
#include <omp.h>

using namespace ecnr;

namespace {

// The ranks of this run: MPI_COMM_WORLD under mpiexec (built with ECNR_WITH_MPI), else this process alone.
// compress splits each scale's MLPs over them, decompress the time steps; rank 0 prints and writes.
const Comm* gComm = &aloneComm();
bool leader() { return gComm->rank() == 0; }

const char* kUsage = R"(usage:
  ecnr compress <input> <output.ecnr> [options]     input: .npy, raw float32 (--dims), or a ../shared/data .json
  ecnr decompress <input.ecnr> <output.npy|.raw> [--scales K] [--timestep T] [--coarse-resolution] [--array NAME]
                           [--memory-limit BYTES|off] [--cnn off] [--correction off] [--threads N]
  ecnr info <input.ecnr>
  ecnr append <archive.ecnr> <input> [compress options]   new time steps as new windows, the rest untouched
  ecnr eval <original> <decoded|archive.ecnr> [--dims X,Y,Z[,T]] [--array NAME]
  ecnr generate <output.npy> [--size X,Y,Z,T] [--seed N]
  ecnr demo [--out DIR] [--preset fast|default|quality|paper] [--size X,Y,Z,T]

compress options:
  --dims X,Y,Z[,T]         dims of a raw input          --array NAME        array of a multi-array .json
  --preset fast|default|quality|paper (default: default; paper: the paper's choices, BENCHMARKS.md)
  --scales S   --block X,Y,Z   --blocks-per-mlp a,b,c (coarsest first)   --epochs a,b,c (coarsest first)
  --latent N   --hidden N   --threshold T   --batch N   --lr X   --lr-decay F   --precision f16|f32
  --range-weighting on|off (weight each block's loss by its value range; default on)
  --importance F           share of each MLP's training draws made by its blocks' running error (0 = uniform)
  --capacity-by-error A    blocks share MLPs by weight RMS^A: hard blocks get MLPs of fewer blocks (0 = equal counts)
  --latent-grid 1|2        2: a latent code at each block corner, interpolated across the block (8x the codes)
  --code-steps W           a block's latent code shared by W steps of its scale, time an input of the MLP (1 = per step)
  quality modes (an error-bounded correction on top of the network; ecnr info shows the mode and what it reached):
  --max-error E | --rel-error e   every voxel within E (absolute) or e x the data range, on every decoder path
  --target-psnr P                 at least P dB (lands in [P, P+1]), the fewest bytes the modes find
  --target-ratio R                the archive within +-10 % of ratio R (network sized for it; a correction tops up a short one)
  --mode expert|ratio|psnr|max-error   (inferred from the options above; expert: --target-ratio only chooses
                                  the block size, no correction)   --network-share F (ratio mode: network's share, 1)
  deep compression (paper Sec. 3.5; quantization on, pruning off by default):
  --prune on|off   --prune-at a,b,..  --sparsity a,b,..  (rounds: fraction of training, sparsity of the candidates)
  --prune-scales N (prune the N finest scales only; 0 = all; default 1)
  --bits B (shared values per layer: 2^B; 0 = no quantization)   --latent-bits B (0 = plain latent codes)
  --bias-bits B (the biases' shared values: 2^B; default 8)   --values-per-shared N (a weight codebook: at most one
                           entry per N weights of its group, at least 64; default 2)
  --codebook-rate S        codebooks shrink to 128 / 64 entries where that pays at MSE ~ rate^-S (0 = off)
  --codebook-rate-groups w,b,l  which codebooks may: weights, biases, latent codes (default w)
  --quantization global|local   --fine-tune F (fine-tuning epochs, fraction of each scale's)   --fine-tune-lr X
  --quant-aware F          quantization-aware training: the last F of each scale's epochs at codebook-rounded
                           weights (straight-through gradient; 0 = off, the default)
  --cnn on|off (boundary CNN, paper Sec. 3.6; default on)   --cnn-channels N (default 8)   --cnn-steps N
  --window N               encode the series as independent windows of N time steps (bounded memory, random
                           access to a step reads one window; `append` adds windows later)
  --seed N   --threads N   --device cpu|cuda   --trainer auto|fused|libtorch   --quiet
  --training-values f16|f32|auto  the finest scale's training values in memory (auto: f16 above 512 MiB of them)
  --replace-nonfinite V    replace NaN and +-Inf input values by V (otherwise they are refused)
  --memory-limit BYTES|off refuse a job whose estimated peak memory exceeds BYTES (K/M/G/T suffixes); default:
                           the available memory (MemAvailable); off: no check

An archive with several arrays: decompress and eval need --array NAME (ecnr info lists them).
)";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  bool has(const std::string& k) const { return options.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = options.find(k);
    return it == options.end() ? def : it->second;
  }
};

Args parseArgs(int argc, char** argv, int first) {
  static const std::vector<std::string> flags = {"--quiet", "--coarse-resolution"};
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
        a.options[s] = "1";
      } else {
        if (i + 1 >= argc) throw Error("option " + s + " needs a value");
        a.options[s] = argv[++i];
      }
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

std::vector<double> parseDoubles(const std::string& s, const std::string& what) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    try {
      v.push_back(std::stod(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) throw Error(what + ": '" + item + "' is not a number");
  }
  if (v.empty()) throw Error(what + " needs comma-separated numbers");
  return v;
}

bool onOff(const std::string& v, const std::string& what) {
  if (v != "on" && v != "off") throw Error(what + " must be on or off");
  return v == "on";
}

std::vector<int> parseInts(const std::string& s, const std::string& what) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error("bad value '" + s + "' for " + what + " (expected comma-separated integers)");
    }
  }
  return v;
}

double parseNumber(const std::string& s, const std::string& what) {
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error("bad value '" + s + "' for " + what);
}

/// --codebook-rate-groups: a comma list of w (weights), b (biases), l (latent codes).
int parseRateGroups(const std::string& s) {
  int mask = 0;
  std::stringstream list(s);
  for (std::string item; std::getline(list, item, ',');) {
    if (item == "w") mask |= 1;
    else if (item == "b") mask |= 2;
    else if (item == "l") mask |= 4;
    else throw Error("bad value '" + s + "' for --codebook-rate-groups (a list of w, b, l)");
  }
  return mask;
}

/// The memory a job may use: --memory-limit, else MemAvailable (0 = no check).
std::pair<uint64_t, std::string> memoryLimit(const Args& a) {
  if (a.has("--memory-limit")) {
    const std::string v = a.get("--memory-limit");
    if (v == "off") return {0, ""};
    return {parseByteSize(v), "--memory-limit"};
  }
  return {availableMemoryBytes(), "the available memory (MemAvailable)"};
}

/// Replaces NaN and +-Inf by `value`; returns how many were replaced.
int64_t replaceNonFinite(Field& f, float value) {
  int64_t n = 0;
  for (float& v : f.values)
    if (!std::isfinite(v)) v = value, ++n;
  return n;
}

/// Fails before a long job if `path` cannot be created: its folder is missing, not writable, or on a read-only
/// file system. The final write is still atomic and checked; this only avoids discovering it hours later.
void checkWritable(const std::string& path) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) throw Error("cannot write " + path + ": it is a directory");
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  std::string probe = dir + "/.ecnr-probe-XXXXXX";
  const int fd = ::mkstemp(&probe[0]);
  if (fd < 0) throw Error("cannot write " + path + ": " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

/// The array to decode: the only one, or the one named by --array (refused when several and none is named).
SeriesView chooseSeries(const std::vector<Model>& parts, const Args& a, const std::string& path) {
  try {
    return seriesNamed(parts, a.get("--array"));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what() + (a.has("--array") ? "" : " with --array NAME"));
  }
}

// Ctrl-C (SIGINT) or SIGTERM cancels a running job through Progress: the encoder stops at its next step and nothing
// is written. A second signal acts as usual (SA_RESETHAND).
volatile sig_atomic_t gInterrupted = 0;

void onInterrupt(int) { gInterrupted = 1; }

void cancelOnInterrupt() {
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// One progress line, rewritten in place on a terminal, with elapsed time and ETA.
Progress::Callback progressPrinter(bool quiet) {
  auto timer = std::make_shared<Timer>();
  return [timer, quiet](double fraction, const std::string& message) {
    if (quiet) return;
    const double elapsed = timer->seconds();
    std::ostringstream line;
    line << "[" << std::setw(3) << int(fraction * 100) << "%] " << message << "  (" << std::fixed
         << std::setprecision(0) << elapsed << " s";
    if (fraction > 0.02 && fraction < 1) line << ", ETA " << elapsed * (1 - fraction) / fraction << " s";
    line << ")";
    std::cerr << line.str() << std::endl;
  };
}

/// Progress that prints, and cancels itself when a signal arrived.
class CliProgress : public Progress {
public:
  explicit CliProgress(bool quiet)
      : Progress([this, print = progressPrinter(quiet)](double f, const std::string& m) {
          print(f, m);
          if (gInterrupted) cancel();
        }) {}
};

// --threads N for every OpenMP loop (0: all cores); under MPI without it, the ranks share the cores.
int applyThreads(const Args& a) {
  int threads = 0;
  if (a.has("--threads")) {
    threads = int(parseNumber(a.get("--threads"), "--threads"));
    if (threads < 0) throw Error("--threads must be 0 (all cores) or more");
  } else if (gComm->parallel()) {
    threads = std::max(1, omp_get_num_procs() / gComm->size());
  }
  if (threads > 0) omp_set_num_threads(threads);
  return threads;
}

// --max-error / --rel-error > --target-psnr > --target-ratio pick the mode unless --mode names it; the target
// ratio then still sizes the network.
void applyQualityOptions(const Args& a, EncoderSettings& s) {
  if (a.has("--max-error")) s.maxError = parseNumber(a.get("--max-error"), "--max-error");
  if (a.has("--rel-error")) s.relativeError = parseNumber(a.get("--rel-error"), "--rel-error");
  if (a.has("--target-psnr")) s.targetPsnr = parseNumber(a.get("--target-psnr"), "--target-psnr");
  if (a.has("--network-share")) s.networkShare = parseNumber(a.get("--network-share"), "--network-share");
  if (a.has("--max-error") && a.has("--rel-error")) throw Error("give --max-error or --rel-error, not both");
  if (a.has("--mode")) {
    const std::string m = a.get("--mode");
    s.mode = m == "expert" ? QualityMode::Expert : m == "ratio" ? QualityMode::Ratio : m == "psnr" ? QualityMode::Psnr
           : m == "max-error" ? QualityMode::MaxError
                              : throw Error("--mode must be expert, ratio, psnr or max-error");
  } else if (a.has("--max-error") || a.has("--rel-error")) {
    s.mode = QualityMode::MaxError;
  } else if (a.has("--target-psnr")) {
    s.mode = QualityMode::Psnr;
  } else if (a.has("--target-ratio")) {
    s.mode = QualityMode::Ratio;
  }
  if (s.mode == QualityMode::MaxError && !(s.maxError > 0) && !(s.relativeError > 0))
    throw Error("--mode max-error needs --max-error E or --rel-error e (positive)");
  if (s.mode == QualityMode::Psnr && !(s.targetPsnr > 0)) throw Error("--mode psnr needs --target-psnr P (positive)");
}

EncoderSettings settingsFrom(const Args& a) {
  EncoderSettings s = presetSettings(a.get("--preset", "default"));
  if (a.has("--scales")) s.scales = int(parseNumber(a.get("--scales"), "--scales"));
  if (a.has("--block")) {
    auto b = parseInts(a.get("--block"), "--block");
    if (b.size() != 3) throw Error("--block needs three values X,Y,Z");
    s.blockDims = {b[0], b[1], b[2]};
  }
  if (a.has("--blocks-per-mlp")) s.blocksPerMlp = parseInts(a.get("--blocks-per-mlp"), "--blocks-per-mlp");
  if (a.has("--epochs")) s.epochs = parseInts(a.get("--epochs"), "--epochs");
  if (a.has("--latent")) s.latentDim = int(parseNumber(a.get("--latent"), "--latent"));
  if (a.has("--latent-grid")) s.latentGrid = int(parseNumber(a.get("--latent-grid"), "--latent-grid"));
  if (a.has("--code-steps")) s.codeSteps = int(parseNumber(a.get("--code-steps"), "--code-steps"));
  if (a.has("--hidden")) s.hidden = int(parseNumber(a.get("--hidden"), "--hidden"));
  if (a.has("--threshold")) s.threshold = float(parseNumber(a.get("--threshold"), "--threshold"));
  if (a.has("--batch")) s.batchPerMlp = int(parseNumber(a.get("--batch"), "--batch"));
  if (a.has("--lr")) s.learningRate = float(parseNumber(a.get("--lr"), "--lr"));
  if (a.has("--lr-decay")) s.lrDecayFactor = float(parseNumber(a.get("--lr-decay"), "--lr-decay"));
  if (a.has("--importance")) s.importance = float(parseNumber(a.get("--importance"), "--importance"));
  if (a.has("--range-weighting")) {
    const std::string v = a.get("--range-weighting");
    if (v != "on" && v != "off") throw Error("--range-weighting must be on or off");
    s.rangeWeightedLoss = v == "on";
  }
  if (a.has("--prune")) s.pruning = onOff(a.get("--prune"), "--prune");
  if (a.has("--cnn")) s.boundaryCnn = onOff(a.get("--cnn"), "--cnn");
  if (a.has("--cnn-channels")) s.cnnChannels = int(parseNumber(a.get("--cnn-channels"), "--cnn-channels"));
  if (a.has("--cnn-steps")) s.cnnSteps = int(parseNumber(a.get("--cnn-steps"), "--cnn-steps"));
  if (a.has("--prune-scales")) s.pruneScales = int(parseNumber(a.get("--prune-scales"), "--prune-scales"));
  if (a.has("--prune-at")) s.pruneAt = parseDoubles(a.get("--prune-at"), "--prune-at");
  if (a.has("--sparsity")) s.pruneSparsity = parseDoubles(a.get("--sparsity"), "--sparsity");
  if (a.has("--bits")) s.quantBits = int(parseNumber(a.get("--bits"), "--bits"));
  if (a.has("--latent-bits")) s.latentBits = int(parseNumber(a.get("--latent-bits"), "--latent-bits"));
  if (a.has("--bias-bits")) s.biasBits = int(parseNumber(a.get("--bias-bits"), "--bias-bits"));
  if (a.has("--values-per-shared"))
    s.valuesPerSharedWeight = int(parseNumber(a.get("--values-per-shared"), "--values-per-shared"));
  if (a.has("--codebook-rate")) s.codebookRateSlope = parseNumber(a.get("--codebook-rate"), "--codebook-rate");
  if (a.has("--codebook-rate-groups")) s.codebookRateGroups = parseRateGroups(a.get("--codebook-rate-groups"));
  if (a.has("--quantization")) {
    const std::string q = a.get("--quantization");
    if (q != "global" && q != "local") throw Error("--quantization must be global or local");
    s.localQuantization = q == "local";
  }
  if (a.has("--fine-tune")) s.fineTuneFraction = parseNumber(a.get("--fine-tune"), "--fine-tune");
  if (a.has("--fine-tune-lr")) s.fineTuneLr = float(parseNumber(a.get("--fine-tune-lr"), "--fine-tune-lr"));
  if (a.has("--capacity-by-error"))
    s.capacityByError = parseNumber(a.get("--capacity-by-error"), "--capacity-by-error");
  if (a.has("--quant-aware")) s.quantAwareFraction = parseNumber(a.get("--quant-aware"), "--quant-aware");
  if (a.has("--target-ratio")) s.targetRatio = parseNumber(a.get("--target-ratio"), "--target-ratio");
  applyQualityOptions(a, s);
  if (a.has("--seed")) s.seed = uint64_t(parseNumber(a.get("--seed"), "--seed"));
  s.threads = applyThreads(a);
  s.comm = gComm;
  if (a.has("--device")) s.device = a.get("--device");
  if (a.has("--trainer")) s.trainer = a.get("--trainer");
  if (a.has("--precision")) {
    const std::string p = a.get("--precision");
    if (p != "f16" && p != "f32") throw Error("--precision must be f16 or f32");
    s.precision = p == "f16" ? WeightPrecision::Float16 : WeightPrecision::Float32;
  }
  if (a.has("--training-values")) {
    const std::string v = a.get("--training-values");
    if (v != "f16" && v != "f32" && v != "auto") throw Error("--training-values must be f16, f32 or auto");
    s.halfTrainingValues = v == "auto" ? -1 : v == "f16" ? 1 : 0;
  }
  if (s.device == "cuda" && !cudaAvailable())
    throw Error("--device cuda: this LibTorch build has no CUDA support or no GPU is visible; use --device cpu");
  return s;
}

Field readInput(const std::string& path, const Args& a, GridMeta* meta) {
  Dims4 dims;
  const bool hasDims = a.has("--dims");
  if (hasDims) dims = parseDims(a.get("--dims"));
  return readField(path, hasDims ? &dims : nullptr, a.get("--array"), meta);
}

/// The input as a source read step by step through a memory map (the encoder never holds a file's series). With
/// --replace-nonfinite the values are edited, so the series is read into `held` and the source reads that.
std::unique_ptr<FieldSource> openInput(const std::string& path, const Args& a, GridMeta* meta, Field& held) {
  Dims4 dims;
  const bool hasDims = a.has("--dims");
  if (hasDims) dims = parseDims(a.get("--dims"));
  std::unique_ptr<FieldSource> source = openField(path, hasDims ? &dims : nullptr, a.get("--array"), meta);
  if (a.has("--replace-nonfinite")) {
    const float value = float(parseNumber(a.get("--replace-nonfinite"), "--replace-nonfinite"));
    held = readAll(*source);
    const int64_t n = replaceNonFinite(held, value);
    if (n > 0 && !a.has("--quiet") && leader()) std::cerr << "replaced " << n << " non-finite value(s) by " << value << "\n";
    source = std::make_unique<MemorySource>(held);
  }
  finiteRange(*source);  // refused before any work, not when its window comes
  return source;
}

/// The time window: --window N, else the whole series when its estimated peak fits the memory limit, else the
/// longest window that fits (a note says so); refused when not even one step fits.
int64_t chooseWindow(const FieldSource& source, const EncoderSettings& s, const Args& a, uint64_t limit,
                     const std::string& limitName) {
  const Dims4 dims = source.dims();
  const bool held = source.field() != nullptr;
  auto need = [&](int64_t steps) {
    Dims4 d = dims;
    d.t = steps;
    return estimateEncoderPeakBytes(d, resolveSettings(s, d), held);
  };
  if (a.has("--window")) {
    const int64_t window = int64_t(parseNumber(a.get("--window"), "--window"));
    if (window < 1) throw Error("--window must be at least 1 time step");
    checkMemory(need(std::min(window, dims.t)), limit, "compressing " + dims.str() + " in windows of " +
                std::to_string(window) + " steps", limitName);
    return window;
  }
  if (limit == 0 || need(dims.t) <= limit) return dims.t;
  int64_t lo = 1, hi = dims.t;  // the longest window that fits: need() grows with the steps
  if (need(1) > limit) {
    try {
      checkMemory(need(dims.t), limit, "compressing " + dims.str(), limitName);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (in windows of one time step: about " + formatBytes(need(1)) + ")");
    }
  }
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    (need(mid) <= limit ? lo : hi) = mid;
  }
  if (!a.has("--quiet") && leader())
    std::cerr << "note: compressing " << dims.str() << " needs about " << formatBytes(need(dims.t)) << ", more than "
              << limitName << " (" << formatBytes(limit) << "): encoding in windows of " << lo
              << " steps (about " << formatBytes(need(lo)) << " each; --window sets it)\n";
  return lo;
}

void printEncodeReport(const EncodeReport& r) {
  std::cout << "block " << r.blockDims[0] << "x" << r.blockDims[1] << "x" << r.blockDims[2] << "\n";
  for (size_t p = 0; p < r.scales.size(); ++p) {
    const ScaleReport& s = r.scales[p];
    std::cout << "  scale " << p + 1 << " (" << s.dims.str() << "): " << s.effectiveBlocks << "/" << s.totalBlocks
              << " blocks, " << s.mlps << " MLPs, " << s.epochs << " epochs, " << std::fixed << std::setprecision(1)
              << s.trainSeconds << " s, " << std::setprecision(2) << s.samplesPerSecond / 1e6
              << " M samples/s, PSNR " << s.psnrAfter << " dB\n";
  }
}

void printQualityMode(const Model& m, const EncodeReport& report) {
  if (m.residual.quality.mode == QualityMode::Expert) return;
  const QualityInfo& q = m.residual.quality;
  std::cout << "mode " << qualityModeName(q.mode) << " (target " << q.target << "): network " << report.networkBytes
            << " bytes (PSNR " << std::fixed << std::setprecision(2) << q.networkPsnr << " dB, "
            << report.networkAttempts << " trained) + correction " << report.correctionBytes << " bytes -> PSNR "
            << q.achievedPsnr << " dB, max abs error " << std::setprecision(6) << q.achievedMaxError << "\n";
}

/// Encodes (in time windows when --window N is given) and returns the parts; nothing is written.
std::vector<Model> encodeParts(const FieldSource& f, const GridMeta& meta, const EncoderSettings& s, const Args& a) {
  const bool quiet = a.has("--quiet") || !leader();
  const auto [limit, limitName] = memoryLimit(a);
  const int64_t window = chooseWindow(f, s, a, limit, limitName);
  CliProgress progress(quiet);
  std::vector<EncodeReport> reports;
  std::vector<Model> parts = encodeWindows(f, meta, s, window, progress, &reports);
  for (size_t k = 0; k < parts.size(); ++k) {
    if (quiet) continue;
    if (parts.size() > 1)
      std::cout << "window " << k + 1 << "/" << parts.size() << " (steps " << parts[k].firstStep << "-"
                << parts[k].firstStep + parts[k].dims.t - 1 << "): ";
    printEncodeReport(reports[k]);
    printQualityMode(parts[k], reports[k]);
  }
  return parts;
}

void printQuality(const ErrorStats& e) {
  std::cout << std::fixed << std::setprecision(2) << "PSNR " << e.psnr << " dB (mean over steps "
            << e.meanStepPsnr << " dB), RMSE " << std::setprecision(6) << e.rmse << ", max abs error " << e.maxAbs
            << " (range " << e.range << ")\n";
}

int cmdCompress(const Args& a) {
  if (a.positional.size() != 2) throw Error("compress needs <input> <output.ecnr>");
  const EncoderSettings settings = settingsFrom(a);
  checkWritable(a.positional[1]);
  GridMeta meta;
  Field held;
  const std::unique_ptr<FieldSource> source = openInput(a.positional[0], a, &meta, held);
  Timer timer;
  const std::vector<Model> parts = encodeParts(*source, meta, settings, a);  // every rank ends with the same model
  if (!leader()) return 0;
  writeArchive(parts, a.positional[1]);
  const double seconds = timer.seconds();
  const auto bytes = std::filesystem::file_size(a.positional[1]);
  std::cout << "wrote " << a.positional[1] << ": " << bytes << " bytes, ratio " << std::fixed << std::setprecision(1)
            << double(source->dims().count()) * 4.0 / double(bytes) << ", " << seconds << " s\n";
  return 0;
}

void writeOutput(const Field& f, const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".npy") writeNpy(f, path);
  else writeRaw(f, path);
}

int cmdDecompress(const Args& a) {
  if (a.positional.size() != 2) throw Error("decompress needs <input.ecnr> <output.npy|.raw>");
  const int scales = a.has("--scales") ? int(parseNumber(a.get("--scales"), "--scales")) : -1;
  Timer t;
  applyThreads(a);
  const std::vector<Model> parts = readArchive(a.positional[0], scales);
  const SeriesView series = chooseSeries(parts, a, a.positional[0]);
  const bool full = !a.has("--coarse-resolution");
  const bool oneStep = a.has("--timestep");
  const int64_t step = oneStep ? int64_t(parseNumber(a.get("--timestep"), "--timestep")) : 0;
  const auto [window, local] = series.locate(step);
  const auto [limit, limitName] = memoryLimit(a);
  // The decode of the largest window plus the output file's bytes (written from one buffer); one step needs a
  // few steps' worth.
  uint64_t largest = 0;
  for (const Model* w : series.windows) largest = std::max(largest, estimateDecoderPeakBytes(*w, scales, full));
  const uint64_t need = oneStep ? uint64_t(series.dims().voxelsPerStep()) * 4 * 4
                                : largest + uint64_t(series.dims().count()) * 4;
  checkMemory(need, limit, "decoding " + series.dims().str(), limitName);
  checkWritable(a.positional[1]);
  auto decoderFor = [&](const Model& m) {
    Decoder dec(m);
    if (a.has("--cnn")) dec.setBoundaryCnn(onOff(a.get("--cnn"), "--cnn"));
    if (a.has("--correction")) dec.setResidual(onOff(a.get("--correction"), "--correction"));
    if (m.residual.hasCorrection() && !dec.appliesResidual(scales) && !a.has("--quiet"))
      std::cerr << "note: the error-bounded correction is not applied to this decode (coarse scale, CNN off, or "
                   "--correction off): the archive's bound does not hold for it\n";
    return dec;
  };
  CliProgress progress(a.has("--quiet") || !leader());
  Field f;
  if (oneStep) {
    if (!leader()) return 0;  // one step: rank 0 alone
    f = decoderFor(*window).decodeStep(local, scales, full);
  } else if (!full) {
    // The coarse grid itself (its own, coarser time axis where time was halved): small, rank 0 alone.
    if (!leader()) return 0;
    for (const Model* w : series.windows) {  // window by window, concatenated in time
      Field part = decoderFor(*w).decodeAll(scales, full, &progress);
      if (f.values.empty()) f.dims = part.dims, f.dims.t = 0;
      f.values.insert(f.values.end(), part.values.begin(), part.values.end());
      f.dims.t += part.dims.t;
    }
  } else {
    // Step by step (the same values for any number of ranks, and memory for one step's decode at a time): the
    // ranks decode contiguous shares of the steps, rank 0 writes them all.
    const Share mine = shareOf(series.steps(), gComm->rank(), gComm->size());
    std::vector<float> values;
    std::map<const Model*, Decoder> decoders;  // one per window
    for (int64_t t = mine.first; t < mine.first + mine.count; ++t) {
      const auto [w, lt] = series.locate(t);
      auto it = decoders.find(w);
      if (it == decoders.end()) it = decoders.emplace(w, decoderFor(*w)).first;
      const Field one = it->second.decodeStep(lt, scales, full);
      f.dims = one.dims;
      values.insert(values.end(), one.values.begin(), one.values.end());
      progress.report(double(t - mine.first + 1) / double(mine.count), "decoded step " + std::to_string(t + 1) + "/" +
                                                                           std::to_string(series.steps()));
    }
    f.values = gComm->parallel() ? gComm->gatherAtRoot(values) : std::move(values);
    if (mine.count == 0) f.dims = decoderFor(*series.windows.front()).decodeStep(0, scales, full).dims;
    f.dims.t = series.steps();
    if (!leader()) return 0;
  }
  writeOutput(f, a.positional[1]);
  std::cout << "decoded " << f.dims.str() << " in " << std::fixed << std::setprecision(2) << t.seconds() << " s -> "
            << a.positional[1] << "\n";
  return 0;
}

// Adds the time steps of <input> to the array of <archive.ecnr> as new windows, after its last step: the
// archive's sections are copied as they are, only the new steps are encoded, and the file is replaced atomically.
int cmdAppend(const Args& a) {
  if (a.positional.size() != 2) throw Error("append needs <archive.ecnr> <input>");
  const std::string path = a.positional[0];
  const std::vector<Model> parts = readArchive(path);
  const SeriesView series = chooseSeries(parts, a, path);
  const EncoderSettings settings = settingsFrom(a);
  checkWritable(path);
  GridMeta meta;
  Field held;
  const std::unique_ptr<FieldSource> source = openInput(a.positional[1], a, &meta, held);
  const Dims4 fd = source->dims();
  const Dims4 d = series.dims();
  if (fd.x != d.x || fd.y != d.y || fd.z != d.z)
    throw Error(a.positional[1] + " has grid " + fd.str() + " but array '" + series.name + "' of " + path + " has " +
                d.str());
  meta.arrayName = series.name;
  meta.spacing = series.windows.front()->meta.spacing;
  meta.origin = series.windows.front()->meta.origin;
  const double last = series.times().back();
  if (meta.times.empty())  // continue the series' clock: one unit a step after its last time
    for (int64_t t = 0; t < fd.t; ++t) meta.times.push_back(last + double(t + 1));
  Timer timer;
  const uint64_t bytes = appendStepsToArchive(path, encodeParts(*source, meta, settings, a));
  std::cout << "appended " << fd.t << " step(s) to '" << series.name << "' of " << path << " (now " << d.t + fd.t
            << " steps, " << bytes << " bytes), " << std::fixed << std::setprecision(1) << timer.seconds()
            << " s\n";
  return 0;
}

int cmdInfo(const Args& a) {
  if (a.positional.size() != 1) throw Error("info needs <input.ecnr>");
  const ArchiveSummary sum = summarizeArchive(a.positional[0]);
  const std::vector<Model> arrays = readArchive(a.positional[0]);
  const std::vector<SeriesView> series = seriesOf(arrays);
  double raw = 0;
  for (const Model& m : arrays) raw += double(m.dims.count()) * 4.0;
  std::cout << "ECNR archive v" << sum.version << ", " << sum.fileBytes << " bytes, " << series.size() << " array(s)";
  if (series.size() != arrays.size()) std::cout << " in " << arrays.size() << " time windows";
  std::cout << ", compression ratio " << std::fixed << std::setprecision(1) << raw / double(sum.fileBytes)
            << " (float32 input / file size)\n" << std::defaultfloat << std::setprecision(6);
  for (const Model& m : arrays) {
    const bool windowed = std::count_if(arrays.begin(), arrays.end(), [&](const Model& o) {
                            return o.meta.arrayName == m.meta.arrayName;
                          }) > 1;
    std::cout << "array '" << m.meta.arrayName << "'";
    if (windowed) std::cout << ", time window of steps " << m.firstStep << "-" << m.firstStep + m.dims.t - 1;
    std::cout << ": dims " << m.dims.str() << ", range [" << m.dataMin << ", "
              << m.dataMax << "], MLP " << m.shape.sineLayers << "x" << m.shape.hidden << " sine + linear, latent "
              << m.shape.latentDim << (m.shape.latentGrid == 2 ? " at each block corner" : "");
    if (m.shape.codeSteps > 1) std::cout << " shared by " << m.shape.codeSteps << " steps (time an input)";
    std::cout << ", omega0 " << m.shape.omega0 << ", " << modelMemoryBytes(m)
              << " bytes in memory when read\n";
    const size_t index = size_t(&m - arrays.data());
    if (index < sum.quality.size() && sum.quality[index].mode != QualityMode::Expert) {
      const QualityInfo& q = sum.quality[index];
      std::cout << "  mode " << qualityModeName(q.mode) << ", target " << std::defaultfloat << std::setprecision(6) << q.target
                << ": achieved PSNR " << std::fixed << std::setprecision(2) << q.achievedPsnr << " dB (network alone "
                << q.networkPsnr << " dB), max abs error " << std::defaultfloat << q.achievedMaxError;
      if (sum.bound[index] > 0) std::cout << ", guaranteed bound " << sum.bound[index];
      if (m.residual.hasCorrection())
        std::cout << ", correction step " << m.residual.step << " (" << m.residual.bytes() << " bytes)";
      std::cout << std::fixed << "\n";
    }
    for (size_t p = 0; p < m.scales.size(); ++p) {
      const ScaleModel& s = m.scales[p];
      const auto g = s.blockGrid();
      std::cout << "  scale " << p + 1 << ": dims " << s.dims.str() << ", block " << s.blockDims[0] << "x"
                << s.blockDims[1] << "x" << s.blockDims[2] << ", effective blocks " << s.blocks.size() << "/"
                << g[0] * g[1] * g[2] * s.dims.t << ", MLPs " << s.mlpCount << ", "
                << (s.precision == WeightPrecision::Float16 ? "float16" : "float32") << "\n";
    }
  }
  const ComponentBytes& b = sum.bytes;
  std::cout << "bytes: header " << b.header << ", table of contents " << b.toc << ", block table " << b.blockTable
            << ", latent codes " << b.latents << ", pruning masks " << b.masks << ", shared values " << b.codebooks
            << ", indices " << b.indices << ", plain weights " << b.weights << ", boundary CNN " << b.cnn
            << ", correction " << b.residual << "\n";
  return 0;
}

Field decodedFor(const std::string& path, const Args& a) {
  if (std::filesystem::path(path).extension() == ".ecnr") {
    const std::vector<Model> parts = readArchive(path);
    return decodeSeries(chooseSeries(parts, a, path));
  }
  return readInput(path, a, nullptr);
}

int cmdEval(const Args& a) {
  if (a.positional.size() != 2) throw Error("eval needs <original> <decoded|archive.ecnr>");
  const Field orig = readInput(a.positional[0], a, nullptr);
  const Field dec = decodedFor(a.positional[1], a);
  printQuality(compareFields(orig, dec));
  return 0;
}

Dims4 sizeOption(const Args& a, const Dims4& def) {
  return a.has("--size") ? parseDims(a.get("--size")) : def;
}

GrayScottParams generatorParams(const Args& a, const Dims4& def) {
  const Dims4 d = sizeOption(a, def);
  GrayScottParams p;
  p.nx = d.x;
  p.ny = d.y;
  p.nz = d.z;
  p.steps = d.t;
  if (a.has("--seed")) p.seed = uint64_t(parseNumber(a.get("--seed"), "--seed"));
  return p;
}

int cmdGenerate(const Args& a) {
  if (a.positional.size() != 1) throw Error("generate needs <output.npy>");
  const Field f = generateGrayScott(generatorParams(a, Dims4{64, 64, 64, 16}));
  writeOutput(f, a.positional[0]);
  std::cout << "wrote " << a.positional[0] << " (" << f.dims.str() << ")\n";
  return 0;
}

// The README's main job: generate the embedded dataset, compress, decompress, measure, and draw a slice.
int cmdDemo(const Args& a) {
  const std::filesystem::path out = a.get("--out", "ecnr-demo");
  std::filesystem::create_directories(out);
  Args opts = a;
  if (!opts.has("--preset")) opts.options["--preset"] = "fast";
  Timer t;
  const Field f = generateGrayScott(generatorParams(a, Dims4{64, 64, 64, 16}));
  std::cout << "generated Gray-Scott series " << f.dims.str() << " in " << std::fixed << std::setprecision(1)
            << t.seconds() << " s\n";
  const std::string archive = (out / "grayscott.ecnr").string();
  Timer te;
  writeArchive(encodeParts(MemorySource(f), GridMeta{}, settingsFrom(opts), opts), archive);
  const double encodeSeconds = te.seconds();
  Timer td;
  const std::vector<Model> arrays = readArchive(archive);
  const Field dec = Decoder(arrays.front()).decodeAll();
  const double decodeSeconds = td.seconds();
  const auto bytes = std::filesystem::file_size(archive);
  const ErrorStats e = compareFields(f, dec);
  const std::string png = (out / "grayscott-slice.png").string();
  writeComparisonPng(f, dec, f.dims.t / 2, -1, png);
  std::cout << std::fixed << std::setprecision(1) << "archive " << archive << ": " << bytes << " bytes, ratio "
            << double(f.dims.count()) * 4.0 / double(bytes) << "\n";
  printQuality(e);
  std::cout << "encode " << encodeSeconds << " s, decode " << std::setprecision(2) << decodeSeconds << " s\n";
  std::cout << "picture (original | decoded | error) " << png << "\n";
  return 0;
}

// An error or a cancel on one rank ends them all (the others may be waiting in a collective).
int endRun(int code) {
#ifdef ECNR_WITH_MPI
  if (gComm->parallel()) abortAllRanks(code);
#endif
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  cancelOnInterrupt();
#ifdef ECNR_WITH_MPI
  std::unique_ptr<MpiSession> mpi;
  try {
    mpi = std::make_unique<MpiSession>(&argc, &argv);
    gComm = &mpi->world();
  } catch (const std::exception& e) {
    std::cerr << "ecnr: " << e.what() << "\n";
    return 1;
  }
#endif
  // Only compress and decompress split over ranks; under mpiexec the other commands run on rank 0 alone.
  if (gComm->parallel() && cmd != "compress" && cmd != "decompress" && !leader()) return 0;
  try {
    const Args a = parseArgs(argc, argv, 2);
    if (cmd == "compress") return cmdCompress(a);
    if (cmd == "decompress") return cmdDecompress(a);
    if (cmd == "info") return cmdInfo(a);
    if (cmd == "append") return cmdAppend(a);
    if (cmd == "eval") return cmdEval(a);
    if (cmd == "generate") return cmdGenerate(a);
    if (cmd == "demo") return cmdDemo(a);
    std::cerr << "ecnr: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
  } catch (const Cancelled&) {
    std::cerr << "ecnr: cancelled\n";
    return endRun(130);
  } catch (const std::exception& e) {
    std::cerr << "ecnr: " << (gComm->parallel() ? "rank " + std::to_string(gComm->rank()) + ": " : "") << e.what()
              << "\n";
    return endRun(1);
  }
}
