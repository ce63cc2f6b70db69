// bench_race: the rate-distortion race of issue 10 (BENCHMARKS.md "Rate–distortion race"), idea by idea.
//   ecnr_bench_race run <race.conf> <outdir> [--suite quick|full] [--variants a,b,..] [--resume] [dataset ...]
//       every selected variant on every selected dataset: encodes over the dataset's block edges, adding edges
//       (x 0.75 down, x 4/3 up) until the measured ratios bracket CR 300 and 1000 or the blocks can grow no more;
//       the points of each (dataset, variant) go to <outdir>/<dataset>.<variant>.csv (written whole, then
//       renamed: --resume skips the pairs already there, so a race can be split over processes and sessions).
//   ecnr_bench_race report <race.conf> <outdir> <out.md>
//       PSNR at CR 300 and 1000 (interpolated in log CR) per dataset and variant, the difference to the
//       paper-faithful preset, the encode time, SPERR / TTHRESH / SZ3 reference figures and per-variant means.
//   ecnr_bench_race list        the variants, one per line.
// Every variant of a dataset runs with the dataset line's epochs and CNN steps (one budget for all), one seed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>

#include "BenchCommon.h"
#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Metrics.h"
#include "ecnr/Progress.h"
#include "ecnr/Quantization.h"

using namespace ecnr;
using namespace ecnr::bench;

