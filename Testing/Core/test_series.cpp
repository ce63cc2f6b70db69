// Series: a long series as independent time windows (issue 9): encoding window by window, the archive's Window
// sections, decoding any step from its window alone, appending windows without touching the rest, and the checks
// that keep windows from overlapping or leaving gaps.
#include <gtest/gtest.h>

#include <algorithm>

#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include <cmath>
#include "ecnr/Metrics.h"
#include "ecnr/Series.h"

using namespace ecnr;

namespace {

// A smooth moving pattern (the generator's Gray-Scott pattern dies out below 32^3).
Field series(int n, int t) {
  Field f(Dims4{n, n, n, t});
  for (int64_t s = 0; s < t; ++s)
    for (int64_t z = 0; z < n; ++z)
      for (int64_t y = 0; y < n; ++y)
        for (int64_t x = 0; x < n; ++x)
          f.at(x, y, z, s) = float(std::sin(0.4 * double(x) + 0.3 * double(s)) * std::cos(0.35 * double(y - z)));
  return f;
}

EncoderSettings quick() {
  EncoderSettings s = presetSettings("fast");
  s.epochs = {4, 4, 6};
  s.blockDims = {8, 8, 8};
  s.boundaryCnn = false;
  s.verbose = false;
  s.threads = 2;
  s.codeSteps = 1;  // a code per step: the file versions checked below are those of windows alone
  return s;
}

struct Windowed {
  Field field;
  GridMeta meta;
  std::vector<Model> parts;
};

const Windowed& windowed() {
  static const Windowed w = [] {
    Windowed out;
    out.field = series(16, 7);
    for (int t = 0; t < 7; ++t) out.meta.times.push_back(10.0 + 0.5 * t);
    EncoderSettings s = quick();
    s.epochs = {15, 15, 30};  // enough for the PSNR check to tell a step from its neighbours
    out.parts = encodeWindows(out.field, out.meta, s, 3, Progress());
    return out;
  }();
  return w;
}

}  // namespace

TEST(Series, WindowsTileTheSeriesAndDecodeAlone) {
  const Windowed& w = windowed();
  ASSERT_EQ(w.parts.size(), 3u);
  EXPECT_EQ(w.parts[0].firstStep, 0);
  EXPECT_EQ(w.parts[1].firstStep, 3);
  EXPECT_EQ(w.parts[2].firstStep, 6);
  EXPECT_EQ(w.parts[2].dims.t, 1);
  const std::vector<uint8_t> bytes = serializeArchive(w.parts);
  EXPECT_EQ(summarizeArchive(bytes.data(), bytes.size()).version, 3u);
  const std::vector<Model> back = parseArchive(bytes.data(), bytes.size());
  const SeriesView s = seriesNamed(back, "");
  EXPECT_EQ(s.dims(), w.field.dims);
  EXPECT_EQ(s.times(), w.meta.times);
  const Field all = decodeSeries(s);
  EXPECT_GT(compareFields(w.field, all).psnr, 25.0);
  for (int64_t t = 0; t < 7; ++t) {
    const auto [window, local] = s.locate(t);
    EXPECT_EQ(window->firstStep + local, t);
    const Field one = Decoder(*window).decodeStep(local);
    for (size_t i = 0; i < one.values.size(); ++i) ASSERT_NEAR(one.values[i], all.step(t)[i], 1e-5) << "step " << t;
  }
  EXPECT_THROW(s.locate(7), Error);
}

