// Quality modes (beyond the paper): the error-bounded correction (Residual.h) and the max-error, target-PSNR and
// target-ratio modes (Quality.h). What a user of SZ3 / ZFP checks: every voxel within the bound, on every decode
// path, after a round trip through the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "../../Core/kernels/SirenIsa.h"
#include "../../Core/kernels/Conv3dCpu.h"
#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Metrics.h"
#include "ecnr/Quality.h"
#include "ecnr/Residual.h"
#include "ecnr/VolumeIO.h"

using namespace ecnr;
namespace fs = std::filesystem;

namespace {

// A smooth field with structure at several scales (the generator's Gray-Scott pattern dies out below 32^3:
// its range there is ~1e-15).
Field waves(int n, int t) {
  Field f(Dims4{n, n, n, t});
  for (int64_t s = 0; s < t; ++s)
    for (int64_t z = 0; z < n; ++z)
      for (int64_t y = 0; y < n; ++y)
        for (int64_t x = 0; x < n; ++x)
          f.at(x, y, z, s) = float(std::sin(0.45 * double(x) + 0.2 * double(s)) * std::cos(0.3 * double(y)) +
                                   0.3 * std::sin(1.3 * double(z + x) - 0.5 * double(s)));
  return f;
}

// A short training: these tests check the bound, not the network's quality.
EncoderSettings quick(QualityMode mode, bool cnn = false) {
  EncoderSettings s = presetSettings("fast");
  s.epochs = {4, 4, 6};
  s.blockDims = {8, 8, 8};
  s.boundaryCnn = cnn;
  s.cnnSteps = 20;
  s.verbose = false;
  s.threads = 2;
  s.mode = mode;
  return s;
}

double maxAbsError(const Field& a, const Field& b) { return compareFields(a, b).maxAbs; }

double maxAbsInStep(const Field& original, int64_t t, const Field& step) {
  double worst = 0;
  for (size_t i = 0; i < step.values.size(); ++i)
    worst = std::max(worst, std::fabs(double(original.step(t)[i]) - double(step.values[i])));
  return worst;
}

// Every decode path of an archive: the whole series, each step alone, a sub-extent, every instruction set of
// the MLP and CNN kernels, after writing and reading the file.
void expectBoundOnEveryPath(const Field& original, const Model& encoded, double bound) {
  const std::vector<uint8_t> bytes = serializeArchive({encoded});
  const Model model = parseArchive(bytes.data(), bytes.size()).at(0);
  ASSERT_TRUE(model.residual.hasCorrection() || maxAbsError(original, Decoder(model).decodeAll()) <= bound);
  Decoder dec(model);
  EXPECT_LE(maxAbsError(original, dec.decodeAll()), bound) << "decodeAll";
  for (int64_t t = 0; t < original.dims.t; ++t) EXPECT_LE(maxAbsInStep(original, t, dec.decodeStep(t)), bound) << "step " << t;
  const Extent box{1, std::min<int64_t>(original.dims.x - 1, 9), 2, std::min<int64_t>(original.dims.y - 1, 7), 0,
                   original.dims.z - 1};
  const Field part = dec.decodeRegion(original.dims.t - 1, box);
  double worst = 0;
  for (int64_t z = box[4]; z <= box[5]; ++z)
    for (int64_t y = box[2]; y <= box[3]; ++y)
      for (int64_t x = box[0]; x <= box[1]; ++x)
        worst = std::max(worst, std::fabs(double(original.at(x, y, z, original.dims.t - 1)) -
                                          double(part.at(x - box[0], y - box[2], z - box[4], 0))));
  EXPECT_LE(worst, bound) << "decodeRegion";
  using kernels::ConvIsa;
  using kernels::Isa;
  for (const auto& [isa, conv] : {std::pair{Isa::Generic, ConvIsa::Generic}, std::pair{Isa::Avx2, ConvIsa::Avx2},
                                  std::pair{Isa::Avx512, ConvIsa::Avx512}}) {
    if (!kernels::isaSupported(isa)) continue;
    kernels::forceIsa(isa);
    kernels::forceConvIsa(conv);
    const double e = maxAbsError(original, Decoder(model).decodeAll());
    kernels::forceIsa(Isa::Auto);
    kernels::forceConvIsa(ConvIsa::Auto);
    EXPECT_LE(e, bound) << "instruction set " << int(isa);
  }
}

Model encodeMaxError(const Field& f, double relative, bool cnn = false, int codeSteps = 0) {
  EncoderSettings s = quick(QualityMode::MaxError, cnn);
  s.relativeError = relative;
  if (codeSteps > 0) s.codeSteps = codeSteps;
  return encode(f, GridMeta{}, s, Progress{});
}

}  // namespace

