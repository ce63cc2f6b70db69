#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "ecnr/VolumeIO.h"

using namespace ecnr;
namespace fs = std::filesystem;

namespace {

/// A fresh folder per test, removed afterwards.
class VolumeIO : public ::testing::Test {
protected:
  fs::path dir;
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir = fs::temp_directory_path() / ("ecnr_volumeio_" + std::to_string(getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string path(const std::string& file) const { return (dir / file).string(); }
};

Field sample(const Dims4& d) {
  Field f(d);
  for (size_t i = 0; i < f.values.size(); ++i) f.values[i] = float(i) * 0.5f - 3.25f;
  return f;
}

void writeBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void writeText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

/// A .npy file built by hand: magic, version, header length, dict padded to 64 bytes, then `data`.
std::vector<uint8_t> handMadeNpy(const std::string& descr, const std::string& shape, const std::vector<uint8_t>& data,
                                 bool fortran = false, int version = 1) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                     ", 'shape': " + shape + ", }";
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + dict.size() + 1) % 64 != 0) dict.push_back(' ');
  dict.push_back('\n');
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(version), 0};
  for (size_t i = 0; i < prefix - 8; ++i) out.push_back(uint8_t(dict.size() >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

/// Little-endian bytes of each value (the test machine is little-endian, as numpy's '<' types are).
template <class T>
std::vector<uint8_t> bytesOf(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_F(VolumeIO, RawRoundTrip) {
  const Field f = sample(Dims4{5, 4, 3, 2});
  writeRaw(f, path("a.raw"));
  EXPECT_EQ(fs::file_size(path("a.raw")), f.values.size() * 4);
  const Field g = readRaw(path("a.raw"), f.dims);
  EXPECT_EQ(g.dims, f.dims);
  EXPECT_EQ(g.values, f.values);
}

TEST_F(VolumeIO, RawOfTheWrongSizeNamesPathAndByteCounts) {
  writeRaw(sample(Dims4{5, 4, 3, 2}), path("a.raw"));
  const std::string msg = errorOf([&] { readRaw(path("a.raw"), Dims4{5, 4, 3, 3}); });
  EXPECT_NE(msg.find(path("a.raw")), std::string::npos) << msg;
  EXPECT_NE(msg.find("480"), std::string::npos) << msg;  // actual
  EXPECT_NE(msg.find("720"), std::string::npos) << msg;  // expected
  EXPECT_THROW(readRaw(path("missing.raw"), Dims4{2, 2, 2, 1}), Error);
}

TEST_F(VolumeIO, NpyRoundTrip4DAnd3D) {
  const Field f4 = sample(Dims4{5, 4, 3, 2});
  writeNpy(f4, path("a.npy"));
  const Field g4 = readNpy(path("a.npy"));
  EXPECT_EQ(g4.dims, f4.dims);
  EXPECT_EQ(g4.values, f4.values);
  EXPECT_EQ((fs::file_size(path("a.npy")) - f4.values.size() * 4) % 64, 0u) << "data not 64-byte aligned";

  const Field f3 = sample(Dims4{6, 5, 4, 1});
  writeNpy(f3, path("b.npy"));
  std::ifstream in(path("b.npy"), std::ios::binary);
  std::string head(128, '\0');
  in.read(&head[0], 128);
  EXPECT_NE(head.find("'shape': (4, 5, 6)"), std::string::npos) << head;
  EXPECT_EQ(readNpy(path("b.npy")).values, f3.values);
}

TEST_F(VolumeIO, NpyInt16ShapeYX) {
  const std::vector<int16_t> v = {-3, 0, 7, 32767, -32768, 12};
  writeBytes(path("i2.npy"), handMadeNpy("<i2", "(2, 3)", bytesOf(v)));
  const Field f = readNpy(path("i2.npy"));
  EXPECT_EQ(f.dims, (Dims4{3, 2, 1, 1}));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(f.values[i], float(v[i]));
  EXPECT_EQ(f.at(0, 1, 0, 0), 32767.0f);
}

TEST_F(VolumeIO, NpyFloat64Version2AndUint8) {
  const std::vector<double> v = {0.5, -1.25, 3.0, 1e10, -0.0, 2.75, 8.0, 9.5};
  writeBytes(path("f8.npy"), handMadeNpy("<f8", "(2, 2, 2)", bytesOf(v), false, 2));
  const Field f = readNpy(path("f8.npy"));
  EXPECT_EQ(f.dims, (Dims4{2, 2, 2, 1}));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(f.values[i], float(v[i]));

  writeBytes(path("u1.npy"), handMadeNpy("|u1", "(3,)", {0, 128, 255}));
  const Field u = readNpy(path("u1.npy"));
  EXPECT_EQ(u.dims, (Dims4{3, 1, 1, 1}));
  EXPECT_EQ(u.values, (std::vector<float>{0, 128, 255}));
}

TEST_F(VolumeIO, NpyRefusals) {
  std::vector<uint8_t> bad = handMadeNpy("<f4", "(2,)", bytesOf(std::vector<float>{1, 2}));
  bad[1] = 'X';
  writeBytes(path("magic.npy"), bad);
  EXPECT_NE(errorOf([&] { readNpy(path("magic.npy")); }).find("magic"), std::string::npos);

  writeBytes(path("fortran.npy"), handMadeNpy("<f4", "(2, 2)", bytesOf(std::vector<float>{1, 2, 3, 4}), true));
  EXPECT_NE(errorOf([&] { readNpy(path("fortran.npy")); }).find("Fortran"), std::string::npos);

  writeBytes(path("big.npy"), handMadeNpy(">f4", "(2,)", bytesOf(std::vector<float>{1, 2})));
  EXPECT_NE(errorOf([&] { readNpy(path("big.npy")); }).find(">f4"), std::string::npos);

  writeBytes(path("c8.npy"), handMadeNpy("<c8", "(1,)", std::vector<uint8_t>(8)));
  EXPECT_THROW(readNpy(path("c8.npy")), Error);

  writeBytes(path("5d.npy"), handMadeNpy("<f4", "(1, 1, 1, 1, 2)", bytesOf(std::vector<float>{1, 2})));
  EXPECT_THROW(readNpy(path("5d.npy")), Error);

  writeBytes(path("short.npy"), handMadeNpy("<f4", "(3, 3)", bytesOf(std::vector<float>{1, 2})));
  EXPECT_THROW(readNpy(path("short.npy")), Error);
}

TEST_F(VolumeIO, ParseDims) {
  EXPECT_EQ(parseDims("64,32,16"), (Dims4{64, 32, 16, 1}));
  EXPECT_EQ(parseDims("64x32x16x8"), (Dims4{64, 32, 16, 8}));
  EXPECT_EQ(parseDims(" 4 , 5 , 6 , 7 "), (Dims4{4, 5, 6, 7}));
  EXPECT_EQ(parseDims("4X5X6"), (Dims4{4, 5, 6, 1}));
  for (const char* bad : {"", "64,32", "1,2,3,4,5", "a,b,c", "0,1,1", "-1,2,3", "64x32,16", "4,,5", "4.5,2,2",
                          "99999999999999999999,1,1"})
    EXPECT_THROW(parseDims(bad), Error) << bad;
}

TEST_F(VolumeIO, ReadFieldByExtension) {
  const Field f = sample(Dims4{3, 3, 2, 1});
  writeRaw(f, path("a.bin"));
  EXPECT_NE(errorOf([&] { readField(path("a.bin"), nullptr); }).find("--dims"), std::string::npos);
  EXPECT_EQ(readField(path("a.bin"), &f.dims).values, f.values);

  writeNpy(f, path("a.npy"));
  EXPECT_EQ(readField(path("a.npy"), nullptr).values, f.values);
  const Dims4 wrong{9, 1, 2, 1};
  EXPECT_THROW(readField(path("a.npy"), &wrong), Error);
}

TEST_F(VolumeIO, SidecarWithArraysAndTimes) {
  const Dims4 d{3, 2, 1, 4};
  writeRaw(sample(d), path("u.f32"));
  Field v = sample(d);
  for (float& x : v.values) x = -x;
  writeRaw(v, path("v.f32"));
  writeText(path("s.json"), R"({ "name": "winds", "dims": {"x": 3, "y": 2, "z": 1, "t": 4},
    "arrays": { "u": {"file": "u.f32", "note": "caf\u00e9 \"q\""}, "v": {"file": "v.f32", "min": -1.5e0} },
    "other": [true, false, null, {"a": []}],
    "time_days": [0.5, 1.5, 2.5, 3.5] })");
  GridMeta meta;
  const Field first = readField(path("s.json"), nullptr, "", &meta);
  EXPECT_EQ(first.dims, d);
  EXPECT_EQ(meta.arrayName, "u");
  EXPECT_EQ(meta.times, (std::vector<double>{0.5, 1.5, 2.5, 3.5}));
  GridMeta meta2;
  EXPECT_EQ(readField(path("s.json"), &d, "v", &meta2).values, v.values);
  EXPECT_EQ(meta2.arrayName, "v");
  const std::string msg = errorOf([&] { readField(path("s.json"), nullptr, "w"); });
  EXPECT_NE(msg.find("u, v"), std::string::npos) << msg;

  writeText(path("broken.json"), R"({"dims": {"x": 3, )");
  EXPECT_THROW(readField(path("broken.json"), nullptr), Error);
}

TEST_F(VolumeIO, SharedDataSidecars) {
  const fs::path data = ECNR_SHARED_DATA;
  if (!fs::exists(data / "ct_cranium" / "ct_cranium.json") || !fs::exists(data / "navy_winds" / "navy_winds.json"))
    GTEST_SKIP() << "shared data not present at " << data;
  GridMeta ct;
  const Field cranium = readField((data / "ct_cranium" / "ct_cranium.json").string(), nullptr, "", &ct);
  EXPECT_EQ(cranium.dims, (Dims4{256, 256, 108, 1}));
  EXPECT_EQ(ct.arrayName, "ct_cranium");

  GridMeta winds;
  const Field v = readField((data / "navy_winds" / "navy_winds.json").string(), nullptr, "vwnd", &winds);
  EXPECT_EQ(v.dims, (Dims4{144, 73, 1, 132}));
  EXPECT_EQ(winds.arrayName, "vwnd");
  ASSERT_EQ(winds.times.size(), 132u);
  EXPECT_EQ(winds.times.front(), 17598.0);
  const auto [lo, hi] = std::minmax_element(v.values.begin(), v.values.end());
  EXPECT_NEAR(*lo, -21.1385, 1e-3);  // the sidecar's min and max of vwnd, so the right file was read
  EXPECT_NEAR(*hi, 20.8384, 1e-3);
}

// The encoder's input: a file read one time step at a time through a memory map, with the checks made on open.
TEST_F(VolumeIO, SourcesReadStepsOfRawNpyAndSidecarFiles) {
  const Field f = sample(Dims4{5, 4, 3, 6});
  writeRaw(f, path("a.raw"));
  writeNpy(f, path("a.npy"));
  writeText(path("a.json"), R"({"dims": {"x": 5, "y": 4, "z": 3, "t": 6}, "arrays": {"p": {"file": "a.raw"}}})");
  const Dims4 d = f.dims;
  for (const auto& src : {openRaw(path("a.raw"), d), openNpy(path("a.npy")), openSidecar(path("a.json")),
                          openField(path("a.npy"), nullptr)}) {
    ASSERT_EQ(src->dims(), d);
    EXPECT_EQ(src->field(), nullptr);  // nothing held in memory
    std::vector<float> step(size_t(d.voxelsPerStep()));
    for (int64_t t = d.t - 1; t >= 0; --t) {  // any order, each step any number of times
      src->readStep(t, step.data());
      EXPECT_TRUE(std::equal(step.begin(), step.end(), f.step(t))) << t;
    }
    EXPECT_THROW(src->readStep(d.t, step.data()), Error);
    EXPECT_EQ(readAll(*src).values, f.values);
  }
  // Int16 data is converted per step as readNpy converts it.
  writeBytes(path("i.npy"), handMadeNpy("<i2", "(2, 1, 2, 3)", bytesOf(std::vector<int16_t>{1, -2, 3, 4, 5, -6, 7, 8, 9, 10, 11, 12})));
  const auto ints = openNpy(path("i.npy"));
  std::vector<float> step(6);
  ints->readStep(1, step.data());
  EXPECT_EQ(step, (std::vector<float>{7, 8, 9, 10, 11, 12}));
  EXPECT_TRUE(errorOf([&] { openRaw(path("a.raw"), Dims4{5, 4, 3, 7}); }).find("need") != std::string::npos);
  Dims4 wrong{5, 4, 3, 5};
  EXPECT_TRUE(errorOf([&] { openField(path("a.npy"), &wrong); }).find("were given") != std::string::npos);
  // A window of a source reads the base's steps; a NaN is found with its position.
  const auto base = openNpy(path("a.npy"));
  const WindowSource w(*base, 2, 3);
  ASSERT_EQ(w.dims().t, 3);
  step.resize(size_t(d.voxelsPerStep()));
  w.readStep(1, step.data());
  EXPECT_TRUE(std::equal(step.begin(), step.end(), f.step(3)));
  EXPECT_THROW(WindowSource(*base, 4, 3), Error);
  EXPECT_EQ(finiteRange(w), std::make_pair(f.step(2)[0], f.step(4)[d.voxelsPerStep() - 1]));
  Field bad = f;
  bad.at(1, 2, 0, 4) = NAN;
  writeNpy(bad, path("bad.npy"));
  EXPECT_TRUE(errorOf([&] { finiteRange(*openNpy(path("bad.npy"))); }).find("(nan) at x=1 y=2 z=0 t=4") !=
              std::string::npos);
}
