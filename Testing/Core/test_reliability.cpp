// Reliability (issue 7) at the library level: bad inputs, hostile archives that parse, failed writes, cancel, and
// the memory estimate. Archive corruption (truncation, bit flips, hostile counts) is in test_archive.cpp; the same
// cases through the `ecnr` program are in test_cli.cpp. Fields are tiny and training runs 2 epochs: these tests
// check what happens, not how well it compresses.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "ecnr/Archive.h"
#include "ecnr/Checksum.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/MemoryEstimate.h"
#include "ecnr/Pyramid.h"

using namespace ecnr;

namespace {

EncoderSettings tinySettings() {
  EncoderSettings s = presetSettings("fast");
  s.scales = 2;
  s.epochs = {2, 2};
  s.blockDims = {8, 8, 8};
  s.minAxisLength = 2;
  s.threads = 2;
  s.verbose = false;
  return s;
}

Field smoothField(const Dims4& d, float phase = 0.0f) {
  Field f(d);
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t z = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x)
          f.at(x, y, z, t) = std::sin(0.6f * float(x) + phase + 0.2f * float(t)) * std::cos(0.4f * float(y)) +
                             0.05f * float(z);
  return f;
}

Model encodeTiny(const Field& f, const GridMeta& meta = GridMeta{}, EncoderSettings s = tinySettings()) {
  return encode(f, meta, s, Progress());
}

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

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool allFinite(const Field& f) {
  return std::all_of(f.values.begin(), f.values.end(), [](float v) { return std::isfinite(v); });
}

std::vector<Model> throughBytes(const std::vector<Model>& arrays) {
  const std::vector<uint8_t> bytes = serializeArchive(arrays);
  return parseArchive(bytes.data(), bytes.size());
}

/// Recomputes every payload CRC and the TOC CRC (docs/ARCHIVE.md), so an edited field is what the reader sees.
void fixChecksums(std::vector<uint8_t>& b) {
  auto get = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(b[at + size_t(i)]) << (8 * i);
    return v;
  };
  auto put = [&](size_t at, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b[at + size_t(i)] = uint8_t(v >> (8 * i));
  };
  const size_t count = size_t(get(12, 4));
  for (size_t i = 0; i < count; ++i) {
    const size_t e = 16 + 32 * i;
    put(e + 12, crc32c(b.data() + get(e + 16, 8), size_t(get(e + 24, 8))), 4);
  }
  put(16 + 32 * count, crc32c(b.data(), 16 + 32 * count), 4);
}

struct TempDir {
  std::string path;
  TempDir() {
    path = ::testing::TempDir() + "ecnr_reliability_XXXXXX";
    EXPECT_NE(::mkdtemp(&path[0]), nullptr);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

void writeText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string readText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// A model the library would write for a constant field of any dims: one scale, no effective blocks. Costs no
/// training and no memory proportional to the grid, so it can claim any size.
Model constantModel(const Dims4& dims, float value) {
  Model m;
  m.dims = dims;
  m.dataMin = m.dataMax = value;
  m.shape = MlpShape{4, 8, 2, 30.0f};
  ScaleModel s;
  s.dims = dims;
  s.blockDims = {int(std::min<int64_t>(16, dims.x)), int(std::min<int64_t>(16, dims.y)),
                 int(std::min<int64_t>(16, dims.z))};
  s.mlpCount = 0;
  s.weights.assign(size_t(m.shape.layerCount()), {});
  s.biases.assign(size_t(m.shape.layerCount()), {});
  m.scales.push_back(s);
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Bad input

TEST(Reliability, NonFiniteInputIsRefusedNamingTheVoxel) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY}) {
    Field f = smoothField(Dims4{8, 8, 8, 2});
    f.at(3, 5, 7, 1) = bad;
    const std::string message = errorOf([&] { encodeTiny(f); });
    EXPECT_TRUE(contains(message, "non-finite")) << message;
    EXPECT_TRUE(contains(message, "x=3 y=5 z=7 t=1")) << message;
  }
}

TEST(Reliability, ConstantFieldSurvivesTheArchiveExactly) {
  const Field f(Dims4{8, 8, 8, 2}, -2.75f);
  const std::vector<Model> back = throughBytes({encodeTiny(f)});
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].dataMin, back[0].dataMax);
  const Field d = Decoder(back[0]).decodeAll();
  EXPECT_EQ(d.dims, f.dims);
  for (float v : d.values) ASSERT_EQ(v, -2.75f);
}

