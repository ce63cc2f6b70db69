#include "ecnr/Quality.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "Conv3dCpu.h"
#include "SirenIsa.h"
#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Metrics.h"

namespace ecnr {

namespace {

// A network alone landing above P + 1 dB, or above its share of a ratio's budget, is retrained smaller: at most
// this many networks per encode.
constexpr int kMaxNetworks = 4;  // the chooser's network and up to three resized
// The slack kept for decode paths nobody measured (another compiler's rounding): this fraction of the range.
constexpr double kSlackFloor = 1e-7;

double dataRange(const Field& f) {
  const auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
  return double(*hi) - double(*lo);
}

double psnrOf(double sumSquares, size_t n, double range) {
  if (sumSquares <= 0) return 999.0;
  return 20.0 * std::log10(range > 0 ? range : 1.0) - 10.0 * std::log10(sumSquares / double(n));
}

void maxDiff(const float* a, const float* b, size_t n, double& worst) {
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    worst = std::max(worst, std::isnan(d) ? HUGE_VAL : d);
  }
}

// A box of at most `edge` voxels per axis near the centre, starting at an odd offset where there is room (so the
// kernels' vector lanes fall differently than on the whole grid).
Extent centralBox(const Dims4& d, int64_t edge) {
  Extent b{};
  for (int a = 0; a < 3; ++a) {
    const int64_t n = d[a], w = std::min(n, edge);
    int64_t lo = (n - w) / 2;
    if (lo % 2 == 0 && lo + w < n) ++lo;
    b[size_t(2 * a)] = lo;
    b[size_t(2 * a + 1)] = lo + w - 1;
  }
  return b;
}

void compareBox(const Field& part, const Field& ref, int64_t t, const Extent& b, double& worst) {
  const int64_t w = b[1] - b[0] + 1;
  for (int64_t z = b[4]; z <= b[5]; ++z)
    for (int64_t y = b[2]; y <= b[3]; ++y)
      maxDiff(part.values.data() + ((z - b[4]) * (b[3] - b[2] + 1) + (y - b[2])) * w,
              ref.values.data() + ref.index(b[0], y, z, t), size_t(w), worst);
}

struct Network {
  Model model;
  Field decoded;        ///< reference decode, data units, no correction
  uint64_t bytes = 0;   ///< archive bytes without a correction
  double fixedBytes = 0;  ///< of those, what the blocks per MLP do not change: header, TOC, block table, latents, CNN
  double psnr = 0;
};

Network trainNetwork(const Field& field, const GridMeta& meta, EncoderSettings s, double ratio,
                     const Progress& progress, EncodeReport& rep) {
  s.mode = QualityMode::Expert;
  s.targetRatio = ratio;
  Network n;
  const int attempts = rep.networkAttempts + 1;
  std::vector<std::pair<uint64_t, double>> trained = rep.networks;
  n.model = encodeNetwork(field, meta, s, progress, &rep);
  rep.networkAttempts = attempts;
  n.decoded = Decoder(n.model).decodeAll();
  const std::vector<uint8_t> archive = serializeArchive({n.model});
  const ComponentBytes c = summarizeArchive(archive.data(), archive.size()).bytes;
  n.bytes = archive.size();
  n.fixedBytes = double(c.header + c.toc + c.blockTable + c.latents + c.cnn);
  n.psnr = compareFields(field, n.decoded).psnr;
  trained.emplace_back(n.bytes, n.psnr);
  rep.networks = std::move(trained);
  std::ostringstream msg;
  msg << "network " << attempts << " (sized for CR " << ratio << "): CR "
      << double(field.values.size()) * 4.0 / double(n.bytes) << ", PSNR " << n.psnr << " dB";
  progress.report(1.0, msg.str());
  return n;
}

// Ratio mode: the largest correction that keeps the archive within the budget, by log-bisection of the step.
void fillBudget(ResidualCorrection& c, const Field& field, const Field& decoded, uint64_t networkBytes,
                uint64_t budget, double range, const Progress& progress) {
  double hi = correctedError(field, decoded, 0).maxAbs;
  if (!(hi > 0) || networkBytes + residualSectionBytes(c) >= budget) return;
  hi *= 4;  // every quantized value 0
  double lo = hi * 1e-7;
  if (range > 0) lo = std::max(lo, range * 1e-9);
  ResidualCorrection best = c;  // no correction at all
  for (int iter = 0; iter < 16; ++iter) {
    progress.checkCancel();
    const double mid = std::sqrt(lo * hi);
    ResidualCorrection trial = c;
    codeCorrection(trial, field, decoded, mid, 0, 0);
    const uint64_t bytes = networkBytes + residualSectionBytes(trial);
    std::ostringstream msg;
    msg << "correction step " << mid << ": archive " << bytes << " of " << budget << " bytes";
    progress.report(1.0, msg.str());
    if (bytes > budget) {
      lo = mid;
    } else {
      hi = mid;
      best = std::move(trial);
      if (double(bytes) >= 0.96 * double(budget)) break;
    }
  }
  c = std::move(best);
}

// The network sizing of the ratio and PSNR modes: the same block dims as the first network, the MLP count of each
// scale chosen to fit the bytes wanted. The weight bytes (the archive minus the block table, latent codes and CNN,
// which the MLP count does not change) are taken as proportional to the MLP count, per MLP as measured on the
// network tried nearest in size. The coarser scales follow one common factor on their blocks per MLP (rounded:
// they hold few MLPs, and carry the content: shifting MLPs between scales to hit a count cost up to 1.3 dB on
// ct_cranium); the finest scale, the most MLPs and the finest steps, gets its MLP count directly
// (EncoderSettings::finestMlps), so the count lands on the MLP even where the blocks per MLP are small (1 / 2 / 4
// on a static volume: an integer step there moves the size by 25-100 %, and on rm_entropy_t20 at CR 300 the two
// nearest networks straddled the +-10 % window).
class NetworkSizer {
public:
  NetworkSizer(const Network& first, const EncoderSettings& settings, const Dims4& dims)
      : s_(settings), fixed_(first.fixedBytes) {
    s_.blockDims = first.model.scales.front().blockDims;
    s_.finestMlps = 0;
    base_ = resolveSettings(s_, dims).blocksPerMlp;
    for (const ScaleModel& sc : first.model.scales) instances_.push_back(int64_t(sc.blocks.size()));
    if (base_.empty() || instances_.size() != base_.size()) return;
    const Config firstConfig = configOf(base_, ceilDiv(instances_.back(), base_.back()));
    tried_.push_back({double(mlpCount(firstConfig)), double(first.bytes) - fixed_});
    configs_.push_back(firstConfig);
  }

