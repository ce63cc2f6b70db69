// bench_rd: rate-distortion and speed of ECNR against ZFP (issue 6). scripts/bench_rd.sh runs it, then the
// pvpython metrics (rd_metrics.py) and the report (rd_report.py).
//   ecnr_bench_rd <rd.conf> <suite> <outdir> [dataset ...]
// For each dataset of the suite (rd.conf lines whose --suite matches):
//   ECNR   over the config's sweep of block edges (Core API: encode, serializeArchive, parseArchive, Decoder);
//   ZFP    (libzfp, serial) fixed accuracy at every power-of-two tolerance (the mode's minimum exponent is
//          floor(log2 tolerance), so these are all the settings it distinguishes), fixed rate over log-spaced
//          ratios, then fixed rate at each ECNR point's ratio and fixed accuracy at the tolerance nearest to it
//          ("matched" rows, whose time step goes to the image- and feature-level metrics).
// ZFP sees the array with its singleton axes dropped (4D blocks for a 3D time series; x, y, t for navy_winds).
// Writes, appending (a header when the file is new):
//   outdir/points.csv    one row per measured point, plus the reference rows of the coders not run here
//   outdir/datasets.csv  per dataset: the metric time step's grid, the isovalue, the data range
//   outdir/steps/*.f32   that time step (raw float32, x fastest) of the original and of every ECNR / matched point
//   outdir/machine.txt

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>

#include "BenchCommon.h"
#include "ZfpField.h"
#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Metrics.h"

using namespace ecnr;
using namespace ecnr::bench;

