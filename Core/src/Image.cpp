#include "ecnr/Image.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "ecnr/Archive.h"  // writeFileAtomic

namespace ecnr {
namespace {

constexpr int64_t kGap = 4;             ///< pixels of mid grey between panels
constexpr int64_t kMinSide = 256;       ///< upscale until the smaller side reaches this
constexpr int64_t kMaxSide = 4096;      ///< ... unless that would make the larger side exceed this

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

uint8_t toByte(double unit) {
  if (!(unit > 0)) return 0;  // also maps NaN to 0
  return uint8_t(std::lround(std::min(unit, 1.0) * 255.0));
}

Rgb grey(float value, double lo, double hi) {
  const uint8_t g = hi > lo ? toByte((double(value) - lo) / (hi - lo)) : 128;
  return {g, g, g};
}

/// Black -> red -> yellow -> white: each third of the range raises one channel.
Rgb heat(double unit) {
  const double e = std::isnan(unit) ? 1.0 : std::clamp(unit, 0.0, 1.0);
  return {toByte(3 * e), toByte(3 * e - 1), toByte(3 * e - 2)};
}

/// One z-slice of one step, x fastest.
std::vector<float> slice(const Field& f, int64_t t, int64_t z) {
  const int64_t n = f.dims.x * f.dims.y;
  const float* first = f.step(t) + z * n;
  return std::vector<float>(first, first + n);
}

/// Draws a panel nx x ny upscaled by `scale` at column x0; y is flipped so that y = 0 is at the bottom.
template <class Color>
void drawPanel(std::vector<uint8_t>& rgb, const ComparisonPngLayout& L, const Dims4& d, int64_t x0, Color color) {
  for (int64_t py = 0; py < L.height; ++py) {
    const int64_t y = d.y - 1 - py / L.scale;
    uint8_t* row = rgb.data() + 3 * (py * L.width + x0);
    for (int64_t px = 0; px < d.x * L.scale; ++px) {
      const Rgb c = color(px / L.scale + d.x * y);
      row[3 * px] = c.r;
      row[3 * px + 1] = c.g;
      row[3 * px + 2] = c.b;
    }
  }
}

/// libpng reports errors through a callback that must not return; we keep the message and longjmp back.
struct PngSink {
  std::vector<uint8_t> bytes;
  char error[256] = "";
};

void onPngError(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<PngSink*>(png_get_error_ptr(png));
  std::snprintf(sink->error, sizeof(sink->error), "%s", msg);
  png_longjmp(png, 1);
}

void onPngWarning(png_structp, png_const_charp) {}

void onPngWrite(png_structp png, png_bytep data, png_size_t size) {
  auto* sink = static_cast<PngSink*>(png_get_io_ptr(png));
  sink->bytes.insert(sink->bytes.end(), data, data + size);
}

void onPngFlush(png_structp) {}

/// Encodes 8-bit RGB to PNG bytes in memory. Everything with a destructor lives outside the setjmp scope.
bool encodePng(const std::vector<uint8_t>& rgb, int64_t w, int64_t h, PngSink& sink,
               std::vector<png_bytep>& rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, onPngError, onPngWarning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, &sink, onPngWrite, onPngFlush);
  png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (int64_t y = 0; y < h; ++y) rows[size_t(y)] = const_cast<png_bytep>(rgb.data() + 3 * w * y);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

void checkArguments(const Field& original, const Field& decoded, int64_t t, int64_t z) {
  if (original.dims != decoded.dims)
    throw Error("comparison image: dims differ (original " + original.dims.str() + ", decoded " +
                decoded.dims.str() + ")");
  if (original.values.size() != size_t(original.dims.count()) || decoded.values.size() != original.values.size())
    throw Error("comparison image: field values do not match their dims");
  if (t < 0 || t >= original.dims.t)
    throw Error("comparison image: time step " + std::to_string(t) + " is outside 0.." +
                std::to_string(original.dims.t - 1));
  if (z >= original.dims.z)
    throw Error("comparison image: slice z=" + std::to_string(z) + " is outside 0.." +
                std::to_string(original.dims.z - 1));
}

}  // namespace

ComparisonPngLayout comparisonPngLayout(const Dims4& dims) {
  ComparisonPngLayout L;
  const int64_t small = std::min(dims.x, dims.y), large = std::max(dims.x, dims.y);
  L.scale = std::max<int64_t>(1, std::min((kMinSide + small - 1) / small, kMaxSide / large));
  L.width = 3 * dims.x * L.scale + 2 * kGap;
  L.height = dims.y * L.scale;
  return L;
}

void writeComparisonPng(const Field& original, const Field& decoded, int64_t t, int64_t z, const std::string& path) {
  checkArguments(original, decoded, t, z);
  if (z < 0) z = original.dims.z / 2;
  const std::vector<float> a = slice(original, t, z), b = slice(decoded, t, z);
  const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
  const double vmin = *lo, vmax = *hi;
  double maxErr = 0;
  for (size_t i = 0; i < a.size(); ++i) maxErr = std::max(maxErr, std::fabs(double(b[i]) - double(a[i])));

  const ComparisonPngLayout L = comparisonPngLayout(original.dims);
  if (L.width > int64_t(PNG_UINT_31_MAX) || L.height > int64_t(PNG_UINT_31_MAX))
    throw Error("comparison image: slice too large for a PNG (" + original.dims.str() + ")");
  std::vector<uint8_t> rgb(size_t(3 * L.width * L.height), 128);
  const int64_t panel = original.dims.x * L.scale + kGap;
  drawPanel(rgb, L, original.dims, 0, [&](int64_t i) { return grey(a[size_t(i)], vmin, vmax); });
  drawPanel(rgb, L, original.dims, panel, [&](int64_t i) { return grey(b[size_t(i)], vmin, vmax); });
  drawPanel(rgb, L, original.dims, 2 * panel, [&](int64_t i) {
    const double e = std::fabs(double(b[size_t(i)]) - double(a[size_t(i)]));
    return maxErr > 0 ? heat(e / maxErr) : Rgb{};
  });

  PngSink sink;
  std::vector<png_bytep> rows(size_t(L.height));
  if (!encodePng(rgb, L.width, L.height, sink, rows))
    throw Error("comparison image: PNG encoding failed for " + path + (sink.error[0] ? ": " : "") + sink.error);
  writeFileAtomic(path, sink.bytes.data(), sink.bytes.size());
}

}  // namespace ecnr