  /// Settings for about `wanted` archive bytes; false when no new network gets closer than those tried.
  bool next(double wanted, EncoderSettings& out) {
    const double w = wanted - fixed_;
    if (w <= 0.05 * fixed_ || configs_.empty()) return false;
    const auto nearest = *std::min_element(tried_.begin(), tried_.end(), [&](const auto& a, const auto& b) {
      return std::fabs(std::log(a.second / w)) < std::fabs(std::log(b.second / w));
    });
    const double perMlp = nearest.second / std::max(1.0, nearest.first);
    const double mlps = w / perMlp;
    const double k = std::max(1e-3, double(mlpCount(configs_.front())) / mlps);
    std::vector<int> bpm;
    for (int b : base_) bpm.push_back(std::max(1, int(std::lround(double(b) * k))));
    Config c = configOf(bpm, 1);
    const double coarse = double(mlpCount(c)) - 1;
    c.back() = std::clamp<int64_t>(std::llround(mlps - coarse), 1, std::max<int64_t>(1, instances_.back()));
    // Tried already: the neighbouring finest counts (a one-MLP step, when the sizes model says it is the nearest).
    for (int64_t step = 1; std::find(configs_.begin(), configs_.end(), c) != configs_.end() && step <= 2; ++step)
      c.back() = std::clamp<int64_t>(c.back() + (mlps > double(mlpCount(c)) ? 1 : -1), 1, instances_.back());
    if (std::find(configs_.begin(), configs_.end(), c) != configs_.end()) return false;
    // A network tried already as near the target (within a per cent): another training would not help.
    const double off = std::fabs(std::log(double(mlpCount(c)) / mlps));
    for (const auto& t : tried_)
      if (off >= std::fabs(std::log(t.second / w)) - 0.01) return false;
    configs_.push_back(c);
    pending_ = double(mlpCount(c));
    out = s_;
    out.blocksPerMlp.assign(c.begin(), c.end() - 1);
    out.blocksPerMlp.push_back(base_.back());
    out.finestMlps = c.back();
    return true;
  }
  void record(const Network& n) {
    tried_.push_back({pending_, double(n.bytes) - fixed_});
    // The block counts of the latest network (the closed loop moves them a little): a finest MLP count above
    // them is clamped to them, so two counts above would train the same network twice.
    if (n.model.scales.size() == instances_.size())
      for (size_t i = 0; i < instances_.size(); ++i) instances_[i] = int64_t(n.model.scales[i].blocks.size());
    configs_.back().back() = std::min(configs_.back().back(), std::max<int64_t>(1, instances_.back()));
  }

private:
  using Config = std::vector<int64_t>;  // blocks per MLP of the coarser scales (coarsest first), finest MLP count

