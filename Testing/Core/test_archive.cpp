#include <gtest/gtest.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ecnr/Archive.h"
#include "ecnr/Checksum.h"
#include "ecnr/Half.h"
#include "ecnr/Pyramid.h"

using namespace ecnr;

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Random models that fill every field

struct ModelSpec {
  Dims4 dims{20, 16, 12, 6};
  int scales = 3;
  MlpShape shape{6, 8, 2, 27.5f};
  std::array<int, 3> blockDims{4, 4, 4};
  WeightPrecision precision = WeightPrecision::Float32;
  std::string name = "pressure";
};

/// The archive is for small tests too: a few hundred bytes, so byte-by-byte loops stay fast.
ModelSpec smallSpec() {
  ModelSpec s;
  s.dims = Dims4{6, 5, 4, 3};
  s.scales = 2;
  s.shape = MlpShape{2, 3, 1, 30.0f};
  s.name = "v";
  return s;
}

std::vector<float> randomValues(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  // Values that stress the encodings: signed zero, float subnormal, half subnormal, beyond half range.
  const float specials[] = {-0.0f, 1e-40f, 3e-6f, -7e4f, 65519.0f};
  for (size_t i = 0; i < n && i < 5; ++i) v[i] = specials[i];
  return v;
}

ScaleModel randomScale(std::mt19937& rng, const ModelSpec& spec, const Dims4& dims, const HalvedAxes& halved) {
  ScaleModel s;
  s.dims = dims;
  s.halved = halved;
  s.blockDims = spec.blockDims;
  s.mlpCount = 1 + int(rng() % 3);
  s.precision = spec.precision;
  const auto grid = s.blockGrid();
  const uint32_t gridCount = uint32_t(grid[0] * grid[1] * grid[2]);
  std::uniform_real_distribution<float> uniform(-5.0f, 5.0f);
  for (uint32_t t = 0; t < uint32_t(dims.t); ++t) {
    for (uint32_t b = 0; b < gridCount; ++b) {
      if (rng() % 3 != 0) continue;  // a skipped block
      const float lo = uniform(rng);
      s.blocks.push_back({b, t, uint32_t(rng() % uint32_t(s.mlpCount)), lo, lo + std::abs(uniform(rng))});
    }
  }
  if (s.blocks.empty()) s.blocks.push_back({0, 0, 0, -1.0f, 1.0f});
  s.latents = randomValues(rng, s.blocks.size() * size_t(spec.shape.latentDim));
  for (int l = 0; l < spec.shape.layerCount(); ++l) {
    const size_t fanIn = size_t(spec.shape.fanIn(l)), fanOut = size_t(spec.shape.fanOut(l));
    s.weights.push_back(randomValues(rng, size_t(s.mlpCount) * fanIn * fanOut));
    s.biases.push_back(randomValues(rng, size_t(s.mlpCount) * fanOut));
  }
  return s;
}

Model randomModel(std::mt19937& rng, const ModelSpec& spec) {
  std::uniform_real_distribution<double> uniform(-10.0, 10.0);
  Model m;
  m.dims = spec.dims;
  m.meta.arrayName = spec.name;
  for (double& v : m.meta.spacing) v = 0.1 + std::abs(uniform(rng));
  for (double& v : m.meta.origin) v = uniform(rng);
  for (int64_t t = 0; t < spec.dims.t; ++t) m.meta.times.push_back(0.25 * double(t) + uniform(rng) * 1e-3);
  m.dataMin = float(uniform(rng)) - 20.0f;
  m.dataMax = float(uniform(rng)) + 20.0f;
  m.shape = spec.shape;
  m.preset = "fast";
  // Coarsest first: every coarser scale halves each axis, as the pyramid does (the reader checks this).
  const HalvedAxes all{true, true, true, true};
  std::vector<Dims4> dims{spec.dims};
  for (int i = 1; i < spec.scales; ++i) dims.push_back(downsampledDims(dims.back(), all));
  for (int i = spec.scales - 1; i >= 0; --i)
    m.scales.push_back(randomScale(rng, spec, dims[size_t(i)], i == 0 ? HalvedAxes{} : all));
  return m;
}