TEST(Reliability, TwoDimensionalImageAndSingleTimeStepEncode) {
  for (const Dims4 dims : {Dims4{16, 12, 1, 1}, Dims4{8, 8, 8, 1}, Dims4{1, 1, 1, 1}}) {
    SCOPED_TRACE(dims.str());
    const Field f = smoothField(dims);
    const std::vector<Model> back = throughBytes({encodeTiny(f)});
    const Field d = Decoder(back[0]).decodeAll();
    EXPECT_EQ(d.dims, dims);
    EXPECT_TRUE(allFinite(d));
    EXPECT_EQ(Decoder(back[0]).decodeStep(0).dims, (Dims4{dims.x, dims.y, dims.z, 1}));
  }
}

TEST(Reliability, DimsSmallerThanABlockAreClampedToTheGrid) {
  const Field f = smoothField(Dims4{5, 3, 2, 2});
  EncoderSettings s = tinySettings();
  s.blockDims = {16, 16, 16};
  const Model m = encodeTiny(f, GridMeta{}, s);
  for (const ScaleModel& sc : m.scales)
    for (int a = 0; a < 3; ++a) EXPECT_LE(sc.blockDims[size_t(a)], f.dims[a]);
  const Field d = Decoder(throughBytes({m})[0]).decodeAll();
  EXPECT_EQ(d.dims, f.dims);
  EXPECT_TRUE(allFinite(d));
}

TEST(Reliability, OddDimsFollowThePyramidThroughTheArchive) {
  const Field f = smoothField(Dims4{7, 5, 3, 3});
  EncoderSettings s = tinySettings();
  s.scales = 3;
  s.epochs = {2, 2, 2};
  s.blockDims = {4, 4, 4};
  const Model m = encodeTiny(f, GridMeta{}, s);
  const Model back = throughBytes({m})[0];
  ASSERT_EQ(back.scales.back().dims, f.dims);
  for (size_t p = 0; p + 1 < back.scales.size(); ++p)
    EXPECT_EQ(back.scales[p].dims, downsampledDims(back.scales[p + 1].dims, back.scales[p].halved));
  EXPECT_EQ(Decoder(back).decodeAll().values, Decoder(m).decodeAll().values);
}

TEST(Reliability, VeryLargeDimsAreHandledByArithmeticNotAllocation) {
  // 2^62 voxels: the count fits in 64 bits, 4 bytes per voxel do not.
  EXPECT_TRUE(contains(errorOf([] { validateDims(Dims4{int64_t(1) << 31, int64_t(1) << 31, 1, 1}); }), "byte size"));
  EXPECT_TRUE(contains(errorOf([] { validateDims(Dims4{int64_t(1) << 62, 4, 1, 1}); }), "overflows"));
  // 10^16 voxels is a valid grid; estimating its encode must not allocate it, and must not overflow either.
  const Dims4 huge{100000, 100000, 100000, 10};
  EncoderSettings s = tinySettings();
  s.blockDims = {16, 16, 16};
  const ResolvedSettings r = resolveSettings(s, huge);
  const uint64_t need = estimateEncoderPeakBytes(huge, r);
  EXPECT_GE(need, uint64_t(huge.count()) * 4 * 2);
  EXPECT_TRUE(contains(errorOf([&] { checkMemory(need, uint64_t(1) << 40, "compressing", "the limit"); }),
                       "compressing needs about"));
}

TEST(Reliability, ArchiveClaimingAHugeGridIsSmallAndItsDecodeIsRefusedUpFront) {
  // A legitimate shape (a constant field of 10^15 voxels has no blocks), so the reader accepts it; what protects
  // a reader is the decode estimate, checked before Decoder allocates the grid.
  const Model m = constantModel(Dims4{100000, 100000, 100000, 1}, 1.0f);
  const std::vector<uint8_t> bytes = serializeArchive({m});
  EXPECT_LT(bytes.size(), 1024u);
  const std::vector<Model> back = parseArchive(bytes.data(), bytes.size());
  const uint64_t need = estimateDecoderPeakBytes(back[0]);
  EXPECT_GE(need, uint64_t(1e15) * 4);
  const uint64_t available = availableMemoryBytes();
  ASSERT_GT(available, 0u) << "/proc/meminfo has no MemAvailable";
  const std::string message = errorOf([&] { checkMemory(need, available, "decoding", "the available memory"); });
  EXPECT_TRUE(contains(message, "PiB")) << message;
  // The decoder itself refuses, for every entry point a reader uses, before allocating.
  Decoder dec(back[0]);
  EXPECT_TRUE(contains(errorOf([&] { dec.decodeAll(); }), "memory"));
  EXPECT_TRUE(contains(errorOf([&] { dec.decodeStep(0); }), "memory"));
  EXPECT_TRUE(contains(errorOf([&] { dec.decodeRegion(0, Extent{0, 1, 0, 1, 0, 1}); }), "memory"));
}