// ---- max-error mode ----------------------------------------------------------------------------------------

TEST(QualityMaxError, BoundHoldsOnEveryDecoderPathFrom1em1To1em5OfTheRange) {
  const Field f = waves(16, 4);
  const auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
  const double range = double(*hi) - *lo;
  for (double e : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5}) {
    SCOPED_TRACE("relative bound " + std::to_string(e));
    const Model m = encodeMaxError(f, e);
    EXPECT_EQ(m.residual.quality.mode, QualityMode::MaxError);
    EXPECT_NEAR(m.residual.bound, e * range, 1e-12 * range);
    expectBoundOnEveryPath(f, m, e * range);
  }
}

TEST(QualityMaxError, BoundHoldsWithTheBoundaryCnnAndOnRandomData) {
  const Field f = waves(16, 3);
  const auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
  expectBoundOnEveryPath(f, encodeMaxError(f, 1e-3, true), 1e-3 * (double(*hi) - *lo));

  Field noise(Dims4{12, 10, 9, 2});
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-5.0f, 5.0f);
  for (float& v : noise.values) v = u(rng);
  expectBoundOnEveryPath(noise, encodeMaxError(noise, 1e-2), 1e-2 * 10.0);
}

TEST(QualityMaxError, ConstantFieldFloatLimitsAndASpikeKeepTheBound) {
  Field constant(Dims4{10, 10, 10, 2}, 3.25f);
  Model m = encodeMaxError(constant, 1e-3);
  EXPECT_EQ(Decoder(m).decodeAll().values, constant.values);  // a constant decodes exactly

  Field huge(Dims4{12, 12, 8, 2});
  for (size_t i = 0; i < huge.values.size(); ++i)
    huge.values[i] = float(3.0e38 * std::sin(0.37 * double(i)));  // range ~6e38: beyond FLT_MAX
  expectBoundOnEveryPath(huge, encodeMaxError(huge, 1e-4), 1e-4 * 6.0e38);

  Field spike = waves(16, 2);
  spike.at(7, 8, 9, 1) = 1000.0f;  // one voxel far outside the rest of the data
  expectBoundOnEveryPath(spike, encodeMaxError(spike, 1e-5), 1e-5 * 1000.0);
}

TEST(QualityMaxError, RealDataKeepsTheBound) {
  const fs::path sidecar = fs::path(ECNR_SHARED_DATA) / "navy_winds" / "navy_winds.json";
  if (!fs::exists(sidecar)) GTEST_SKIP() << "shared data not present";
  const Field all = readField(sidecar.string(), nullptr, "uwnd");
  Field f(Dims4{all.dims.x, all.dims.y, 1, 4});
  std::copy(all.values.begin(), all.values.begin() + long(f.values.size()), f.values.begin());
  const auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
  for (double e : {1e-2, 1e-4}) expectBoundOnEveryPath(f, encodeMaxError(f, e), e * (double(*hi) - *lo));
}

// ---- the archive and the decoder's switches ----------------------------------------------------------------

TEST(QualityArchive, CorrectionIsVersion3AndSkippedByPreviewsAndWhenSwitchedOff) {
  const Field f = waves(16, 3);
  const Model m = encodeMaxError(f, 1e-3, false, 1);  // a code per step: shared codes alone make a file version 4
  const std::vector<uint8_t> bytes = serializeArchive({m});
  const ArchiveSummary sum = summarizeArchive(bytes.data(), bytes.size());
  EXPECT_EQ(sum.version, 3u);
  ASSERT_EQ(sum.quality.size(), 1u);
  EXPECT_EQ(sum.quality[0].mode, QualityMode::MaxError);
  EXPECT_LE(sum.quality[0].achievedMaxError, m.residual.bound);
  EXPECT_GT(sum.bytes.residual, 0u);
  EXPECT_EQ(sum.bytes.total(), bytes.size());

  Model plain = m;
  plain.residual = ResidualCorrection{};
  const std::vector<uint8_t> v2 = serializeArchive({plain});
  EXPECT_EQ(summarizeArchive(v2.data(), v2.size()).version, 2u);  // older readers still read archives without it
  EXPECT_EQ(bytes.size() - v2.size(), residualSectionBytes(m.residual));

  const Model preview = parseArchive(bytes.data(), bytes.size(), 1).at(0);
  EXPECT_FALSE(preview.residual.hasCorrection());
  EXPECT_EQ(preview.residual.quality.mode, QualityMode::MaxError);

  const Model back = parseArchive(bytes.data(), bytes.size()).at(0);
  Decoder off(back);
  off.setResidual(false);
  EXPECT_EQ(off.decodeAll().values, Decoder(plain).decodeAll().values);
  EXPECT_FALSE(Decoder(back).appliesResidual(1));
}