Model roundedToHalf(Model m) {
  for (ScaleModel& s : m.scales) applyStoragePrecision(s, m.shape);
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// Bit-exact comparison

template <typename T>
std::vector<uint8_t> bitsOf(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

template <typename T>
std::vector<uint8_t> bitsOf(T x) {
  return bitsOf(std::vector<T>{x});
}

void expectScaleBitEqual(const ScaleModel& a, const ScaleModel& b) {
  EXPECT_EQ(a.dims, b.dims);
  EXPECT_EQ(a.halved, b.halved);
  EXPECT_EQ(a.blockDims, b.blockDims);
  EXPECT_EQ(a.mlpCount, b.mlpCount);
  EXPECT_EQ(a.precision, b.precision);
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t i = 0; i < a.blocks.size(); ++i) {
    EXPECT_EQ(a.blocks[i].block, b.blocks[i].block);
    EXPECT_EQ(a.blocks[i].t, b.blocks[i].t);
    EXPECT_EQ(a.blocks[i].mlp, b.blocks[i].mlp);
    EXPECT_EQ(bitsOf(a.blocks[i].minValue), bitsOf(b.blocks[i].minValue));
    EXPECT_EQ(bitsOf(a.blocks[i].maxValue), bitsOf(b.blocks[i].maxValue));
  }
  EXPECT_EQ(bitsOf(a.latents), bitsOf(b.latents));
  ASSERT_EQ(a.weights.size(), b.weights.size());
  ASSERT_EQ(a.biases.size(), b.biases.size());
  for (size_t l = 0; l < a.weights.size(); ++l) {
    EXPECT_EQ(bitsOf(a.weights[l]), bitsOf(b.weights[l])) << "layer " << l;
    EXPECT_EQ(bitsOf(a.biases[l]), bitsOf(b.biases[l])) << "layer " << l;
  }
}

void expectModelBitEqual(const Model& a, const Model& b) {
  EXPECT_EQ(a.dims, b.dims);
  EXPECT_EQ(a.meta.arrayName, b.meta.arrayName);
  EXPECT_EQ(bitsOf(std::vector<double>(a.meta.spacing.begin(), a.meta.spacing.end())),
            bitsOf(std::vector<double>(b.meta.spacing.begin(), b.meta.spacing.end())));
  EXPECT_EQ(bitsOf(std::vector<double>(a.meta.origin.begin(), a.meta.origin.end())),
            bitsOf(std::vector<double>(b.meta.origin.begin(), b.meta.origin.end())));
  EXPECT_EQ(bitsOf(a.meta.times), bitsOf(b.meta.times));
  EXPECT_EQ(bitsOf(a.dataMin), bitsOf(b.dataMin));
  EXPECT_EQ(bitsOf(a.dataMax), bitsOf(b.dataMax));
  EXPECT_EQ(a.shape.latentDim, b.shape.latentDim);
  EXPECT_EQ(a.shape.hidden, b.shape.hidden);
  EXPECT_EQ(a.shape.sineLayers, b.shape.sineLayers);
  EXPECT_EQ(bitsOf(a.shape.omega0), bitsOf(b.shape.omega0));
  EXPECT_EQ(a.preset, b.preset);
  ASSERT_EQ(a.scales.size(), b.scales.size());
  for (size_t s = 0; s < a.scales.size(); ++s) {
    SCOPED_TRACE("scale " + std::to_string(s));
    expectScaleBitEqual(a.scales[s], b.scales[s]);
  }
}

std::vector<Model> roundTrip(const std::vector<Model>& arrays, int maxScales = -1) {
  const std::vector<uint8_t> bytes = serializeArchive(arrays);
  return parseArchive(bytes.data(), bytes.size(), maxScales);
}

std::vector<uint8_t> smallArchive() {
  std::mt19937 rng(7);
  return serializeArchive({randomModel(rng, smallSpec())});
}

/// Runs `f` and returns the Error message it throws ("" and a failure if it does not throw).
template <typename F>
std::string errorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ecnr::Error thrown";
  return "";
}