  static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
  static Config configOf(const std::vector<int>& bpm, int64_t finest) {
    Config c(bpm.begin(), bpm.end());
    c.back() = finest;
    return c;
  }
  int64_t mlpCount(const Config& c) const {
    int64_t m = 0;
    for (size_t i = 0; i + 1 < c.size() && i < instances_.size(); ++i) m += ceilDiv(instances_[i], c[i]);
    return std::max<int64_t>(m + c.back(), 1);
  }

  EncoderSettings s_;
  double fixed_ = 0;
  double pending_ = 1;
  std::vector<int> base_;
  std::vector<int64_t> instances_;  // block instances trained per scale, coarsest first (as the first network)
  std::vector<std::pair<double, double>> tried_;  // (MLPs, weight bytes)
  std::vector<Config> configs_;
};

}  // namespace

double measureDecoderSpread(const Model& model, const Field& ref) {
  double worst = 0;
  Decoder dec(model);
  dec.setResidual(false);
  for (int64_t t = 0; t < model.dims.t; ++t) {
    const Field one = dec.decodeStep(t);
    maxDiff(one.values.data(), ref.step(t), one.values.size(), worst);
  }
  const Extent box = centralBox(model.dims, 40);
  for (int64_t t : {int64_t(0), model.dims.t - 1}) compareBox(dec.decodeRegion(t, box), ref, t, box, worst);
  // The instruction sets a reader elsewhere might use: every one this CPU has, on the box.
  using kernels::Isa;
  using kernels::ConvIsa;
  const std::pair<Isa, ConvIsa> isas[] = {{Isa::Generic, ConvIsa::Generic}, {Isa::Avx2, ConvIsa::Avx2},
                                          {Isa::Avx512, ConvIsa::Avx512}};
  for (const auto& [isa, conv] : isas) {
    if (!kernels::isaSupported(isa)) continue;
    kernels::forceIsa(isa);
    kernels::forceConvIsa(conv);
    try {
      compareBox(dec.decodeRegion(0, box), ref, 0, box, worst);
    } catch (...) {
      kernels::forceIsa(Isa::Auto);
      kernels::forceConvIsa(ConvIsa::Auto);
      throw;
    }
  }
  kernels::forceIsa(Isa::Auto);
  kernels::forceConvIsa(ConvIsa::Auto);
  return worst;
}

void codeCorrection(ResidualCorrection& c, const Field& original, const Field& decoded, double step, double bound,
                    double slack) {
  c.step = step;
  c.bound = bound;
  c.slack = slack;
  c.steps.assign(size_t(original.dims.t), {});
  const Dims4 d = original.dims;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < d.t; ++t)
    c.steps[size_t(t)] = encodeResidualStep(original.step(t), decoded.step(t), d, step, bound, slack);
}

double stepForPsnr(const Field& original, const Field& decoded, double range, double psnr) {
  const size_t n = original.values.size();
  const CorrectedError alone = correctedError(original, decoded, 0);
  if (psnrOf(alone.sumSquares, n, range) >= psnr) return 0;
  double hi = 4 * alone.maxAbs;
  double lo = hi * 1e-9;
  // The error never exceeds step / 2, so this step always reaches the PSNR.
  const double sure = 2.0 * (range > 0 ? range : 1.0) * std::pow(10.0, -psnr / 20.0);
  lo = std::min(std::max(lo, sure * 0.5), hi);
  for (int iter = 0; iter < 40 && hi / lo > 1.0005; ++iter) {
    const double mid = std::sqrt(lo * hi);
    if (psnrOf(correctedError(original, decoded, mid).sumSquares, n, range) >= psnr) lo = mid;
    else hi = mid;
  }
  return lo;
}

namespace {

// Fills the quality record from the corrected reference decode; returns its error.
ErrorStats finish(Model& model, const Field& original, const Field& decoded, QualityMode mode, double target) {
  const ErrorStats achieved = compareFields(original, Decoder(model).decodeAll());
  QualityInfo& q = model.residual.quality;
  q.mode = mode;
  q.target = target;
  q.achievedPsnr = achieved.psnr;
  q.achievedMaxError = achieved.maxAbs;
  q.networkPsnr = compareFields(original, decoded).psnr;
  return achieved;
}

}  // namespace

