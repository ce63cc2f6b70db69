// bench_deep: the deep-compression evidence of BENCHMARKS.md (issue 4).
//   ecnr_bench_deep ablation <datasets.conf> <preset> <out.md> [dataset ...]
//       the paper's Table 4 (float32 / pruning / quantization / both) plus global vs local quantization (Table 5):
//       the same blocks and MLPs for every row (block size chosen once, by the default pipeline for CR 300), each
//       row's archive size, CR and PSNR.
//   ecnr_bench_deep rd <datasets.conf> <preset> <out.md> [dataset ...]
//       PSNR against CR: the full pipeline over a sweep of block sizes, then the PSNR at CR 300 and 1000 interpolated
//       in log CR, beside the reference figures of SPERR, TTHRESH and SZ3 (measured outside this project).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>

#include "BenchCommon.h"
#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Metrics.h"

using namespace ecnr;
using namespace ecnr::bench;

namespace {

struct Result {
  double bytes = 0, ratio = 0, psnr = 0, seconds = 0;
  ArchiveSummary summary;
  std::array<int, 3> blockDims{};
};

Result run(const Field& f, const GridMeta& meta, const EncoderSettings& s) {
  Timer t;
  EncodeReport rep;
  const Model m = encode(f, meta, s, Progress(), &rep);
  Result r;
  r.seconds = t.seconds();
  const std::vector<uint8_t> bytes = serializeArchive({m});
  r.summary = summarizeArchive(bytes.data(), bytes.size());
  const std::vector<Model> back = parseArchive(bytes.data(), bytes.size());
  const ErrorStats e = compareFields(f, Decoder(back[0]).decodeAll());
  r.bytes = double(bytes.size());
  r.ratio = double(f.dims.count()) * 4.0 / r.bytes;
  r.psnr = e.psnr;
  r.blockDims = rep.blockDims;
  return r;
}

std::string dB(double v) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << v;
  return s.str();
}

void ablation(const Dataset& d, const Field& f, const GridMeta& meta, const EncoderSettings& base, std::ostream& md) {
  // One block size for every row: the one the default pipeline picks for CR 300 (its row reuses that run).
  EncoderSettings chosen = base;
  chosen.targetRatio = 300;
  const Result defaultRow = run(f, meta, chosen);
  EncoderSettings fixed = chosen;
  fixed.blockDims = defaultRow.blockDims;
  struct Variant {
    const char* name;
    std::function<void(EncoderSettings&)> edit;
  };
  // Rows 1-5 are the paper's Table 4 and Table 5 comparisons (no CNN); the last rows add the boundary CNN (Table 8).
  auto noCnn = [](EncoderSettings& s) { s.boundaryCnn = false; };
  auto lighter = [&](std::vector<double> sparsity) {
    return [&noCnn, sparsity](EncoderSettings& s) {
      noCnn(s);
      s.pruning = true;
      s.pruneAt = {0.3, 0.45, 0.6, 0.75};
      s.pruneSparsity = sparsity;
    };
  };
  const std::vector<Variant> variants = {
      {"float32, no pruning, no quantization",
       [&](EncoderSettings& s) { noCnn(s); s.precision = WeightPrecision::Float32; s.pruning = false; s.quantBits = 0; }},
      {"float32, pruning",
       [&](EncoderSettings& s) { noCnn(s); s.precision = WeightPrecision::Float32; s.pruning = true; s.quantBits = 0; }},
      {"quantization (global, 8 bits)", [&](EncoderSettings& s) { noCnn(s); s.pruning = false; }},
      {"pruning + quantization (global, 8 bits)", [&](EncoderSettings& s) { noCnn(s); s.pruning = true; }},
      // The paper's rounds at lighter sparsities: what pruning can add before it costs more than a dB.
      {"light pruning (10/15/20/25 %) + quantization", lighter({0.10, 0.15, 0.20, 0.25})},
      {"lighter pruning (5/10/15/20 %) + quantization", lighter({0.05, 0.10, 0.15, 0.20})},
      {"pruning + local quantization (7 bits)",
       [&](EncoderSettings& s) { noCnn(s); s.pruning = true; s.localQuantization = true; s.quantBits = 7; }},
      {"quantization, no fine-tuning", [&](EncoderSettings& s) { noCnn(s); s.fineTuneFraction = 0; }},
      {"quantization, float16 latent codes", [&](EncoderSettings& s) { noCnn(s); s.latentBits = 0; }},
      {"quantization + boundary CNN (the default)", [](EncoderSettings& s) { s.pruning = false; s.boundaryCnn = true; }},
      {"pruning + quantization + boundary CNN", [](EncoderSettings& s) { s.pruning = true; s.boundaryCnn = true; }},
  };
  // ECNR_ABLATION_ONLY="a|b": only the rows whose name contains one of these (and the float32 row, the reference).
  const char* onlyEnv = std::getenv("ECNR_ABLATION_ONLY");
  const std::string only = onlyEnv ? onlyEnv : "";
  auto wanted = [&](const std::string& name) {
    if (only.empty()) return true;
    std::istringstream parts(only);
    for (std::string part; std::getline(parts, part, '|');)
      if (!part.empty() && name.find(part) != std::string::npos) return true;
    return false;
  };
  Result first;
  for (size_t i = 0; i < variants.size(); ++i) {
    if (i > 0 && !wanted(variants[i].name)) continue;
    EncoderSettings s = fixed;
    variants[i].edit(s);
    const bool isDefault = s.pruning == base.pruning && s.quantBits == base.quantBits && s.boundaryCnn == base.boundaryCnn &&
                           s.precision == base.precision && s.localQuantization == base.localQuantization &&
                           s.fineTuneFraction == base.fineTuneFraction;
    const Result x = isDefault ? defaultRow : run(f, meta, s);
    if (i == 0) first = x;
    const ComponentBytes& b = x.summary.bytes;
    md << std::fixed << "| " << d.name << " | " << variants[i].name << " | " << x.blockDims[0] << "x" << x.blockDims[1]
       << "x" << x.blockDims[2] << " | " << std::setprecision(0) << x.bytes << " | " << std::setprecision(1)
       << first.bytes / x.bytes << "x | " << x.ratio << " | " << std::setprecision(2) << x.psnr << " | " << std::showpos
       << x.psnr - first.psnr << std::noshowpos << " | " << b.blockTable << " / " << b.latents << " / "
       << b.masks + b.codebooks + b.indices + b.weights << " | " << std::setprecision(1) << x.seconds << " |\n";
    md.flush();
    std::cerr << d.name << ": " << variants[i].name << ": CR " << x.ratio << ", PSNR " << x.psnr << "\n";
  }
}