TEST(Reliability, NonUniformTimeValuesAndGridSurviveTheArchive) {
  GridMeta meta;
  meta.times = {0.0, 0.001, 0.5, 17.25};
  meta.spacing = {0.5, 1.25, 3.0};
  meta.origin = {-10.0, 0.0, 1e6};
  meta.arrayName = "salinity";
  TempDir dir;
  const std::string path = dir.path + "/t.ecnr";
  writeArchive({encodeTiny(smoothField(Dims4{8, 8, 4, 4}), meta)}, path);
  const Model back = readArchive(path).at(0);
  EXPECT_EQ(back.meta.times, meta.times);
  EXPECT_EQ(back.meta.spacing, meta.spacing);
  EXPECT_EQ(back.meta.origin, meta.origin);
  EXPECT_EQ(back.meta.arrayName, "salinity");
  // A time value that is not finite would give ParaView a broken time axis: refused when writing (and reading).
  Model bad = back;
  bad.meta.times[2] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive({bad}); }), "time value is not finite"));
}

TEST(Reliability, SeveralArraysComeBackFromOneFileInOrder) {
  GridMeta a, b;
  a.arrayName = "pressure";
  b.arrayName = "temperature";
  const Dims4 dims{8, 8, 8, 2};
  TempDir dir;
  const std::string path = dir.path + "/two.ecnr";
  writeArchive({encodeTiny(smoothField(dims, 0.0f), a), encodeTiny(Field(dims, 5.0f), b)}, path);
  const std::vector<Model> back = readArchive(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].meta.arrayName, "pressure");
  EXPECT_EQ(back[1].meta.arrayName, "temperature");
  const Field second = Decoder(back[1]).decodeAll();
  for (float v : second.values) ASSERT_EQ(v, 5.0f);
  EXPECT_NE(Decoder(back[0]).decodeAll().values, second.values);
}

// ---------------------------------------------------------------------------------------------------------------
// What the reader refuses now (found by fuzzing the decoder): models that parse but would decode out of bounds or
// to NaN. The writer applies the same rules.

TEST(Reliability, ScalesThatDoNotFollowThePyramidAreRefused) {
  Model m = encodeTiny(smoothField(Dims4{8, 8, 8, 4}));
  ASSERT_EQ(m.scaleCount(), 2);
  Model bad = m;
  bad.scales[0].halved = {false, false, false, false};  // the coarse dims no longer follow from the fine ones
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive({bad}); }), "halving scale 1 gives"));
  bad = m;
  bad.scales[1].dims.x = 4;  // the finest scale must have the array's grid
  EXPECT_THROW(serializeArchive({bad}), Error);

  // The same edit made in the bytes, with valid checksums: the reader refuses it too.
  std::vector<uint8_t> bytes = serializeArchive({m});
  const std::vector<SectionInfo> sections = summarizeArchive(bytes.data(), bytes.size()).sections;
  ASSERT_EQ(sections[1].scale, 0u);
  bytes[size_t(sections[1].offset) + 32] = 0;  // the coarsest scale's "x halved" flag
  fixChecksums(bytes);
  const std::string message = errorOf([&] { parseArchive(bytes.data(), bytes.size()); });
  EXPECT_TRUE(contains(message, "halving scale 1 gives")) << message;
}

TEST(Reliability, NaNParametersAndBlocksLargerThanTheGridAreRefused) {
  const Model m = encodeTiny(smoothField(Dims4{8, 8, 8, 2}));
  Model bad = m;
  bad.scales[1].weights[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive({bad}); }), "hold a non-finite value"));
  bad = m;
  for (ScaleModel& s : bad.scales) s.blockDims[0] = 9;  // wider than the 8-voxel grid
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive({bad}); }), "block size 9 is invalid"));
  bad = m;
  bad.dataMin = INFINITY;
  EXPECT_TRUE(contains(errorOf([&] { serializeArchive({bad}); }), "data range"));

  // A NaN weight (float16 0x7E00) written into the bytes with valid checksums (plain values: the last bias is the
  // last two bytes of the file).
  EncoderSettings plain = tinySettings();
  plain.quantBits = 0;
  plain.boundaryCnn = false;
  std::vector<uint8_t> bytes = serializeArchive({encodeTiny(smoothField(Dims4{8, 8, 8, 2}), GridMeta{}, plain)});
  const SectionInfo last = summarizeArchive(bytes.data(), bytes.size()).sections.back();
  ASSERT_EQ(m.scales.back().precision, WeightPrecision::Float16);
  const size_t at = size_t(last.offset + last.length) - 2;  // the last bias
  bytes[at] = 0x00;
  bytes[at + 1] = 0x7E;
  fixChecksums(bytes);
  const std::string message = errorOf([&] { parseArchive(bytes.data(), bytes.size()); });
  EXPECT_TRUE(contains(message, "scale 1 of array 0") && contains(message, "non-finite")) << message;
}

// ---------------------------------------------------------------------------------------------------------------
// Failed writes and cancel: the output path holds the previous file or nothing.