ErrorStats correctToBound(Model& model, const Field& original, const Field& decoded, double bound) {
  if (!(bound > 0) || !std::isfinite(bound)) throw Error("the error bound must be positive and finite");
  const double range = dataRange(original);
  const double slack = 2.0 * measureDecoderSpread(model, decoded) + kSlackFloor * range;
  // What the quantization may use; voxels it cannot keep within the bound are stored exactly.
  const double step = 2.0 * std::max(bound - slack, 0.25 * bound);
  codeCorrection(model.residual, original, decoded, step, bound, slack);
  const ErrorStats e = finish(model, original, decoded, QualityMode::MaxError, bound);
  if (!(e.maxAbs <= bound))
    throw Error("internal error: the corrected decode misses the bound (" + std::to_string(e.maxAbs) + " > " +
                std::to_string(bound) + ")");
  return e;
}

namespace {

// The correction of PSNR mode alone (no decode to measure it): the largest step reaching psnr, with a margin.
void codePsnrCorrection(ResidualCorrection& c, const Field& original, const Field& decoded, double psnr) {
  const double step = stepForPsnr(original, decoded, dataRange(original), psnr + 0.02);
  if (step > 0) codeCorrection(c, original, decoded, step, 0, 0);
}

}  // namespace

ErrorStats correctToPsnr(Model& model, const Field& original, const Field& decoded, double psnr) {
  codePsnrCorrection(model.residual, original, decoded, psnr);
  return finish(model, original, decoded, QualityMode::Psnr, psnr);
}

ErrorStats correctToRatio(Model& model, const Field& original, const Field& decoded, double ratio,
                          const Progress& progress, uint64_t networkBytes, double fillRatio) {
  if (fillRatio < 0) fillRatio = ratio;
  model.residual.quality.mode = QualityMode::Ratio;  // the section's fixed bytes count in the budget
  if (fillRatio > 0) {
    if (networkBytes == 0) networkBytes = serializeArchive({model}).size();
    const uint64_t budget = uint64_t(4.0 * double(original.values.size()) / fillRatio);
    fillBudget(model.residual, original, decoded, networkBytes, budget, dataRange(original), progress);
  }
  return finish(model, original, decoded, QualityMode::Ratio, ratio);
}