std::string parseError(const std::vector<uint8_t>& bytes, int maxScales = -1) {
  return errorOf([&] { parseArchive(bytes.data(), bytes.size(), maxScales); });
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------------------------------------------
// A test-side writer of the documented layout, for archives the library itself would refuse to write.

void putLE(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

void pokeLE(std::vector<uint8_t>& bytes, size_t pos, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) bytes[pos + size_t(i)] = uint8_t(v >> (8 * i));
}

struct RawSection {
  uint32_t type, array, scale;
  std::vector<uint8_t> payload;
};

std::vector<RawSection> splitSections(const std::vector<uint8_t>& bytes) {
  std::vector<RawSection> out;
  for (const SectionInfo& s : summarizeArchive(bytes.data(), bytes.size()).sections)
    out.push_back({uint32_t(s.type), s.array, s.scale,
                   std::vector<uint8_t>(bytes.begin() + long(s.offset), bytes.begin() + long(s.offset + s.length))});
  return out;
}

/// Lays sections out as docs/ARCHIVE.md describes, with correct checksums. Version 3: the newest whose Header is
/// the one the library writes without a latent grid (version 4 adds a field to it).
std::vector<uint8_t> assemble(const std::vector<RawSection>& sections, uint32_t version = 3) {
  std::vector<uint8_t> out{'E', 'C', 'N', 'R', 0x89, '\r', '\n', 0x1A};
  putLE(out, version, 4);
  putLE(out, sections.size(), 4);
  uint64_t offset = 16 + 32 * sections.size() + 4;
  for (const RawSection& s : sections) {
    putLE(out, s.type, 4);
    putLE(out, s.array, 4);
    putLE(out, s.scale, 4);
    putLE(out, crc32c(s.payload.data(), s.payload.size()), 4);
    putLE(out, offset, 8);
    putLE(out, s.payload.size(), 8);
    offset += s.payload.size();
  }
  putLE(out, crc32c(out.data(), out.size()), 4);
  for (const RawSection& s : sections) out.insert(out.end(), s.payload.begin(), s.payload.end());
  return out;
}

// Offsets inside payloads, from the layout in docs/ARCHIVE.md.
constexpr size_t kScaleBlockCountAt = 4 * 8 + 4 + 3 * 4 + 4 + 1;  // blockCount is the last fixed field
constexpr size_t kScaleFirstRecordAt = kScaleBlockCountAt + 8;     // version 1: the block records follow

/// A version 1 Scale payload, written from the layout docs/ARCHIVE.md gives for version 1: plain block records
/// and values. The library writes version 2 only, and must keep reading these.
std::vector<uint8_t> v1ScalePayload(const ScaleModel& s, const MlpShape& shape) {
  std::vector<uint8_t> out;
  for (int a = 0; a < 4; ++a) putLE(out, uint64_t(s.dims[a]), 8);
  for (bool h : s.halved) out.push_back(h ? 1 : 0);
  for (int b : s.blockDims) putLE(out, uint32_t(b), 4);
  putLE(out, uint32_t(s.mlpCount), 4);
  out.push_back(uint8_t(s.precision));
  putLE(out, s.blocks.size(), 8);
  auto f32 = [&](float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    putLE(out, b, 4);
  };
  for (const BlockRecord& b : s.blocks) {
    putLE(out, b.block, 4);
    putLE(out, b.t, 4);
    putLE(out, b.mlp, 4);
    f32(b.minValue);
    f32(b.maxValue);
  }
  auto values = [&](const std::vector<float>& v) {
    for (float x : v) {
      if (s.precision == WeightPrecision::Float16) putLE(out, floatToHalf(x), 2);
      else f32(x);
    }
  };
  values(s.latents);
  for (int l = 0; l < shape.layerCount(); ++l) {
    values(s.weights[size_t(l)]);
    values(s.biases[size_t(l)]);
  }
  return out;
}

/// The same model as a version 1 file: the version 2 writer's Header sections (unchanged) and v1 Scale payloads.
std::vector<uint8_t> v1Archive(const Model& m) {
  std::vector<RawSection> sections = splitSections(serializeArchive({m}));
  for (RawSection& s : sections)
    if (s.type == uint32_t(SectionType::Scale)) s.payload = v1ScalePayload(m.scales[s.scale], m.shape);
  return assemble(sections, 1);
}

std::vector<uint8_t> smallArchiveV1() {
  std::mt19937 rng(7);
  return v1Archive(randomModel(rng, smallSpec()));
}
size_t headerTimeCountAt(const std::string& name) { return 4 + name.size() + 4 * 8 + 6 * 8; }

// ---------------------------------------------------------------------------------------------------------------
// Temporary directories

std::string makeTempDir() {
  std::string templ = ::testing::TempDir() + "ecnr_archive_XXXXXX";
  EXPECT_NE(::mkdtemp(&templ[0]), nullptr);
  return templ;
}

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.push_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

void writeText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string readText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

TEST(Checksum, KnownVectors) {
  const char* digits = "123456789";
  EXPECT_EQ(crc32c(reinterpret_cast<const uint8_t*>(digits), 9), 0xE3069283u);
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
  const std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF);  // RFC 3720, B.4
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Checksum, IncrementalEqualsOneShot) {
  const char* text = "The quick brown fox jumps over the lazy dog";
  const auto* p = reinterpret_cast<const uint8_t*>(text);
  const size_t n = std::strlen(text);
  for (size_t cut = 0; cut <= n; ++cut) EXPECT_EQ(crc32c(p + cut, n - cut, crc32c(p, cut)), crc32c(p, n));
}

