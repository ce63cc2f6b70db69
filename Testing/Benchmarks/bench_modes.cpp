// bench_modes: the quality modes of issue 8 on each dataset of a config file, three markdown tables:
//   <out>.ratio.md  --target-ratio R (100 and 300): the ratio reached, PSNR with the correction, the network alone
//                   at the same ratio (interpolated in log CR between the networks the mode trained), and the
//                   rate split (the network sized for half the budget, the correction the rest) at R = 300;
//   <out>.psnr.md   --target-psnr P (4 dB above the CR-300 network): where the mode lands, at what ratio, beside
//                   the correction alone on the CR-300 network;
//   <out>.bound.md  --rel-error e (1e-2 .. 1e-4 of the range) on the same network: ratio, PSNR, max error / bound
//                   after a round trip through the file, voxels stored exactly; ZFP's fixed-accuracy mode at the
//                   same bound beside it.
// Rows are appended (headers written when a file is empty); scripts/bench_modes.sh runs one process per dataset.
//   ecnr_bench_modes <datasets.conf> <preset> <out> [dataset ...]
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>

#include "BenchCommon.h"
#include "ZfpField.h"
#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Metrics.h"
#include "ecnr/Quality.h"

using namespace ecnr;
using namespace ecnr::bench;

namespace {

std::ofstream openTable(const std::string& path, const std::string& header) {
  const bool fresh = !std::ifstream(path) || std::ifstream(path, std::ios::ate).tellg() == 0;
  std::ofstream out(path, std::ios::app);
  if (fresh) out << header;
  return out;
}

std::string num(double v, int digits = 2) {
  if (!std::isfinite(v)) return "—";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

/// PSNR at `cr` from the networks trained (bytes, PSNR), linear in log CR between the two that bracket it, or
/// extrapolated from the two nearest when `cr` lies within 30 % beyond them (then *extrapolated is set); NaN else.
double networkAloneAt(const std::vector<std::pair<uint64_t, double>>& nets, double raw, double cr, bool* extrapolated) {
  std::vector<std::pair<double, double>> pts;  // (log CR, PSNR), by CR
  for (const auto& [bytes, psnr] : nets) pts.push_back({std::log(raw / double(bytes)), psnr});
  std::sort(pts.begin(), pts.end());
  *extrapolated = false;
  const double x = std::log(cr);
  if (pts.size() < 2) return NAN;
  auto line = [&](size_t i) {
    return pts[i].second + (pts[i + 1].second - pts[i].second) * (x - pts[i].first) / (pts[i + 1].first - pts[i].first);
  };
  for (size_t i = 0; i + 1 < pts.size(); ++i)
    if (x >= pts[i].first && x <= pts[i + 1].first && pts[i + 1].first > pts[i].first) return line(i);
  *extrapolated = true;
  if (x < pts.front().first && x >= pts.front().first - std::log(1.3)) return line(0);
  if (x > pts.back().first && x <= pts.back().first + std::log(1.3)) return line(pts.size() - 2);
  return NAN;
}

struct Decoded {
  double ratio = 0;
  ErrorStats err;
};

/// The archive written, read back and decoded as a reader would.
Decoded roundTrip(const Model& m, const Field& f) {
  const std::vector<uint8_t> bytes = serializeArchive({m});
  const Model back = parseArchive(bytes.data(), bytes.size()).at(0);
  return {double(f.values.size()) * 4.0 / double(bytes.size()), compareFields(f, Decoder(back).decodeAll())};
}

/// ZFP fixed-accuracy (|error| <= tolerance), the whole series as one array with its singleton axes dropped (a
/// z = 1 series is x, y, t): ratio and max error.
std::pair<double, double> zfpAccuracy(const Field& f, double tolerance) {
  Field in = f;
  std::unique_ptr<zfp_field, decltype(&zfp_field_free)> field(zfpField(in.values.data(), zfpDims(f.dims)),
                                                              zfp_field_free);
  std::unique_ptr<zfp_stream, decltype(&zfp_stream_close)> zs(zfp_stream_open(nullptr), zfp_stream_close);
  zfp_stream_set_accuracy(zs.get(), tolerance);
  std::vector<uint8_t> buffer(zfp_stream_maximum_size(zs.get(), field.get()));
  std::unique_ptr<bitstream, decltype(&stream_close)> bs(stream_open(buffer.data(), buffer.size()), stream_close);
  zfp_stream_set_bit_stream(zs.get(), bs.get());
  zfp_stream_rewind(zs.get());
  const size_t bytes = zfp_compress(zs.get(), field.get());
  if (bytes == 0) throw Error("zfp: compression failed");
  Field out(f.dims);
  zfp_field_set_pointer(field.get(), out.values.data());
  zfp_stream_rewind(zs.get());
  if (!zfp_decompress(zs.get(), field.get())) throw Error("zfp: decompression failed");
  return {double(f.values.size()) * 4.0 / double(bytes), compareFields(f, out).maxAbs};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: ecnr_bench_modes <datasets.conf> <preset> <out> [dataset ...]\n";
    return 2;
  }
  try {
    const std::string preset = argv[2], out = argv[3];
    std::vector<std::string> only(argv + 4, argv + argc);
    // --ratio-only: the ratio table alone (the PSNR and max-error tables take as long again).
    const auto ratioOnly = std::find(only.begin(), only.end(), "--ratio-only");
    const bool allTables = ratioOnly == only.end();
    if (!allTables) only.erase(ratioOnly);
    std::ofstream ratioMd = openTable(out + ".ratio.md",
        "| dataset | target CR | CR reached | PSNR (dB) | network alone at that CR | gain | networks trained "
        "(CR / PSNR) | correction bytes | the kept network + a correction filling the budget: CR / PSNR / gain | "
        "half-budget network + correction | encode (s) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::ofstream psnrMd = openTable(out + ".psnr.md",
        "| dataset | target PSNR | mode: PSNR reached | within [P, P+1] | mode: CR | networks trained (CR / PSNR) | "
        "CR-300 network + correction only: PSNR / CR | encode (s) |\n"
        "|---|---|---|---|---|---|---|---|\n");
    std::ofstream boundMd = openTable(out + ".bound.md",
        "| dataset | bound / range | ECNR CR | PSNR (dB) | max error / bound | exact voxels | ZFP CR | ZFP max error / bound |\n"
        "|---|---|---|---|---|---|---|---|\n");
    for (const Dataset& d : readConfig(argv[1])) {
      GridMeta meta;
      Field f;
      if (!loadSelected(d, only, f, meta)) continue;
      const double raw = 4.0 * double(f.values.size());
      const auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
      const double range = double(*hi) - double(*lo);
      EncoderSettings base = presetSettings(preset);
      applyOptions(d.options, base);
      base.verbose = false;
      std::cerr << d.name << " " << f.dims.str() << "\n";

      // 1. Ratio mode, and the rate split at R = 300.
      Model network300;
      for (double R : {100.0, 300.0}) {
        EncoderSettings s = base;
        s.mode = QualityMode::Ratio;
        s.targetRatio = R;
        EncodeReport rep;
        Timer t;
        Model m = encode(f, meta, s, Progress(), &rep);
        const double seconds = t.seconds();
        const Decoded got = roundTrip(m, f);
        std::string trained, split = "—";
        for (const auto& [bytes, psnr] : rep.networks)
          trained += (trained.empty() ? "" : ", ") + num(raw / double(bytes), 0) + " / " + num(psnr);
        // The rate split on the smaller series only (its three trainings on the 7-17 M voxel volumes would double
        // the bench's time).
        if (R == 300.0 && f.values.size() <= 5000000) {
          EncoderSettings half = s;
          half.networkShare = 0.5;
          const Decoded h = roundTrip(encode(f, meta, half, Progress()), f);
          split = num(h.err.psnr) + " dB at CR " + num(h.ratio, 0);
        }
        if (R == 300.0) {
          network300 = m;
          network300.residual = ResidualCorrection{};
        }
        bool extrapolated = false;
        const double alone = networkAloneAt(rep.networks, raw, got.ratio, &extrapolated);
        // What the correction buys when it fills the whole budget after the network (the mode tops up only a
        // network that lands more than 10 % short): against the network alone at the ratio it reaches.
        Model filled = m;
        filled.residual = ResidualCorrection{};
        const Field networkDecode = Decoder(filled).decodeAll();
        correctToRatio(filled, f, networkDecode, R, Progress(), 0, R);
        const Decoded fill = roundTrip(filled, f);
        bool fillExtrapolated = false;
        const double fillAlone = networkAloneAt(rep.networks, raw, fill.ratio, &fillExtrapolated);
        const std::string fillCell = num(fill.ratio, 1) + " / " + num(fill.err.psnr) + " / " +
                                     (std::isfinite(fillAlone) ? num(fill.err.psnr - fillAlone) : "—");
        ratioMd << "| " << d.name << " | " << R << " | " << num(got.ratio, 1) << " | " << num(got.err.psnr) << " | "
                << num(alone) << (extrapolated && std::isfinite(alone) ? " (extrapolated)" : "") << " | " << (std::isfinite(alone) ? num(got.err.psnr - alone) : "—") << " | " << trained
                << " | " << rep.correctionBytes << " | " << fillCell << " | " << split << " | " << num(seconds, 0)
                << " |\n";
        ratioMd.flush();
      }

      if (!allTables) continue;
      // 2. PSNR mode and 3. max-error mode, on the CR-300 network.
      const Field decoded = Decoder(network300).decodeAll();
      const ErrorStats alone = compareFields(f, decoded);
      // The PSNR mode as a user runs it (it sizes its own network), beside the correction alone on the CR-300
      // network: where the correction stops paying.
      for (double extra : {4.0}) {
        const double P = std::round(alone.psnr + extra);
        EncoderSettings s = base;
        s.mode = QualityMode::Psnr;
        s.targetPsnr = P;
        s.targetRatio = 300;
        EncodeReport rep;
        Timer t;
        const Model mode = encode(f, meta, s, Progress(), &rep);
        const double seconds = t.seconds();
        const Decoded got = roundTrip(mode, f);
        std::string trained;
        for (const auto& [bytes, psnr] : rep.networks)
          trained += (trained.empty() ? "" : ", ") + num(raw / double(bytes), 0) + " / " + num(psnr);
        Model m = network300;
        correctToPsnr(m, f, decoded, P);
        const Decoded only = roundTrip(m, f);
        psnrMd << "| " << d.name << " | " << P << " | " << num(got.err.psnr) << " | "
               << (got.err.psnr >= P && got.err.psnr <= P + 1 ? "yes" : "**no**") << " | " << num(got.ratio, 1) << " | "
               << trained << " | " << num(only.err.psnr) << " / " << num(only.ratio, 1) << " | " << num(seconds, 0)
               << " |\n";
      }
      for (double e : {1e-2, 1e-3, 1e-4}) {
        Model m = network300;
        correctToBound(m, f, decoded, e * range);
        const Decoded got = roundTrip(m, f);
        ResidualStepStats st;  // voxels stored exactly, counted on the first step
        if (m.residual.hasCorrection())
          encodeResidualStep(f.step(0), decoded.step(0), f.dims, m.residual.step, m.residual.bound, m.residual.slack, &st);
        const auto [zr, zmax] = zfpAccuracy(f, e * range);
        boundMd << "| " << d.name << " | " << e << " | " << num(got.ratio, 1) << " | " << num(got.err.psnr) << " | "
                << num(got.err.maxAbs / (e * range), 3) << " | " << st.exact << " (step 0) | " << num(zr, 1) << " | "
                << num(zmax / (e * range), 3) << " |\n";
      }
      psnrMd.flush();
      boundMd.flush();
    }
  } catch (const std::exception& e) {
    std::cerr << "ecnr_bench_modes: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