namespace {

/// One measured point. `decoded` is kept only until its metric step has been written.
struct Point {
  std::string codec, role, setting;
  int match = -1;       ///< for matched ZFP rows: the index of the ECNR point whose ratio they match
  bool reached = true;  ///< matched fixed-rate row: the ratio was reachable (ZFP's minimum bits per block)
  double cr = 0, encodeSeconds = 0, decodeSeconds = 0, encodePeakMiB = 0, decodePeakMiB = 0;
  ErrorStats error;
  std::string stepFile;
  Field decoded;
};

std::string num(double v, int precision = 6) {
  std::ostringstream s;
  s << std::setprecision(precision) << v;
  return s.str();
}

// ---- ECNR ----------------------------------------------------------------------------------------------------

Point runEcnr(const Field& f, const GridMeta& meta, const EncoderSettings& s) {
  Point p;
  p.codec = "ECNR";
  p.role = "point";
  PeakMemory mem;
  mem.start();
  Timer te;
  EncodeReport rep;
  const Model m = encode(f, meta, s, Progress(), &rep);
  const std::vector<uint8_t> bytes = serializeArchive({m});
  p.encodeSeconds = te.seconds();
  p.encodePeakMiB = mem.extraMiB();
  mem.start();
  Timer td;
  const std::vector<Model> back = parseArchive(bytes.data(), bytes.size());
  p.decoded = Decoder(back[0]).decodeAll();
  p.decodeSeconds = td.seconds();
  p.decodePeakMiB = mem.extraMiB();
  p.cr = double(f.dims.count()) * 4.0 / double(bytes.size());
  p.error = compareFields(f, p.decoded);
  p.setting = "block " + std::to_string(rep.blockDims[0]) + "x" + std::to_string(rep.blockDims[1]) + "x" +
              std::to_string(rep.blockDims[2]);
  return p;
}

// ---- ZFP -----------------------------------------------------------------------------------------------------

/// Compresses with a full ZFP header (the stream is a self-describing file) and decompresses from the bytes.
/// fixedRate: `param` is the rate in bits per value; otherwise the absolute error tolerance.
Point runZfp(const Field& f, bool fixedRate, double param) {
  Point p;
  p.codec = fixedRate ? "ZFP fixed-rate" : "ZFP fixed-accuracy";
  p.role = "sweep";
  const std::vector<size_t> n = zfpDims(f.dims);
  std::unique_ptr<zfp_field, decltype(&zfp_field_free)> field(
      zfpField(const_cast<float*>(f.values.data()), n), zfp_field_free);
  std::unique_ptr<zfp_stream, decltype(&zfp_stream_close)> zs(zfp_stream_open(nullptr), zfp_stream_close);
  const double actual = fixedRate ? zfp_stream_set_rate(zs.get(), param, zfp_type_float, uint(n.size()), zfp_false)
                                  : zfp_stream_set_accuracy(zs.get(), param);
  p.setting = fixedRate ? "rate " + num(actual, 4) + " bits/value" : "tolerance " + num(actual, 4);

  PeakMemory mem;
  mem.start();
  Timer te;
  const size_t capacity = zfp_stream_maximum_size(zs.get(), field.get());
  std::unique_ptr<unsigned char[]> buffer(new unsigned char[capacity]);  // not zeroed: only used pages count
  std::unique_ptr<bitstream, decltype(&stream_close)> bs(stream_open(buffer.get(), capacity), stream_close);
  zfp_stream_set_bit_stream(zs.get(), bs.get());
  zfp_stream_rewind(zs.get());
  if (!zfp_write_header(zs.get(), field.get(), ZFP_HEADER_FULL)) throw Error("zfp: cannot write the header");
  const size_t bytes = zfp_compress(zs.get(), field.get());
  if (bytes == 0) throw Error("zfp: compression failed (" + p.setting + ")");
  p.encodeSeconds = te.seconds();
  p.encodePeakMiB = mem.extraMiB();

  mem.start();
  Timer td;
  std::unique_ptr<zfp_stream, decltype(&zfp_stream_close)> ds(zfp_stream_open(bs.get()), zfp_stream_close);
  std::unique_ptr<zfp_field, decltype(&zfp_field_free)> out(zfp_field_alloc(), zfp_field_free);
  zfp_stream_rewind(ds.get());
  if (!zfp_read_header(ds.get(), out.get(), ZFP_HEADER_FULL)) throw Error("zfp: cannot read the header back");
  p.decoded = Field(f.dims);
  zfp_field_set_pointer(out.get(), p.decoded.values.data());
  if (!zfp_decompress(ds.get(), out.get())) throw Error("zfp: decompression failed (" + p.setting + ")");
  p.decodeSeconds = td.seconds();
  p.decodePeakMiB = mem.extraMiB();
  p.cr = double(f.dims.count()) * 4.0 / double(bytes);
  p.error = compareFields(f, p.decoded);
  return p;
}

// ---- output --------------------------------------------------------------------------------------------------

/// The metric time step t of `values` laid out with the original dims (reshaped fields share the layout).
void writeStep(const Field& values, const Dims4& original, int64_t t, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  const int64_t n = original.voxelsPerStep();
  out.write(reinterpret_cast<const char*>(values.values.data() + t * n), std::streamsize(n * 4));
  if (!out) throw Error("cannot write " + path);
}

std::ofstream openCsv(const std::string& path, const std::string& header) {
  const bool fresh = !std::ifstream(path) || std::ifstream(path, std::ios::ate).tellg() == 0;
  std::ofstream out(path, std::ios::app);
  if (!out) throw Error("cannot open " + path);
  if (fresh) out << header << "\n";
  return out;
}

void writePoint(std::ostream& csv, const std::string& dataset, const Point& p) {
  csv << dataset << "," << p.codec << "," << p.role << ",\"" << p.setting << "\"," << p.match << ","
      << (p.reached ? 1 : 0) << "," << num(p.cr) << "," << num(p.error.psnr) << "," << num(p.error.maxAbs) << ","
      << num(p.error.range) << "," << num(p.encodeSeconds, 4) << "," << num(p.decodeSeconds, 4) << ","
      << num(p.encodePeakMiB, 4) << "," << num(p.decodePeakMiB, 4) << "," << p.stepFile << "\n";
  csv.flush();
  std::cerr << dataset << ": " << p.codec << " " << p.role << " " << p.setting << ": CR " << num(p.cr, 4) << ", PSNR "
            << num(p.error.psnr, 4) << " dB, encode " << num(p.encodeSeconds, 3) << " s\n";
}

struct DatasetRun {
  const Dataset& d;
  Field field;        ///< as the coders see it (possibly reshaped)
  Dims4 original;     ///< the dataset's own dims (the metric step is a step of these)
  int64_t step = 0;
  std::string outdir;
  std::ostream& csv;