TEST(Archive, RoundTripFloat32IsBitExact) {
  for (int scales : {2, 3}) {
    std::mt19937 rng(1234 + scales);
    ModelSpec spec;
    spec.scales = scales;
    const Model m = randomModel(rng, spec);
    const std::vector<Model> back = roundTrip({m});
    ASSERT_EQ(back.size(), 1u);
    expectModelBitEqual(m, back[0]);
  }
}

TEST(Archive, RoundTripFloat16StoresRoundedValues) {
  std::mt19937 rng(99);
  ModelSpec spec;
  spec.precision = WeightPrecision::Float16;
  const Model m = randomModel(rng, spec);
  const std::vector<Model> back = roundTrip({m});
  ASSERT_EQ(back.size(), 1u);
  expectModelBitEqual(roundedToHalf(m), back[0]);
  // Storing again what was read is lossless: the values are already halves.
  expectModelBitEqual(back[0], roundTrip(back)[0]);
}

TEST(Archive, Float16ArchiveIsSmallerThanFloat32) {
  std::mt19937 rng(5);
  ModelSpec spec;
  const Model m32 = randomModel(rng, spec);
  Model m16 = m32;
  for (ScaleModel& s : m16.scales) s.precision = WeightPrecision::Float16;
  EXPECT_LT(serializeArchive({m16}).size(), serializeArchive({m32}).size());
}

TEST(Archive, TwoArraysShareOneFile) {
  std::mt19937 rng(21);
  ModelSpec a, b;
  b.name = "temperature";
  b.scales = 2;
  b.precision = WeightPrecision::Float16;
  b.shape = MlpShape{3, 5, 3, 12.0f};
  const Model ma = randomModel(rng, a), mb = randomModel(rng, b);
  const std::vector<Model> back = roundTrip({ma, mb});
  ASSERT_EQ(back.size(), 2u);
  expectModelBitEqual(ma, back[0]);
  expectModelBitEqual(roundedToHalf(mb), back[1]);
}

TEST(Archive, ArraysMustShareDims) {
  std::mt19937 rng(3);
  ModelSpec a, b;
  b.dims = Dims4{20, 16, 12, 5};
  std::vector<Model> arrays{randomModel(rng, a), randomModel(rng, b)};
  arrays[1].meta.arrayName = "second";
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive(arrays); }), "dims"));
  // Under one name the two are time windows of one array (Series.h): both at step 0 overlap.
  arrays[1].meta.arrayName = arrays[0].meta.arrayName;
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive(arrays); }), "overlaps"));
  EXPECT_THROW(serializeArchive({}), Error);
}

TEST(Archive, WriterRefusesInconsistentModels) {
  std::mt19937 rng(4);
  const Model good = randomModel(rng, ModelSpec{});
  auto refused = [&](auto&& edit) {
    Model m = good;
    edit(m);
    EXPECT_THROW(serializeArchive({m}), Error);
  };
  refused([](Model& m) { m.scales[0].latents.pop_back(); });
  refused([](Model& m) { m.scales[1].weights[0].push_back(0.0f); });
  refused([](Model& m) { m.scales[1].biases.pop_back(); });
  refused([](Model& m) { m.scales[0].blocks[0].mlp = uint32_t(m.scales[0].mlpCount); });
  refused([](Model& m) { std::swap(m.scales[0].blocks[0], m.scales[0].blocks[1]); });
  refused([](Model& m) { m.scales[0].dims.x = m.dims.x + 1; });
  refused([](Model& m) { m.meta.times.pop_back(); });
  refused([](Model& m) { m.shape.hidden = 0; });
  refused([](Model& m) { m.scales.clear(); });
}