Model encodeWithQuality(const Field& field, const GridMeta& meta, const EncoderSettings& settings,
                        const Progress& progress, EncodeReport* report) {
  Timer timer;
  validateDims(field.dims);
  if (int64_t(field.values.size()) != field.dims.count()) throw Error("field size does not match its dims");
  checkFinite(field);
  const double rawBytes = 4.0 * double(field.values.size());
  EncodeReport rep;
  Network net;
  ErrorStats achieved;
  Timer correction;
  switch (settings.mode) {
    case QualityMode::MaxError: {
      if (settings.maxError < 0 || settings.relativeError < 0 || !std::isfinite(settings.maxError) ||
          !std::isfinite(settings.relativeError) || (settings.maxError == 0 && settings.relativeError == 0))
        throw Error("max-error mode needs a positive --max-error or --rel-error");
      double bound = settings.maxError > 0 ? settings.maxError : settings.relativeError * dataRange(field);
      if (!(bound > 0)) bound = std::numeric_limits<float>::denorm_min();  // a constant field: exact
      net = trainNetwork(field, meta, settings, settings.targetRatio, progress, rep);
      progress.report(1.0, "coding the error-bounded correction");
      correction = Timer();
      achieved = correctToBound(net.model, field, net.decoded, bound);
      break;
    }
    case QualityMode::Psnr: {
      const double P = settings.targetPsnr;
      if (!(P > 0) || !std::isfinite(P) || P > 300) throw Error("psnr mode needs a --target-psnr in (0, 300] dB");
      // The network's bytes buy PSNR far cheaper than the correction's (BENCHMARKS.md, "Quality modes"): size the
      // network to reach about P itself (PSNR taken as linear in log2 bytes, fitted on the networks tried), let
      // the correction close the last fraction of a dB, and keep the network with the fewest bytes in all.
      net = trainNetwork(field, meta, settings, settings.targetRatio, progress, rep);
      NetworkSizer sizer(net, settings, field.dims);
      auto total = [&](const Network& n) {
        if (n.psnr > P + 1.0) return HUGE_VAL;  // it alone would land above P + 1
        ResidualCorrection c;
        codePsnrCorrection(c, field, n.decoded, P);
        return double(n.bytes + residualSectionBytes(c));
      };
      double best = total(net);
      std::vector<std::pair<double, double>> tried{{double(net.bytes), net.psnr}};  // (bytes, PSNR)
      EncoderSettings resized;
      while (rep.networkAttempts < kMaxNetworks) {
        const auto [bytes, psnr] = tried.back();
        double slope = 5.0;  // dB per doubling of the bytes, until two networks say better
        if (tried.size() >= 2) {
          const auto [b1, p1] = tried[tried.size() - 2];
          const double fit = (psnr - p1) / std::log2(bytes / b1);
          if (std::isfinite(fit)) slope = std::clamp(fit, 1.5, 12.0);
        }
        if (psnr >= P && psnr <= P + 0.5) break;  // the network alone lands: nothing smaller will
        const double wanted = bytes * std::pow(2.0, (P + 0.2 - psnr) / slope);
        if (std::fabs(std::log2(wanted / bytes)) < 0.03 || !sizer.next(wanted, resized)) break;
        Network n = trainNetwork(field, meta, resized, settings.targetRatio, progress, rep);
        sizer.record(n);
        tried.push_back({double(n.bytes), n.psnr});
        const double t = total(n);
        if (t < best || !std::isfinite(best)) {
          best = t;
          net = std::move(n);
        }
      }
      correction = Timer();
      achieved = correctToPsnr(net.model, field, net.decoded, P);
      break;
    }
    case QualityMode::Ratio: {
      const double R = settings.targetRatio;
      const double share = settings.networkShare;
      if (!(R > 1) || !std::isfinite(R)) throw Error("ratio mode needs a --target-ratio above 1");
      if (!(share > 0 && share <= 1)) throw Error("the network's share of the budget must be in (0, 1]");
      const double budget = rawBytes / R, wanted = share * budget;
      net = trainNetwork(field, meta, settings, R / share, progress, rep);
      // The block-size chooser moves in coarse steps (CR 130 when asked 100 on the 64^3 series): resize the
      // network through the blocks per MLP, which scales its weight bytes nearly in proportion, until it lands
      // within 7 % under to 5 % over its share. Of the networks trained, the best PSNR in [share / 1.1,
      // share / 0.95] is kept (networks of nearly the same size differ by up to 1.7 dB: the boundary CNN kept or
      // not, the MLPs' assignment), else the largest under it, else the smallest.
      auto inWindow = [&](const Network& n) { return n.bytes >= wanted / 1.1 && n.bytes <= wanted / 0.95; };
      auto better = [&](const Network& a, const Network& b) {  // a kept rather than b
        if (inWindow(a) != inWindow(b)) return inWindow(a);
        if (inWindow(a)) return a.psnr > b.psnr;
        const bool aUnder = a.bytes < wanted / 1.1, bUnder = b.bytes < wanted / 1.1;
        if (aUnder != bUnder) return aUnder;
        return aUnder ? a.bytes > b.bytes : a.bytes < b.bytes;
      };
      NetworkSizer sizer(net, settings, field.dims);
      EncoderSettings resized;
      while (rep.networkAttempts < kMaxNetworks && !(inWindow(net) && net.bytes >= wanted / 1.07) &&
             sizer.next(wanted, resized)) {
        Network next = trainNetwork(field, meta, resized, R / share, progress, rep);
        sizer.record(next);
        if (better(next, net)) net = std::move(next);
      }
      // At CR 100-300 the correction's bytes buy 3-10x less PSNR than the network's (BENCHMARKS.md, "Quality
      // modes"): with the whole budget the network's (share 1), the correction only tops up a network that landed
      // more than 10 % short, to 5 % short; with a smaller share it gets the rest of the budget.
      const double fill = share < 1 ? R : (net.bytes < budget / 1.1 ? 1.05 * R : 0);
      correction = Timer();
      achieved = correctToRatio(net.model, field, net.decoded, R, progress, net.bytes, fill);
      break;
    }
    case QualityMode::Expert: return encodeNetwork(field, meta, settings, progress, report);
  }
  rep.correctionSeconds = correction.seconds();
  rep.networkBytes = net.bytes;
  rep.correctionBytes = residualSectionBytes(net.model.residual);
  rep.seconds = timer.seconds();
  std::ostringstream msg;
  msg << qualityModeName(settings.mode) << " mode: network " << net.bytes << " B (PSNR " << net.psnr
      << " dB) + correction " << rep.correctionBytes << " B (step " << net.model.residual.step << "): PSNR "
      << achieved.psnr << " dB, max error " << achieved.maxAbs;
  progress.report(1.0, msg.str());
  if (report) *report = rep;
  return std::move(net.model);
}

}  // namespace ecnr