// Block edges of the rate-distortion sweep: the archive size follows the block size (more, smaller blocks: more
// MLPs), so a sweep over edges spans the ratios; a dataset's config line may give its own with --rd-edges.
std::vector<int> sweepEdges(std::string& options) {
  return parseIntList(takeOption(options, "--rd-edges", "16,24,32,48"));
}

void rd(const Dataset& d, const Field& f, const GridMeta& meta, const EncoderSettings& base,
        const std::vector<int>& edges, std::ostream& md, std::ostream& points) {
  std::vector<std::pair<double, double>> pts;
  for (int edge : edges) {
    EncoderSettings s = base;
    for (int a = 0; a < 3; ++a) s.blockDims[size_t(a)] = int(std::min<int64_t>(edge, f.dims[a]));
    const Result x = run(f, meta, s);
    pts.push_back({x.ratio, x.psnr});
    points << std::fixed << "| " << d.name << " | " << x.blockDims[0] << "x" << x.blockDims[1] << "x" << x.blockDims[2]
           << " | " << std::setprecision(1) << x.ratio << " | " << std::setprecision(2) << x.psnr << " | "
           << (x.summary.bytes.cnn > 0 ? "yes" : "no") << " | " << std::setprecision(1) << x.seconds << " |\n";
    std::cerr << d.name << ": block " << edge << ": CR " << x.ratio << ", PSNR " << x.psnr << "\n";
  }
  const auto& figures = referenceFigures();
  const auto ref = figures.find(d.name);
  auto refCell = [&](int k) { return ref == figures.end() ? std::string("—") : dB(ref->second[size_t(k)]); };
  md << "| " << d.name << " | " << dB(psnrAt(pts, 300)) << " | " << refCell(0) << " / " << refCell(1) << " / "
     << refCell(2) << " | " << dB(psnrAt(pts, 1000)) << " | " << refCell(3) << " / " << refCell(4) << " / " << refCell(5)
     << " |\n";
  md.flush();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || (std::string(argv[1]) != "ablation" && std::string(argv[1]) != "rd")) {
    std::cerr << "usage: ecnr_bench_deep ablation|rd <datasets.conf> <preset> <out.md> [dataset ...]\n";
    return 2;
  }
  try {
    const std::string mode = argv[1], preset = argv[3];
    const std::vector<std::string> only(argv + 5, argv + argc);
    std::ofstream md(argv[4], std::ios::app);
    std::ostringstream points;
    if (mode == "ablation")
      md << "Preset `" << preset << "`, measured on " << machine() << ".\n\n"
         << "| dataset | variant | block | archive bytes | smaller than float32 | CR | PSNR (dB) | ΔPSNR | bytes: block "
            "table / latents / MLPs | encode (s) |\n|---|---|---|---|---|---|---|---|---|---|\n";
    else
      md << "Preset `" << preset << "`, measured on " << machine() << ". SPERR / TTHRESH / SZ3: reference figures "
         << "measured outside this project (issue 4), not run here.\n\n"
         << "| dataset | ECNR PSNR at CR 300 | SPERR / TTHRESH / SZ3 at 300 | ECNR PSNR at CR 1000 | SPERR / TTHRESH / "
            "SZ3 at 1000 |\n|---|---|---|---|---|\n";
    for (const Dataset& d : readConfig(argv[2])) {
      GridMeta meta;
      Field f;
      if (!loadSelected(d, only, f, meta)) continue;
      EncoderSettings s = presetSettings(preset);
      std::string options = d.options;
      const std::vector<int> edges = sweepEdges(options);
      applyOptions(options, s);
      s.verbose = false;
      if (mode == "ablation") ablation(d, f, meta, s, md);
      else rd(d, f, meta, s, edges, md, points);
    }
    if (mode == "rd")
      md << "\nMeasured points (block size of the sweep, achieved CR and PSNR, whether the boundary CNN was kept):\n\n"
         << "| dataset | block | CR | PSNR (dB) | CNN | encode (s) |\n|---|---|---|---|---|---|\n"
         << points.str();
  } catch (const std::exception& e) {
    std::cerr << "ecnr_bench_deep: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