TEST(Archive, MaxScalesReadsOnlyTheCoarsest) {
  std::mt19937 rng(8);
  ModelSpec spec;
  const Model m = randomModel(rng, spec);
  std::vector<uint8_t> bytes = serializeArchive({m});

  // Corrupt the finest scale: a full read fails, a coarse preview never reads it.
  const std::vector<SectionInfo> sections = summarizeArchive(bytes.data(), bytes.size()).sections;
  ASSERT_EQ(sections.back().type, SectionType::Scale);
  ASSERT_EQ(sections.back().scale, 2u);
  bytes[size_t(sections.back().offset + sections.back().length / 2)] ^= 0x10;
  EXPECT_TRUE(contains(parseError(bytes), "checksum mismatch in section 'scale 2 of array 0'"));

  for (int maxScales : {0, 1, 2}) {
    const std::vector<Model> back = parseArchive(bytes.data(), bytes.size(), maxScales);
    ASSERT_EQ(back.size(), 1u);
    ASSERT_EQ(back[0].scaleCount(), m.scaleCount());  // skipped scales keep their grid, without blocks or MLPs
    for (int s = 0; s < maxScales; ++s) expectScaleBitEqual(m.scales[size_t(s)], back[0].scales[size_t(s)]);
    for (int s = maxScales; s < m.scaleCount(); ++s) {
      EXPECT_EQ(back[0].scales[size_t(s)].dims, m.scales[size_t(s)].dims);
      EXPECT_EQ(back[0].scales[size_t(s)].halved, m.scales[size_t(s)].halved);
      EXPECT_TRUE(back[0].scales[size_t(s)].blocks.empty());
      EXPECT_EQ(back[0].scales[size_t(s)].mlpCount, 0);
    }
  }
  const std::vector<Model> coarse = parseArchive(bytes.data(), bytes.size(), 1);
  EXPECT_EQ(coarse[0].scales[0].dims, (Dims4{5, 4, 3, 3}));  // time keeps the even steps and the last: 6, 4, 3
  EXPECT_EQ(coarse[0].dims, m.dims);
}

TEST(Archive, TruncatedFilesAreRefusedAtEveryCut) {
  const std::vector<uint8_t> bytes = smallArchive();
  ASSERT_NO_THROW(parseArchive(bytes.data(), bytes.size()));
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    // An exact-size copy, so that a read past the cut would touch memory outside the buffer.
    const std::vector<uint8_t> part(bytes.begin(), bytes.begin() + long(cut));
    EXPECT_THROW(parseArchive(part.data(), part.size()), Error) << "cut at " << cut;
    EXPECT_THROW(parseArchive(part.data(), part.size(), 1), Error) << "cut at " << cut;
  }
}