namespace {

struct Variant {
  std::string name;  ///< also the file name part: [a-z0-9-]
  std::string idea;  ///< what it tries (the issue's list), for the table
  std::function<EncoderSettings()> settings;
  std::string base;  ///< the variant it changes one knob of ("default", or "codebook-size" for earlier ideas)
  bool deblock = false;  ///< the decode goes through the border blending below (bench-side, see deblock())
};

EncoderSettings fromDefault(const std::function<void(EncoderSettings&)>& edit) {
  EncoderSettings s = presetSettings("default");
  edit(s);
  return s;
}

// The default before shared codes (issue 10): a latent code per block per step. The ideas raced before that change
// are changes of it, so their rows stay what they measured.
EncoderSettings fromPerStepDefault(const std::function<void(EncoderSettings&)>& edit) {
  return fromDefault([&](EncoderSettings& s) {
    s.codeSteps = 1;
    edit(s);
  });
}

// The default before the rate-aware codebooks (issue 10): codebooks sized by their group alone (and a code per
// step). The ideas raced before that change are changes of it, so their rows stay what they measured.
EncoderSettings fromSizeDefault(const std::function<void(EncoderSettings&)>& edit) {
  return fromPerStepDefault([&](EncoderSettings& s) {
    s.codebookRateSlope = 0;
    edit(s);
  });
}

// The baseline, the current default, and each idea as a change of a default (one knob each).
const std::vector<Variant>& variants() {
  using S = EncoderSettings;
  static const std::vector<Variant> v = {
      // The paper's 32-channel CNN is 95 KB at 9 bits, more than any archive of the race: the encoder's keep rule
      // (it must pay for its bytes) would drop it every time, so the race does not spend the hours training it.
      {"paper", "the paper-faithful preset (`--preset paper`): the baseline",
       [] {
         S s = presetSettings("paper");
         s.boundaryCnn = false;
         return s;
       },
       ""},
      {"default", "the default preset: a block's latent code shared by 8 steps, time an MLP input (`--code-steps 8`)",
       [] { return presetSettings("default"); }, ""},
      {"code-per-step", "the previous default: a latent code per block per step (`--code-steps 1`), codebooks sized by rate",
       [] { return fromPerStepDefault([](S&) {}); }, "default"},
      {"default-seed2", "the per-step default at another seed (`--seed 2`): how far one seed's rows move",
       [] { return fromPerStepDefault([](S& s) { s.seed = 2; }); }, "code-per-step"},
      {"codebook-size", "the default before that: codebooks sized by their group alone (`--codebook-rate 0`)",
       [] { return fromSizeDefault([](S&) {}); }, "code-per-step"},
      {"codebook-rate-all", "rate: biases' and latent codes' codebooks sized by rate too",
       [] { return fromPerStepDefault([](S& s) { s.codebookRateGroups = kRateAll; }); }, "code-per-step"},
      {"latent-f16", "latent codes as float16 instead of 8-bit shared values",
       [] { return fromSizeDefault([](S& s) { s.latentBits = 0; }); }, "codebook-size"},
      {"latent-16", "larger latent codes: 16 per block",
       [] { return fromSizeDefault([](S& s) { s.latentDim = 16; }); }, "codebook-size"},
      {"latent-4", "smaller latent codes: 4 per block",
       [] { return fromPerStepDefault([](S& s) { s.latentDim = 4; }); }, "code-per-step"},
      {"bits-7", "rate: 7-bit shared weights and biases (128 values per layer) instead of 8",
       [] { return fromSizeDefault([](S& s) { s.quantBits = 7, s.biasBits = 7; }); }, "codebook-size"},
      {"bits-6", "rate: 6-bit shared weights and biases (64 values per layer) instead of 8",
       [] { return fromSizeDefault([](S& s) { s.quantBits = 6, s.biasBits = 6; }); }, "codebook-size"},
      {"weights-6", "rate: 6-bit shared weights (64 values per layer), biases kept at 8",
       [] { return fromSizeDefault([](S& s) { s.quantBits = 6; }); }, "codebook-size"},
      {"codebook-by-size", "rate: a weight codebook gets one shared value per 54 weights of its group (64-256)",
       [] { return fromSizeDefault([](S& s) { s.valuesPerSharedWeight = 54; }); }, "codebook-size"},
      {"hidden-32", "capacity per MLP: 32 neurons per sine layer instead of 24 (the same blocks per MLP)",
       [] { return fromSizeDefault([](S& s) { s.hidden = 32; }); }, "codebook-size"},
      {"importance", "importance sampling: half of each MLP's draws by its blocks' running RMS error",
       [] { return fromPerStepDefault([](S& s) { s.importance = 0.5f; }); }, "code-per-step"},
      {"quant-aware", "rate-aware training: the last quarter of the epochs at codebook-rounded weights (`--quant-aware 0.25`)",
       [] { return fromPerStepDefault([](S& s) { s.quantAwareFraction = 0.25; }); }, "code-per-step"},
      {"deblock", "boundary: blending at block faces, 3 taps per axis fitted by least squares (bench-side, 18 bytes counted)",
       [] { return fromPerStepDefault([](S&) {}); }, "code-per-step", true},
      {"capacity-by-error", "capacity: blocks share MLPs by their RMS, hard blocks in MLPs of fewer (`--capacity-by-error 1`, epochs of an equal share)",
       [] { return fromPerStepDefault([](S& s) { s.capacityByError = 1; }); }, "code-per-step"},
      {"latent-grid", "input encoding: a latent code of 4 at each of a block's 8 corners, interpolated (`--latent-grid 2 --latent 4`)",
       [] { return fromPerStepDefault([](S& s) { s.latentGrid = 2, s.latentDim = 4; }); }, "code-per-step"},
      {"latent-grid-2", "input encoding: a latent code of 2 at each of a block's 8 corners, interpolated (`--latent-grid 2 --latent 2`)",
       [] { return fromPerStepDefault([](S& s) { s.latentGrid = 2, s.latentDim = 2; }); }, "code-per-step"},
      {"code-steps-2", "temporal: a block's latent code shared by 2 steps of its scale, the step's time an MLP input (`--code-steps 2`)",
       [] { return fromPerStepDefault([](S& s) { s.codeSteps = 2; }); }, "code-per-step"},
      {"code-steps-4", "temporal: a block's latent code shared by 4 steps of its scale, the step's time an MLP input (`--code-steps 4`)",
       [] { return fromPerStepDefault([](S& s) { s.codeSteps = 4; }); }, "code-per-step"},
      {"code-steps-16", "temporal: a block's latent code shared by 16 steps of its scale, the step's time an MLP input (`--code-steps 16`)",
       [] { return fromPerStepDefault([](S& s) { s.codeSteps = 16; }); }, "code-per-step"},
      {"coarse-capacity",
       "capacity: blocks per MLP 2/4/16 (series: half of 4/8/16 at the coarse scales; static: 2-4x of 1/2/4)",
       [] { return fromPerStepDefault([](S& s) { s.blocksPerMlp = {2, 4, 16}; }); }, "code-per-step"},
  };
  return v;
}

const Variant& findVariant(const std::string& name) {
  for (const Variant& v : variants())
    if (v.name == name) return v;
  throw Error("unknown variant '" + name + "' (ecnr_bench_race list)");
}

// The boundary idea measured before building it into the codec: a deblocking filter at the faces of the finest
// blocks. Across a face between voxels p - 1 and p of an axis, with the jump d = v[p] - v[p-1], it moves
// v[p-1-j] by +a_j d and v[p+j] by -a_j d (j < kDeblockTaps); the taps of each axis are fitted by least squares
// against the original, axes in turn (x, y, z), as an encoder would before storing them: 9 half floats, which the
// race counts in the archive's bytes. The reader's piece decoding would need a margin of 3 voxels across faces.
constexpr int kDeblockTaps = 3;
constexpr double kDeblockBytes = 3 * kDeblockTaps * 2;

void deblock(const Field& orig, Field& dec, const std::array<int, 3>& block) {
  const Dims4& d = dec.dims;
  const std::array<int64_t, 4> n{d.x, d.y, d.z, d.t}, stride{1, d.x, d.x * d.y, d.x * d.y * d.z};
  for (int a = 0; a < 3; ++a) {
    std::vector<int64_t> faces;  // first voxel index past each face, with room for the taps on both sides
    for (int64_t p = block[size_t(a)]; p < n[size_t(a)]; p += block[size_t(a)])
      if (p >= kDeblockTaps && p + kDeblockTaps <= n[size_t(a)]) faces.push_back(p);
    if (faces.empty()) continue;
    // Every voxel of a face plane: the index with coordinate a at 0.
    std::vector<int64_t> plane;
    for (int64_t t = 0; t < n[3]; ++t)
      for (int64_t z = 0; z < (a == 2 ? 1 : n[2]); ++z)
        for (int64_t y = 0; y < (a == 1 ? 1 : n[1]); ++y)
          for (int64_t x = 0; x < (a == 0 ? 1 : n[0]); ++x) plane.push_back(x + stride[1] * y + stride[2] * z + stride[3] * t);
    const int64_t s = stride[size_t(a)];
    std::array<double, kDeblockTaps> num{}, den{};
    for (int64_t p : faces)
      for (int64_t base : plane) {
        const int64_t at = base + p * s;
        const double jump = double(dec.values[size_t(at)]) - dec.values[size_t(at - s)];
        for (int j = 0; j < kDeblockTaps; ++j) {
          const size_t l = size_t(at - (1 + j) * s), r = size_t(at + j * s);
          num[size_t(j)] += jump * ((double(orig.values[l]) - dec.values[l]) - (double(orig.values[r]) - dec.values[r]));
          den[size_t(j)] += 2 * jump * jump;
        }
      }
    std::array<float, kDeblockTaps> tap{};
    for (int j = 0; j < kDeblockTaps; ++j) tap[size_t(j)] = den[size_t(j)] > 0 ? float(num[size_t(j)] / den[size_t(j)]) : 0.0f;
    for (int64_t p : faces)
      for (int64_t base : plane) {
        const int64_t at = base + p * s;
        const float jump = dec.values[size_t(at)] - dec.values[size_t(at - s)];
        for (int j = 0; j < kDeblockTaps; ++j) {
          dec.values[size_t(at - (1 + j) * s)] += tap[size_t(j)] * jump;
          dec.values[size_t(at + j * s)] -= tap[size_t(j)] * jump;
        }
      }
  }
}

struct Point {
  std::array<int, 3> block{};
  double bytes = 0, ratio = 0, psnr = 0, seconds = 0;
  bool cnn = false;
};

Point encodeOnce(const Field& f, const GridMeta& meta, EncoderSettings s, const std::array<int, 3>& block, bool blend) {
  s.blockDims = block;
  Timer t;
  const Model m = encode(f, meta, s, Progress());
  Point p;
  p.seconds = t.seconds();
  const std::vector<uint8_t> bytes = serializeArchive({m});
  const std::vector<Model> back = parseArchive(bytes.data(), bytes.size());
  p.block = block;
  p.bytes = double(bytes.size()) + (blend ? kDeblockBytes : 0.0);
  p.ratio = double(f.dims.count()) * 4.0 / p.bytes;
  Field decoded = Decoder(back[0]).decodeAll();
  if (blend) deblock(f, decoded, block);
  p.psnr = compareFields(f, decoded).psnr;
  p.cnn = summarizeArchive(bytes.data(), bytes.size()).bytes.cnn > 0;
  return p;
}

std::array<int, 3> blockOfEdge(int edge, const Dims4& dims) {
  std::array<int, 3> b{};
  for (int a = 0; a < 3; ++a) b[size_t(a)] = int(std::max<int64_t>(1, std::min<int64_t>(edge, dims[a])));
  return b;
}

constexpr std::array<double, 2> kTargets = {300.0, 1000.0};

// The next block edge to try so that the points bracket every target, or 0 when they do (or cannot).
int nextEdge(const std::vector<std::pair<int, Point>>& pts, const Dims4& dims) {
  int lo = pts.front().first, hi = lo;
  double crMin = pts.front().second.ratio, crMax = crMin;
  for (const auto& [edge, p] : pts) {
    lo = std::min(lo, edge), hi = std::max(hi, edge);
    crMin = std::min(crMin, p.ratio), crMax = std::max(crMax, p.ratio);
  }
  const int64_t largest = std::max({dims.x, dims.y, dims.z});
  for (double cr : kTargets) {
    if (crMin > cr && lo > 4) return std::max(4, int(std::lround(lo * 0.75)));  // smaller blocks: more MLPs, lower CR
    if (crMax < cr && hi < largest) return int(std::min<int64_t>(largest, std::lround(hi * 4.0 / 3.0)));
  }
  return 0;
}

struct DatasetSetup {
  Field field;
  GridMeta meta;
  std::vector<int> edges;
  std::string options;  ///< encoder options of the line (epochs, CNN steps), applied to every variant
};

DatasetSetup setUp(const Dataset& d, const std::string& suite, const std::vector<std::string>& only, bool* selected) {
  DatasetSetup ds;
  ds.options = d.options;
  *selected = takeOption(ds.options, "--suite", "full") == suite && loadSelected(d, only, ds.field, ds.meta);
  ds.edges = parseIntList(takeOption(ds.options, "--edges", "16,24,32"));
  if (takeOption(ds.options, "--time-as-z", "off") == "on" && *selected) {
    // A z = 1 series as one x, y, t volume (blocks over time), as in bench_rd.
    if (ds.field.dims.z != 1) throw Error(d.name + ": --time-as-z needs z = 1");
    ds.field.dims = Dims4{ds.field.dims.x, ds.field.dims.y, ds.field.dims.t, 1};
    ds.meta.times.clear();  // one "step" now: the time values no longer apply
  }
  return ds;
}

std::string csvPath(const std::string& outdir, const std::string& dataset, const std::string& variant) {
  return outdir + "/" + dataset + "." + variant + ".csv";
}

void race(const Dataset& d, DatasetSetup& ds, const Variant& v, const std::string& outdir) {
  EncoderSettings s = v.settings();
  applyOptions(ds.options, s);
  s.verbose = false;
  std::vector<std::pair<int, Point>> pts;
  auto measure = [&](int edge) {
    for (const auto& q : pts)
      if (q.second.block == blockOfEdge(edge, ds.field.dims)) return;  // clipped to the same block
    const Point p = encodeOnce(ds.field, ds.meta, s, blockOfEdge(edge, ds.field.dims), v.deblock);
    std::cerr << d.name << " / " << v.name << ": block " << edge << ": CR " << p.ratio << ", PSNR " << p.psnr << " ("
              << p.seconds << " s)\n";
    pts.push_back({edge, p});
  };
  for (int e : ds.edges) measure(e);
  for (int guard = 0; guard < 6; ++guard) {
    const int e = nextEdge(pts, ds.field.dims);
    if (e == 0) break;
    const size_t before = pts.size();
    measure(e);
    if (pts.size() == before) break;
  }
  const std::string path = csvPath(outdir, d.name, v.name), tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << "bx,by,bz,bytes,ratio,psnr,seconds,cnn\n" << std::setprecision(10);
    for (const auto& [edge, p] : pts)
      out << p.block[0] << "," << p.block[1] << "," << p.block[2] << "," << p.bytes << "," << p.ratio << "," << p.psnr
          << "," << p.seconds << "," << (p.cnn ? 1 : 0) << "\n";
    if (!out) throw Error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

std::vector<Point> readPoints(const std::string& path) {
  std::ifstream in(path);
  std::vector<Point> pts;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    Point p;
    int cnn = 0;
    if (std::sscanf(line.c_str(), "%d,%d,%d,%lf,%lf,%lf,%lf,%d", &p.block[0], &p.block[1], &p.block[2], &p.bytes,
                    &p.ratio, &p.psnr, &p.seconds, &cnn) == 8) {
      p.cnn = cnn != 0;
      pts.push_back(p);
    }
  }
  return pts;
}

std::string fixed(double v, int digits, bool sign = false) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << (sign ? std::showpos : std::noshowpos) << v;
  return s.str();
}