TEST(Series, AppendCopiesTheArchiveAndAddsSteps) {
  const Windowed& w = windowed();
  const std::vector<uint8_t> first = serializeArchive({w.parts[0]});
  EXPECT_EQ(summarizeArchive(first.data(), first.size()).version, 2u);  // one window from step 0: no Window section
  std::vector<Model> more{w.parts[1], w.parts[2]};
  const std::vector<uint8_t> appended = appendToArchive(first.data(), first.size(), more);
  const ArchiveSummary a = summarizeArchive(first.data(), first.size()), b = summarizeArchive(appended.data(), appended.size());
  for (size_t k = 0; k < a.sections.size(); ++k) {  // every old section is there, byte for byte
    const SectionInfo& x = a.sections[k];
    const SectionInfo& y = b.sections[k];
    ASSERT_EQ(x.length, y.length);
    EXPECT_TRUE(std::equal(first.begin() + long(x.offset), first.begin() + long(x.offset + x.length),
                           appended.begin() + long(y.offset)));
  }
  const std::vector<Model> back = parseArchive(appended.data(), appended.size());
  EXPECT_EQ(decodeSeries(seriesNamed(back, "")).values,
            decodeSeries(seriesNamed(parseArchive(serializeArchive(w.parts).data(), serializeArchive(w.parts).size()), ""))
                .values);
}

// Windows with shared codes (version 4: its Headers carry two more fields) appended to a version-2 file: the old
// Header is written anew in the version-4 layout, the rest copied, and every window decodes as on its own.
TEST(Series, AppendingSharedCodesRaisesTheVersionAndRewritesTheHeaders) {
  const Windowed& w = windowed();
  const std::vector<uint8_t> first = serializeArchive({w.parts[0]});
  ASSERT_EQ(summarizeArchive(first.data(), first.size()).version, 2u);
  EncoderSettings s = quick();
  s.codeSteps = 8;
  std::vector<Model> more = encodeWindows(w.field, w.meta, s, 3, Progress());
  more.erase(more.begin());
  ASSERT_EQ(more[0].shape.codeSteps, 8);
  const std::vector<uint8_t> appended = appendToArchive(first.data(), first.size(), more);
  EXPECT_EQ(summarizeArchive(appended.data(), appended.size()).version, 4u);
  const std::vector<Model> back = parseArchive(appended.data(), appended.size());
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].shape.codeSteps, 1);
  EXPECT_EQ(back[1].shape.codeSteps, 8);
  EXPECT_EQ(Decoder(back[0]).decodeAll().values, Decoder(w.parts[0]).decodeAll().values);
  EXPECT_EQ(Decoder(back[1]).decodeAll().values, Decoder(more[0]).decodeAll().values);
}

TEST(Series, OverlapsGapsAndMismatchedGridsAreRefused) {
  const Windowed& w = windowed();
  std::vector<Model> overlap{w.parts[0], w.parts[1]};
  overlap[1].firstStep = 2;
  EXPECT_THROW(serializeArchive(overlap), Error);
  std::vector<Model> gap{w.parts[0], w.parts[1]};
  gap[1].firstStep = 4;
  try {
    serializeArchive(gap);
    FAIL() << "a gap between windows was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gap"), std::string::npos) << e.what();
  }
  const std::vector<uint8_t> one = serializeArchive({w.parts[0]});
  EXPECT_THROW(appendToArchive(one.data(), one.size(), {w.parts[2]}), Error);  // steps 3-5 missing
  Model other = encodeWindows(series(8, 2), GridMeta{}, quick(), 0, Progress()).at(0);
  other.firstStep = 3;
  EXPECT_THROW(appendToArchive(one.data(), one.size(), {other}), Error);  // another grid
  other.meta.arrayName = "second";
  other.firstStep = 0;
  EXPECT_THROW(serializeArchive({w.parts[0], other}), Error);  // arrays of different grids
}

TEST(Series, DamagedWindowSectionIsRefused) {
  const Windowed& w = windowed();
  std::vector<uint8_t> bytes = serializeArchive(w.parts);
  const ArchiveSummary sum = summarizeArchive(bytes.data(), bytes.size());
  const auto it = std::find_if(sum.sections.begin(), sum.sections.end(),
                               [](const SectionInfo& s) { return s.type == SectionType::Window; });
  ASSERT_NE(it, sum.sections.end());
  bytes[size_t(it->offset)] ^= 1;
  EXPECT_THROW(parseArchive(bytes.data(), bytes.size()), Error);
}