TEST(Archive, EveryBitFlipIsDetected) {
  const std::vector<uint8_t> bytes = smallArchive();
  ASSERT_LT(bytes.size(), 2000u);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = bytes;
      bad[i] ^= uint8_t(1u << bit);
      EXPECT_THROW(parseArchive(bad.data(), bad.size()), Error) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(Archive, WrongMagicIsNotAnArchive) {
  std::vector<uint8_t> bytes = smallArchive();
  bytes[0] = 'X';
  EXPECT_TRUE(contains(parseError(bytes), "not an ECNR archive"));
  const std::vector<uint8_t> text{'h', 'e', 'l', 'l', 'o'};
  EXPECT_TRUE(contains(parseError(text), "not an ECNR archive"));
  EXPECT_TRUE(contains(parseError({}), "not an ECNR archive"));
}

TEST(Archive, NewerVersionIsRefusedByNumber) {
  std::vector<uint8_t> bytes = smallArchive();
  pokeLE(bytes, 8, 7, 4);
  EXPECT_TRUE(contains(parseError(bytes), "archive version 7 is newer than this reader (" +
                                              std::to_string(kArchiveVersion) + ")"));
  pokeLE(bytes, 8, 0, 4);
  EXPECT_TRUE(contains(parseError(bytes), "version 0"));
}

TEST(Archive, TrailingGarbageIsRefused) {
  std::vector<uint8_t> bytes = smallArchive();
  bytes.push_back(0);
  EXPECT_TRUE(contains(parseError(bytes), "trailing bytes after the last section"));
}

TEST(Archive, ChecksumErrorsNameTheSection) {
  const std::vector<uint8_t> good = smallArchive();
  const std::vector<SectionInfo> sections = summarizeArchive(good.data(), good.size()).sections;
  const char* names[] = {"header of array 0", "scale 0 of array 0", "scale 1 of array 0"};
  ASSERT_EQ(sections.size(), 3u);
  for (size_t i = 0; i < sections.size(); ++i) {
    std::vector<uint8_t> bad = good;
    bad[size_t(sections[i].offset)] ^= 1;
    EXPECT_TRUE(contains(parseError(bad), std::string("checksum mismatch in section '") + names[i] + "'"))
        << parseError(bad);
  }
  std::vector<uint8_t> bad = good;
  bad[20] ^= 1;  // inside the table of contents
  EXPECT_TRUE(contains(parseError(bad), "table of contents"));
}

TEST(Archive, HostileBlockCountIsRefusedWithoutAllocating) {
  std::vector<RawSection> sections = splitSections(smallArchiveV1());
  pokeLE(sections[1].payload, kScaleBlockCountAt, uint64_t(1) << 40, 8);
  std::vector<uint8_t> bytes = assemble(sections, 1);
  ASSERT_LT(bytes.size(), 1024u);
  EXPECT_TRUE(contains(parseError(bytes), "archive section 'scale 0 of array 0' is truncated")) << parseError(bytes);
  // Version 2: the block count must match the kept-block bitmap, checked before the table is allocated.
  sections = splitSections(smallArchive());
  pokeLE(sections[1].payload, kScaleBlockCountAt, uint64_t(1) << 40, 8);
  bytes = assemble(sections);
  EXPECT_TRUE(contains(parseError(bytes), "'scale 0 of array 0' keeps a number of blocks")) << parseError(bytes);
}

TEST(Archive, Version1FilesAreStillRead) {
  std::mt19937 rng(7);
  for (WeightPrecision p : {WeightPrecision::Float32, WeightPrecision::Float16}) {
    ModelSpec spec = smallSpec();
    spec.precision = p;
    const Model m = roundedToHalf(randomModel(rng, spec));
    const std::vector<uint8_t> v1 = v1Archive(m);
    expectModelBitEqual(m, parseArchive(v1.data(), v1.size())[0]);
    EXPECT_EQ(summarizeArchive(v1.data(), v1.size()).bytes.total(), v1.size());
  }
}

// An append to a version-1 file cannot copy its Scale payloads into a newer file: it is written anew, the old
// part bit for bit the same model.
TEST(Archive, AppendToAVersion1FileWritesItAnew) {
  std::mt19937 rng(9);
  const Model m = roundedToHalf(randomModel(rng, smallSpec()));
  const std::vector<uint8_t> v1 = v1Archive(m);
  Model next = m;
  next.firstStep = m.dims.t;
  for (double& t : next.meta.times) t += 1000.0;
  const std::vector<uint8_t> out = appendToArchive(v1.data(), v1.size(), {next});
  EXPECT_GE(summarizeArchive(out.data(), out.size()).version, 3u);
  const std::vector<Model> back = parseArchive(out.data(), out.size());
  ASSERT_EQ(back.size(), 2u);
  expectModelBitEqual(m, back[0]);
  EXPECT_EQ(back[1].firstStep, m.dims.t);
}

TEST(Archive, HostileCountsAreRefused) {
  const std::vector<RawSection> good = splitSections(smallArchiveV1());
  const size_t timeCountAt = headerTimeCountAt(smallSpec().name);
  auto refusedWith = [&](const std::string& part, auto&& edit) {
    std::vector<RawSection> sections = good;
    edit(sections);
    const std::string message = parseError(assemble(sections, 1));
    EXPECT_TRUE(contains(message, part)) << message;
  };
  refusedWith("'header of array 0' is truncated", [&](auto& s) { pokeLE(s[0].payload, timeCountAt, ~0ull, 8); });
  refusedWith("'header of array 0' is truncated", [&](auto& s) { pokeLE(s[0].payload, 0, 0xFFFFFFFFu, 4); });
  refusedWith("1 time values for 3 time steps", [&](auto& s) {
    pokeLE(s[0].payload, timeCountAt, 1, 8);
    const auto second = s[0].payload.begin() + long(timeCountAt + 16);
    s[0].payload.erase(second, second + 16);  // keep the payload consistent with the new count
  });
  // latentDim follows the 3 time values and dataMin/dataMax.
  const size_t latentAt = timeCountAt + 8 + 3 * 8 + 8;
  refusedWith("latent size", [&](auto& s) { pokeLE(s[0].payload, latentAt, 1000, 4); });
  refusedWith("latent size", [&](auto& s) { pokeLE(s[0].payload, latentAt, 0xFFFFFFFFu, 4); });
  refusedWith("hidden width", [&](auto& s) { pokeLE(s[0].payload, latentAt + 4, 0, 4); });
  refusedWith("scale count", [&](auto& s) { pokeLE(s[0].payload, latentAt + 16, 17, 4); });
  refusedWith("declares 3 scales", [&](auto& s) { pokeLE(s[0].payload, latentAt + 16, 3, 4); });
  refusedWith("invalid dims", [&](auto& s) { pokeLE(s[1].payload, 0, 0, 8); });
  refusedWith("exceed the array", [&](auto& s) { pokeLE(s[1].payload, 8, 1000, 8); });
  refusedWith("block size", [&](auto& s) { pokeLE(s[1].payload, 36, 0, 4); });
  refusedWith("precision", [&](auto& s) { s[1].payload[kScaleBlockCountAt - 1] = 7; });
  refusedWith("'scale 0 of array 0' is truncated", [&](auto& s) { pokeLE(s[1].payload, 48, 0x7FFFFFFF, 4); });
  refusedWith("names MLP", [&](auto& s) { pokeLE(s[1].payload, kScaleFirstRecordAt + 8, 1000, 4); });
  refusedWith("names time step", [&](auto& s) { pokeLE(s[1].payload, kScaleFirstRecordAt + 4, 1000, 4); });
  refusedWith("names block", [&](auto& s) { pokeLE(s[1].payload, kScaleFirstRecordAt, 1000, 4); });
  refusedWith("unexpected trailing bytes", [&](auto& s) { s[2].payload.push_back(0); });
  refusedWith("truncated", [&](auto& s) { s[2].payload.pop_back(); });
  refusedWith("is missing scale 0", [&](auto& s) { s.erase(s.begin() + 1); });
  refusedWith("declares 2 scales", [&](auto& s) { s.pop_back(); });
  refusedWith("no header", [&](auto& s) { s.erase(s.begin()); });
  refusedWith("appears twice", [&](auto& s) { s.push_back(s[2]); });
  refusedWith("holds no arrays", [&](auto& s) { s.clear(); });
}

TEST(Archive, HostileSectionCountIsRefused) {
  std::vector<uint8_t> bytes = smallArchive();
  pokeLE(bytes, 12, 0xFFFFFFFFu, 4);
  EXPECT_TRUE(contains(parseError(bytes), "sections but the file can hold")) << parseError(bytes);
}

TEST(Archive, UnknownSectionsAreSkipped) {
  std::mt19937 rng(7);
  const Model m = randomModel(rng, smallSpec());
  std::vector<RawSection> sections = splitSections(serializeArchive({m}));
  sections.insert(sections.begin() + 1, RawSection{99, 0, 0, {1, 2, 3, 4, 5}});
  sections.push_back(RawSection{1000, 12345, 7, {}});
  const std::vector<uint8_t> bytes = assemble(sections);
  expectModelBitEqual(m, parseArchive(bytes.data(), bytes.size())[0]);
  const Model preview = parseArchive(bytes.data(), bytes.size(), 1)[0];  // finer scales: grid only
  EXPECT_EQ(preview.scaleCount(), m.scaleCount());
  EXPECT_EQ(preview.scales[0].blocks.size(), m.scales[0].blocks.size());
  EXPECT_TRUE(preview.scales[1].blocks.empty());
  const ArchiveSummary summary = summarizeArchive(bytes.data(), bytes.size());
  EXPECT_EQ(summary.sections.size(), 5u);
  EXPECT_EQ(summary.bytes.total(), bytes.size());
}

TEST(Archive, SummaryAccountsForEveryByte) {
  std::mt19937 rng(11);
  ModelSpec spec;
  spec.precision = WeightPrecision::Float16;
  const Model m = randomModel(rng, spec);
  const std::vector<uint8_t> bytes = serializeArchive({m});
  const ArchiveSummary summary = summarizeArchive(bytes.data(), bytes.size());
  EXPECT_EQ(summary.version, 2u);  // version 3 only with a correction (test_quality.cpp)
  EXPECT_EQ(summary.fileBytes, bytes.size());
  EXPECT_EQ(summary.bytes.total(), bytes.size());
  ASSERT_EQ(summary.sections.size(), 4u);
  EXPECT_EQ(summary.bytes.toc, 4u * 32u + 4u);
  // Version 2, plain float16 values: each group is a kind byte and its values (no +0.0, so no mask).
  uint64_t latents = 0, weights = 0;
  for (const ScaleModel& s : m.scales) {
    latents += 1 + 2 * s.latents.size();
    for (size_t l = 0; l < s.weights.size(); ++l) weights += 2 + 2 * (s.weights[l].size() + s.biases[l].size());
  }
  EXPECT_EQ(summary.bytes.latents, latents);
  EXPECT_EQ(summary.bytes.weights, weights);
  EXPECT_EQ(summary.bytes.masks + summary.bytes.codebooks + summary.bytes.indices, 0u);
  EXPECT_GE(summary.bytes.blockTable, 3u * 62u);
}

TEST(Archive, WriteThenReadFile) {
  const std::string dir = makeTempDir();
  const std::string path = dir + "/model.ecnr";
  std::mt19937 rng(13);
  const Model m = randomModel(rng, ModelSpec{});
  writeArchive({m}, path);
  expectModelBitEqual(m, readArchive(path)[0]);
  const Model preview = readArchive(path, 1)[0];  // finer scales: grid only
  EXPECT_EQ(preview.scaleCount(), m.scaleCount());
  EXPECT_TRUE(preview.scales.back().blocks.empty());
  const ArchiveSummary summary = summarizeArchive(path);
  EXPECT_EQ(summary.bytes.total(), summary.fileBytes);
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"model.ecnr"});
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(Archive, WriteReplacesContentAndLeavesNoTemporaries) {
  const std::string dir = makeTempDir();
  const std::string path = dir + "/model.ecnr";
  writeText(path, "old content");
  std::mt19937 rng(17);
  const Model m = randomModel(rng, smallSpec());
  writeArchive({m}, path);
  expectModelBitEqual(m, readArchive(path)[0]);
  EXPECT_EQ(listDir(dir), std::vector<std::string>{"model.ecnr"});
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(Archive, FailedWriteLeavesTheOldFile) {
  const std::string dir = makeTempDir();
  const std::string path = dir + "/model.ecnr";
  writeText(path, "old content");
  std::mt19937 rng(19);
  Model m = randomModel(rng, smallSpec());
  m.scales[0].latents.clear();  // refused before anything is written
  EXPECT_THROW(writeArchive({m}, path), Error);
  EXPECT_EQ(readText(path), "old content");

  // A failure after the temporary is written: renaming a file over a non-empty directory fails.
  const std::string blocked = dir + "/blocked";
  ASSERT_EQ(::mkdir(blocked.c_str(), 0755), 0);
  writeText(blocked + "/keep", "x");
  const uint8_t data[] = {1, 2, 3};
  EXPECT_TRUE(contains(errorOf([&] { writeFileAtomic(blocked, data, sizeof data); }), "cannot write " + blocked));
  EXPECT_EQ(readText(blocked + "/keep"), "x");
  std::vector<std::string> names = listDir(dir);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"blocked", "model.ecnr"}));
  ::unlink((blocked + "/keep").c_str());
  ::rmdir(blocked.c_str());
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(Archive, WriteIntoMissingDirectoryFails) {
  const std::string dir = makeTempDir();
  const std::string missing = dir + "/missing";
  std::mt19937 rng(23);
  const Model m = randomModel(rng, smallSpec());
  EXPECT_TRUE(contains(errorOf([&] { writeArchive({m}, missing + "/model.ecnr"); }), "cannot write " + missing));
  EXPECT_FALSE(exists(missing));
  EXPECT_TRUE(listDir(dir).empty());
  ::rmdir(dir.c_str());
}

TEST(Archive, ReadMissingFileNamesThePath) {
  const std::string path = ::testing::TempDir() + "ecnr_no_such_file.ecnr";
  const std::string message = errorOf([&] { readArchive(path); });
  EXPECT_TRUE(contains(message, "cannot open " + path)) << message;
  EXPECT_THROW(summarizeArchive(path), Error);
}

TEST(Archive, WrittenFileHasOrdinaryPermissions) {
  const std::string dir = makeTempDir();
  const std::string path = dir + "/model.ecnr";
  const uint8_t data[] = {1, 2, 3};
  writeFileAtomic(path, data, sizeof data);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  // mkstemp would leave 0600; a plain create honours the umask, so others can at least read it by default.
  const mode_t mask = ::umask(022);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}