  /// Writes the point's metric step when it is given an id (and reached its ratio), then its row; frees the
  /// decoded field.
  void record(Point& p, const std::string& id) {
    if (!id.empty() && p.reached) {
      p.stepFile = "steps/" + d.name + "-" + id + ".f32";
      writeStep(p.decoded, original, step, outdir + "/" + p.stepFile);
    }
    p.decoded = Field();
    writePoint(csv, d.name, p);
  }
};

void runDataset(DatasetRun& r, const EncoderSettings& base, const std::vector<int>& edges) {
  const Field& f = r.field;
  std::vector<Point> ecnr;
  for (size_t i = 0; i < edges.size(); ++i) {
    EncoderSettings s = base;
    for (int a = 0; a < 3; ++a) s.blockDims[size_t(a)] = int(std::min<int64_t>(edges[i], f.dims[a]));
    ecnr.push_back(runEcnr(f, GridMeta(), s));  // no metadata: a reshaped field has no time values of its own
    r.record(ecnr.back(), "ecnr-" + std::to_string(i));
  }

  // Fixed accuracy: every power of two, from where every block codes to one bit (ZFP keeps
  // emax - floor(log2 tolerance) + 2 (d + 1) bit planes of a block whose largest exponent is emax) down until the
  // ratio drops below 6; tolerances that give the same stream are recorded once.
  const auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
  const double maxAbs = std::max({std::abs(double(*lo)), std::abs(double(*hi)), 1e-30});
  const int dims = int(zfpDims(f.dims).size());
  std::vector<std::pair<double, double>> accuracy;  // (tolerance, CR)
  for (int e = int(std::ceil(std::log2(maxAbs))) + 2 * (dims + 1) + 1; e > -80; --e) {
    Point p = runZfp(f, false, std::ldexp(1.0, e));
    if (!accuracy.empty() && p.cr == accuracy.back().second) continue;  // the same stream
    accuracy.push_back({std::ldexp(1.0, e), p.cr});
    r.record(p, "");
    if (p.cr < 6) break;
  }
  // Fixed rate: target ratios 6 .. 4000, log spaced (ZFP rounds to whole bits per block and has a minimum of
  // 1 + 8 bits per block for float: a ratio it cannot reach repeats the same stream, recorded once).
  double lastRate = -1;
  for (int k = 0; k <= 32; ++k) {
    const double target = 6.0 * std::pow(4000.0 / 6.0, k / 32.0);
    Point p = runZfp(f, true, 32.0 / target);
    const double rate = 32.0 / p.cr;
    if (std::abs(rate - lastRate) < 1e-9 * rate) continue;
    lastRate = rate;
    r.record(p, "");
  }
  // Matched rows: ZFP at each ECNR point's ratio.
  for (size_t i = 0; i < ecnr.size(); ++i) {
    Point rate = runZfp(f, true, 32.0 / ecnr[i].cr);
    rate.role = "matched";
    rate.match = int(i);
    rate.reached = rate.cr > 0.97 * ecnr[i].cr;
    r.record(rate, "zfp-rate-" + std::to_string(i));
    auto nearest = std::min_element(accuracy.begin(), accuracy.end(), [&](const auto& a, const auto& b) {
      return std::abs(std::log(a.second / ecnr[i].cr)) < std::abs(std::log(b.second / ecnr[i].cr));
    });
    if (nearest == accuracy.end()) continue;
    Point acc = runZfp(f, false, nearest->first);
    acc.role = "matched";
    acc.match = int(i);
    r.record(acc, "zfp-acc-" + std::to_string(i));
  }
  // The coders not run here: fixed reference rows.
  const auto ref = referenceFigures().find(r.d.name);
  if (ref != referenceFigures().end())
    for (size_t c = 0; c < kReferenceCoders.size(); ++c)
      for (int k = 0; k < 2; ++k) {
        Point p;
        p.codec = kReferenceCoders[c];
        p.role = "external";
        p.setting = "external measurement";
        p.cr = k == 0 ? 300 : 1000;
        p.error.psnr = ref->second[c + 3 * size_t(k)];
        p.error.maxAbs = p.error.range = p.encodeSeconds = p.decodeSeconds = NAN;
        p.encodePeakMiB = p.decodePeakMiB = NAN;
        writePoint(r.csv, r.d.name, p);
      }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: ecnr_bench_rd <rd.conf> <suite> <outdir> [dataset ...]\n";
    return 2;
  }
  try {
    const std::string suite = argv[2], outdir = argv[3];
    const std::vector<std::string> only(argv + 4, argv + argc);
    std::ofstream(outdir + "/machine.txt") << machine() << ", ZFP " << ZFP_VERSION_STRING << "\n";
    std::ofstream csv = openCsv(outdir + "/points.csv",
                                "dataset,codec,role,setting,match,reached,cr,psnr,max_abs,range,encode_s,decode_s,"
                                "encode_peak_mib,decode_peak_mib,step_file");
    std::ofstream sets = openCsv(outdir + "/datasets.csv",
                                 "dataset,nx,ny,nz,nt,step,iso,lo,hi,original_file,preset,edges,coder_grid,zfp_dims");
    for (const Dataset& d : readConfig(argv[1])) {
      std::string options = d.options;
      if (takeOption(options, "--suite", "full") != suite) continue;
      GridMeta meta;
      Field f;
      if (!loadSelected(d, only, f, meta)) continue;
      const std::string preset = takeOption(options, "--preset", "default");
      const std::string edges = takeOption(options, "--rd-edges", "16,24,32");
      const std::string iso = takeOption(options, "--iso", "nan");
      const bool timeAsZ = takeOption(options, "--time-as-z", "off") == "on";
      const std::string stepOption = takeOption(options, "--step", "");
      EncoderSettings s = presetSettings(preset);
      applyOptions(options, s);
      s.verbose = false;

      DatasetRun r{d, std::move(f), {}, 0, outdir, csv};
      r.original = r.field.dims;
      r.step = stepOption.empty() ? r.original.t / 2 : std::stoll(stepOption);
      if (r.step < 0 || r.step >= r.original.t) throw Error(d.name + ": --step outside the time steps");
      if (timeAsZ) {
        if (r.original.z != 1) throw Error(d.name + ": --time-as-z needs z = 1");
        r.field.dims = Dims4{r.original.x, r.original.y, r.original.t, 1};  // same layout: x, y, then time
      }
      const auto [lo, hi] = std::minmax_element(r.field.values.begin(), r.field.values.end());
      const std::string originalFile = "steps/" + d.name + "-original.f32";
      writeStep(r.field, r.original, r.step, outdir + "/" + originalFile);
      std::string zfpGrid;
      for (size_t n : zfpDims(r.field.dims)) zfpGrid += (zfpGrid.empty() ? "" : "x") + std::to_string(n);
      sets << d.name << "," << r.original.x << "," << r.original.y << "," << r.original.z << "," << r.original.t << ","
           << r.step << "," << iso << "," << num(*lo, 9) << "," << num(*hi, 9) << "," << originalFile << "," << preset
           << ",\"" << edges << "\"," << r.field.dims.str() << "," << zfpGrid << "\n";
      sets.flush();
      runDataset(r, s, parseIntList(edges));
    }
  } catch (const std::exception& e) {
    std::cerr << "ecnr_bench_rd: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