TEST(Reliability, FullDiskFailsTheWriteAndKeepsThePreviousFile) {
  // A real failing write(): the file size limit (RLIMIT_FSIZE) makes write() fail with EFBIG once the file would
  // pass it, like a full disk. Done in a child process, with SIGXFSZ ignored so the write returns the error.
  TempDir dir;
  const std::string path = dir.path + "/model.ecnr";
  writeText(path, "previous archive");
  const std::vector<uint8_t> bytes = serializeArchive({encodeTiny(smoothField(Dims4{8, 8, 8, 2}))});
  ASSERT_GT(bytes.size(), 2000u);
  int pipeFds[2];
  ASSERT_EQ(::pipe(pipeFds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipeFds[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{1000, 1000};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    std::string message = "no error";
    try {
      writeFileAtomic(path, bytes.data(), bytes.size());
    } catch (const Error& e) {
      message = e.what();
    }
    (void)!::write(pipeFds[1], message.data(), message.size());
    ::_exit(0);
  }
  ::close(pipeFds[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = ::read(pipeFds[0], buf, sizeof buf)) > 0;) message.append(buf, size_t(n));
  ::close(pipeFds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_TRUE(contains(message, "cannot write " + path + ": File too large")) << message;
  EXPECT_EQ(readText(path), "previous archive");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"model.ecnr"});  // the temporary is gone
}

TEST(Reliability, CancelFromTheProgressCallbackStopsMidwayAndWritesNothing) {
  TempDir dir;
  const std::string path = dir.path + "/model.ecnr";
  writeText(path, "previous archive");
  EncoderSettings s = tinySettings();
  s.epochs = {20, 20};
  int reports = 0;
  Progress* self = nullptr;
  Progress progress([&](double, const std::string&) {
    if (++reports == 3) self->cancel();
  });
  self = &progress;
  // What the CLI and the writer do: encode, then write; a cancel leaves the file as it was.
  EXPECT_THROW(writeArchive({encode(smoothField(Dims4{8, 8, 8, 2}), GridMeta{}, s, progress)}, path), Cancelled);
  EXPECT_GE(reports, 3);
  EXPECT_LT(reports, 10);  // stopped within an epoch, not at the end
  EXPECT_EQ(readText(path), "previous archive");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"model.ecnr"});
}

// ---------------------------------------------------------------------------------------------------------------
// Memory estimate

TEST(Reliability, MemoryEstimateGrowsWithTheGridAndTheSettings) {
  const EncoderSettings s = tinySettings();
  const Dims4 small{32, 32, 32, 4}, large{64, 64, 64, 8};
  const uint64_t a = estimateEncoderPeakBytes(small, resolveSettings(s, small));
  const uint64_t b = estimateEncoderPeakBytes(large, resolveSettings(s, large));
  EXPECT_GT(b, a);
  // At least the input held by the caller (the rest grows too, but a fixed part, the boundary CNN's patches and
  // workspace, can be the peak of a small grid).
  EXPECT_GE(b - a, uint64_t(large.count() - small.count()) * 4);
  // Read from a mapped file (FieldSource.h), the input itself is not held: one input's worth less.
  EXPECT_EQ(b - estimateEncoderPeakBytes(large, resolveSettings(s, large), false), uint64_t(large.count()) * 4);
  EncoderSettings quality = s;  // but the quality modes read it into memory
  quality.mode = QualityMode::MaxError;
  EXPECT_EQ(estimateEncoderPeakBytes(large, resolveSettings(quality, large), false),
            estimateEncoderPeakBytes(large, resolveSettings(quality, large), true));
  EncoderSettings wide = s;
  wide.hidden = 256;
  EXPECT_GT(estimateEncoderPeakBytes(large, resolveSettings(wide, large)), b);
  const Model m = constantModel(Dims4{64, 64, 64, 8}, 0.0f);
  EXPECT_GE(estimateDecoderPeakBytes(m), uint64_t(m.dims.count()) * 4);
}

TEST(Reliability, ByteSizesParseWithSuffixes) {
  EXPECT_EQ(parseByteSize("1048576"), 1048576u);
  EXPECT_EQ(parseByteSize("512K"), 512u * 1024);
  EXPECT_EQ(parseByteSize("300M"), 300ull << 20);
  EXPECT_EQ(parseByteSize("1.5G"), 3ull << 29);
  EXPECT_EQ(parseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(parseByteSize("1t"), 1ull << 40);
  for (const char* bad : {"", "G", "12Q", "-5M", "0", "nan", "1e30G"}) EXPECT_THROW(parseByteSize(bad), Error) << bad;
  EXPECT_EQ(formatBytes(512), "512 bytes");
  EXPECT_EQ(formatBytes(3ull << 29), "1.5 GiB");
}