void report(const std::string& conf, const std::string& outdir, const std::string& mdPath) {
  struct Cell {
    std::array<double, 2> psnr{NAN, NAN};
    double seconds = NAN;
    std::string points;
  };
  std::map<std::string, std::map<std::string, Cell>> cells;  // dataset -> variant -> cell
  std::vector<std::string> datasets;
  for (const Dataset& d : readConfig(conf)) {
    for (const Variant& v : variants()) {
      const std::vector<Point> pts = readPoints(csvPath(outdir, d.name, v.name));
      if (pts.empty()) continue;
      Cell c;
      std::vector<std::pair<double, double>> rp;
      double secs = 0;
      for (const Point& p : pts) {
        rp.push_back({p.ratio, p.psnr});
        secs += p.seconds;
        c.points += (c.points.empty() ? "" : "; ") + std::to_string(p.block[0]) + " → " + fixed(p.ratio, 0) + ", " +
                    fixed(p.psnr, 2) + (p.cnn ? " (CNN)" : "");
      }
      for (size_t k = 0; k < kTargets.size(); ++k) c.psnr[k] = psnrAt(rp, kTargets[k]);
      c.seconds = secs / double(pts.size());
      cells[d.name][v.name] = c;
    }
    if (cells.count(d.name)) datasets.push_back(d.name);
  }
  std::ofstream md(mdPath);
  md << "| dataset | variant | PSNR @ CR 300 | Δ vs paper | PSNR @ CR 1000 | Δ vs paper | encode (s per setting) | "
        "settings: block edge → CR, PSNR |\n|---|---|---|---|---|---|---|---|\n";
  // variant -> dataset -> the differences of its cells (CR 300, 1000), to the paper preset and to its base
  using PerDataset = std::map<std::string, std::map<std::string, std::vector<double>>>;
  PerDataset overPaper, overBase;
  const auto& refs = referenceFigures();
  for (const std::string& name : datasets) {
    const auto& row = cells[name];
    const auto paper = row.find("paper");
    for (const Variant& v : variants()) {
      const auto it = row.find(v.name);
      if (it == row.end()) continue;
      const Cell& c = it->second;
      const auto base = v.base.empty() ? row.end() : row.find(v.base);
      std::array<double, 2> delta{NAN, NAN};
      for (size_t k = 0; k < 2; ++k) {
        if (base != row.end()) {
          const double d = c.psnr[k] - base->second.psnr[k];
          if (!std::isnan(d)) overBase[v.name][name].push_back(d);
        }
        if (paper != row.end() && v.name != "paper") {
          delta[k] = c.psnr[k] - paper->second.psnr[k];
          if (!std::isnan(delta[k])) overPaper[v.name][name].push_back(delta[k]);
        }
      }
      md << "| " << name << " | " << v.name << " | " << fixed(c.psnr[0], 1) << " | " << fixed(delta[0], 2, true)
         << " | " << fixed(c.psnr[1], 1) << " | " << fixed(delta[1], 2, true) << " | " << fixed(c.seconds, 0) << " | "
         << c.points << " |\n";
    }
    const auto ref = refs.find(name);
    if (ref != refs.end())
      md << "| " << name << " | SPERR / TTHRESH / SZ3 (reference) | " << fixed(ref->second[0], 1) << " / "
         << fixed(ref->second[1], 1) << " / " << fixed(ref->second[2], 1) << " | | " << fixed(ref->second[3], 1)
         << " / " << fixed(ref->second[4], 1) << " / " << fixed(ref->second[5], 1) << " | | | |\n";
  }
  // The mean over datasets of each dataset's mean difference (a dataset counts once, whatever its cells).
  auto datasetMean = [](const std::map<std::string, std::vector<double>>& byDataset) {
    double sum = 0;
    for (const auto& [n, ds] : byDataset) {
      double m = 0;
      for (double x : ds) m += x / double(ds.size());
      sum += m;
    }
    return byDataset.empty() ? NAN : sum / double(byDataset.size());
  };
  md << "\nPer variant: the mean over datasets of each dataset's mean difference (its CR 300 and 1000 cells where "
        "both were measured), and its smallest cell:\n\n"
     << "| variant | what it tries | datasets | mean Δ vs paper (dB) | smallest Δ vs paper (dataset) | mean Δ vs "
        "its base (datasets) |\n|---|---|---|---|---|---|\n";
  for (const Variant& v : variants()) {
    if (!overPaper.count(v.name)) continue;
    std::string worstName;
    double worstDelta = INFINITY;
    for (const auto& [n, ds] : overPaper[v.name])
      for (double x : ds)
        if (x < worstDelta) worstDelta = x, worstName = n;
    const auto od = overBase.find(v.name);
    md << "| " << v.name << " | " << v.idea << " | " << overPaper[v.name].size() << " | "
       << fixed(datasetMean(overPaper[v.name]), 2, true) << " | " << fixed(worstDelta, 2, true) << " (" << worstName
       << ") | "
       << (od == overBase.end() ? std::string("—")
                                : fixed(datasetMean(od->second), 2, true) + " vs " + v.base + " (" +
                                      std::to_string(od->second.size()) + ")")
       << " |\n";
  }
  if (!md) throw Error("cannot write " + mdPath);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "list") {
      for (const Variant& v : variants()) std::cout << v.name << "\t" << v.idea << "\n";
      return 0;
    }
    if (mode == "report" && argc == 5) {
      report(argv[2], argv[3], argv[4]);
      return 0;
    }
    if (mode != "run" || argc < 4) {
      std::cerr << "usage: ecnr_bench_race run <race.conf> <outdir> [--suite quick|full] [--variants a,b] [--resume] "
                   "[dataset ...]\n"
                   "       ecnr_bench_race report <race.conf> <outdir> <out.md>\n       ecnr_bench_race list\n";
      return 2;
    }
    std::vector<std::string> only, chosen;
    bool resume = false;
    std::string suite = "full";
    for (int i = 4; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--resume") resume = true;
      else if (a == "--suite" && i + 1 < argc) suite = argv[++i];
      else if (a == "--variants" && i + 1 < argc) {
        std::stringstream list(argv[++i]);
        for (std::string item; std::getline(list, item, ',');) chosen.push_back(findVariant(item).name);
      } else only.push_back(a);
    }
    if (chosen.empty())
      for (const Variant& v : variants()) chosen.push_back(v.name);
    std::filesystem::create_directories(argv[3]);
    std::cerr << "ecnr_bench_race on " << machine() << "\n";
    for (const Dataset& d : readConfig(argv[2])) {
      bool selected = false;
      DatasetSetup ds = setUp(d, suite, only, &selected);
      if (!selected) continue;
      for (const std::string& name : chosen) {
        if (resume && std::filesystem::exists(csvPath(argv[3], d.name, name))) continue;
        race(d, ds, findVariant(name), argv[3]);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "ecnr_bench_race: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