TEST(QualityArchive, CorruptResidualSectionIsRefused) {
  const Field f = waves(16, 2);
  std::vector<uint8_t> bytes = serializeArchive({encodeMaxError(f, 1e-2)});
  const ArchiveSummary sum = summarizeArchive(bytes.data(), bytes.size());
  const auto it = std::find_if(sum.sections.begin(), sum.sections.end(),
                               [](const SectionInfo& s) { return s.type == SectionType::Residual; });
  ASSERT_NE(it, sum.sections.end());
  std::vector<uint8_t> bad = bytes;
  bad[size_t(it->offset + it->length / 2)] ^= 0x10;
  try {
    parseArchive(bad.data(), bad.size());
    FAIL() << "a flipped bit in the correction was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("residual"), std::string::npos) << e.what();
  }
}

// ---- target PSNR and target ratio --------------------------------------------------------------------------

// The block size is left to the chooser here: the modes resize the network through it.
TEST(QualityModes, TargetPsnrLandsWithinOneDecibelAbove) {
  const Field f = waves(32, 4);
  for (double P : {40.0, 55.0}) {
    EncoderSettings s = quick(QualityMode::Psnr);
    s.blockDims = {0, 0, 0};
    s.targetPsnr = P;
    const Model m = encode(f, GridMeta{}, s, Progress{});
    const std::vector<uint8_t> bytes = serializeArchive({m});
    const double psnr = compareFields(f, Decoder(parseArchive(bytes.data(), bytes.size()).at(0)).decodeAll()).psnr;
    EXPECT_GE(psnr, P);
    EXPECT_LE(psnr, P + 1.0);
    EXPECT_NEAR(m.residual.quality.achievedPsnr, psnr, 1e-9);
  }
}

TEST(QualityModes, TargetRatioLandsWithinTenPercent) {
  const Field f = waves(32, 4);
  for (double R : {20.0, 60.0}) {
    EncoderSettings s = quick(QualityMode::Ratio);
    s.blockDims = {0, 0, 0};
    s.targetRatio = R;
    EncodeReport rep;
    const Model m = encode(f, GridMeta{}, s, Progress{}, &rep);
    const double ratio = double(f.values.size()) * 4.0 / double(serializeArchive({m}).size());
    EXPECT_GE(ratio, R * 0.9) << "R " << R;
    EXPECT_LE(ratio, R * 1.1) << "R " << R;
    EXPECT_GE(rep.networkAttempts, 1);
    // The correction only tops up a network that landed more than 10 % short of the budget.
    const double networkRatio = double(f.values.size()) * 4.0 / double(rep.networkBytes);
    EXPECT_EQ(m.residual.hasCorrection(), networkRatio > 1.1 * R) << "R " << R << ", network alone CR " << networkRatio;
    EXPECT_EQ(m.residual.quality.mode, QualityMode::Ratio);
  }
  // A network sized for half the budget: the correction gets the rest, and the ratio still lands.
  EncoderSettings s = quick(QualityMode::Ratio);
  s.blockDims = {0, 0, 0};
  s.targetRatio = 60;
  s.networkShare = 0.5;
  const Model m = encode(f, GridMeta{}, s, Progress{});
  const double ratio = double(f.values.size()) * 4.0 / double(serializeArchive({m}).size());
  EXPECT_TRUE(m.residual.hasCorrection());
  EXPECT_GE(ratio, 60 * 0.9);
  EXPECT_LE(ratio, 60 * 1.1);
}

TEST(QualityModes, BadTargetsAreRefused) {
  const Field f = waves(8, 2);
  EncoderSettings s = quick(QualityMode::MaxError);
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress{}), Error);  // no bound given
  s.maxError = -1;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress{}), Error);
  s = quick(QualityMode::Psnr);
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress{}), Error);
  s = quick(QualityMode::Ratio);
  s.targetRatio = 0.5;
  EXPECT_THROW(encode(f, GridMeta{}, s, Progress{}), Error);
}
