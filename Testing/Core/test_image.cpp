#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "ecnr/Image.h"

using namespace ecnr;
namespace fs = std::filesystem;

namespace {

class Image : public ::testing::Test {
protected:
  fs::path dir;
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir = fs::temp_directory_path() / ("ecnr_image_" + std::to_string(getpid()) + "_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
};

Field gradient(const Dims4& d) {
  Field f(d);
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t z = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x) f.at(x, y, z, t) = float(x + y + z + t);
  return f;
}

/// Reads a PNG back as 8-bit RGB with libpng's simplified API.
struct Picture {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
  const uint8_t* pixel(int64_t x, int64_t y) const { return rgb.data() + 3 * (y * width + x); }
};

Picture readPng(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  Picture p;
  if (!png_image_begin_read_from_file(&image, path.c_str())) return p;
  image.format = PNG_FORMAT_RGB;
  p.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, p.rgb.data(), 0, nullptr)) return p;
  p.width = image.width;
  p.height = image.height;
  return p;
}

}  // namespace

TEST_F(Image, WritesThreePanelsOfTheExpectedSize) {
  const Dims4 d{40, 20, 3, 2};
  const Field a = gradient(d);
  Field b = a;
  b.at(5, 2, 1, 1) += 3.0f;  // the only error, in the slice drawn below
  const std::string path = (dir / "cmp.png").string();
  writeComparisonPng(a, b, 1, 1, path);

  std::ifstream in(path, std::ios::binary);
  char signature[8] = {};
  in.read(signature, 8);
  EXPECT_EQ(std::memcmp(signature, "\x89PNG\r\n\x1a\n", 8), 0);

  const ComparisonPngLayout L = comparisonPngLayout(d);
  EXPECT_EQ(L.scale, 13);  // 20 * 13 >= 256
  EXPECT_GE(std::min(d.x, d.y) * L.scale, 256);
  const Picture p = readPng(path);
  ASSERT_EQ(p.width, L.width);
  ASSERT_EQ(p.height, L.height);

  // The error panel is white where the error is largest and black elsewhere; y = 0 is the bottom row.
  const int64_t gap = (p.width - 3 * d.x * L.scale) / 2;
  const int64_t errPanel = 2 * (d.x * L.scale + gap);
  const uint8_t* hot = p.pixel(errPanel + 5 * L.scale, (d.y - 1 - 2) * L.scale);
  EXPECT_EQ(hot[0], 255);
  EXPECT_EQ(hot[1], 255);
  EXPECT_EQ(hot[2], 255);
  const uint8_t* cold = p.pixel(errPanel, 0);
  EXPECT_EQ(cold[0] + cold[1] + cold[2], 0);
  // The grey panels span the original's slice range: its max (top-right of slice) is white.
  EXPECT_EQ(p.pixel(d.x * L.scale - 1, 0)[0], 255);
  EXPECT_EQ(p.pixel(0, p.height - 1)[0], 0);
}

TEST_F(Image, RefusesBadArguments) {
  const Field a = gradient(Dims4{8, 8, 4, 2});
  EXPECT_THROW(writeComparisonPng(a, a, 0, -1, (dir / "no" / "such" / "dir" / "x.png").string()), Error);
  EXPECT_THROW(writeComparisonPng(a, a, 2, 0, (dir / "x.png").string()), Error);
  EXPECT_THROW(writeComparisonPng(a, a, 0, 4, (dir / "x.png").string()), Error);
  EXPECT_THROW(writeComparisonPng(a, gradient(Dims4{8, 8, 4, 1}), 0, 0, (dir / "x.png").string()), Error);
  writeComparisonPng(a, a, 0, -1, (dir / "ok.png").string());
  EXPECT_TRUE(fs::exists(dir / "ok.png"));
}
