// ByteIO: little-endian byte writing and bounds-checked reading, shared by the archive and the residual coder.
// Bytes are assembled explicitly so the format does not depend on the host's byte order.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ecnr/Field.h"
#include "ecnr/Half.h"
#include "ecnr/Settings.h"

namespace ecnr {
namespace io {

inline uint64_t valueBytes(WeightPrecision p) { return p == WeightPrecision::Float16 ? 2 : 4; }

/// a * b, or UINT64_MAX when it overflows (which no bounds check can then pass).
inline uint64_t saturatingMul(uint64_t a, uint64_t b) {
  return (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) ? std::numeric_limits<uint64_t>::max() : a * b;
}

// Little-endian encoding. Bytes are assembled explicitly so the format does not depend on the host's byte order.

class ByteWriter {
public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i64(int64_t v) { put(uint64_t(v), 8); }
  void f32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    put(b, 4);
  }
  void f64(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    put(b, 8);
  }
  /// Unsigned LEB128 (7 bits a byte, low first).
  void uleb(uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(uint8_t(v | 0x80));
      v >>= 7;
    }
    bytes_.push_back(uint8_t(v));
  }
  void raw(const uint8_t* p, size_t n) { bytes_.insert(bytes_.end(), p, p + n); }
  void string(const std::string& s) {
    u32(uint32_t(s.size()));
    raw(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  /// A value as the file stores it in float16: clamped like applyStoragePrecision, never an infinity.
  static uint16_t storedHalf(float x) {
    return floatToHalf(std::isinf(x) || std::fabs(x) > 65504.0f ? std::copysign(65504.0f, x) : x);
  }
  void values(const std::vector<float>& v, WeightPrecision p) {
    for (float x : v) {
      if (p == WeightPrecision::Float16) put(storedHalf(x), 2);
      else f32(x);
    }
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(uint8_t(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

/// Reads one section (or the file prefix) with every read checked against its end.
class ByteReader {
public:
  ByteReader(const uint8_t* data, uint64_t size, std::string name) : data_(data), size_(size), name_(std::move(name)) {}

  uint8_t u8() { return *take(1); }
  uint32_t u32() { return uint32_t(get(4)); }
  uint64_t u64() { return get(8); }
  int64_t i64() { return int64_t(get(8)); }
  float f32() {
    const uint32_t b = u32();
    float v;
    std::memcpy(&v, &b, 4);
    return v;
  }
  double f64() {
    const uint64_t b = u64();
    double v;
    std::memcpy(&v, &b, 8);
    return v;
  }
  /// Unsigned LEB128; more than 10 bytes or bits beyond 64 are refused.
  uint64_t uleb() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = u8();
      if (shift == 63 && b > 1) fail("has a varint beyond 64 bits");
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("has a varint beyond 64 bits");
  }
  std::string string() {
    const uint32_t n = u32();
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  /// The guard before every resize: `count` elements of `elementBytes` must still be in the section.
  void require(uint64_t count, uint64_t elementBytes) const {
    if (saturatingMul(count, elementBytes) > remaining()) truncated();
  }
  void values(std::vector<float>& out, uint64_t count, WeightPrecision p) {
    require(count, valueBytes(p));
    out.resize(size_t(count));
    for (float& x : out) x = p == WeightPrecision::Float16 ? halfToFloat(uint16_t(get(2))) : f32();
  }
  void finish() const {
    if (remaining() != 0) fail("has " + std::to_string(remaining()) + " unexpected trailing bytes");
  }
  uint64_t remaining() const { return size_ - pos_; }
  uint64_t position() const { return pos_; }
  const uint8_t* cursor() const { return data_ + pos_; }
  void skip(uint64_t n) { take(n); }
  const std::string& name() const { return name_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("archive section '" + name_ + "' " + what);
  }

private:
  [[noreturn]] void truncated() const { fail("is truncated"); }
  const uint8_t* take(uint64_t n) {
    if (n > remaining()) truncated();
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t get(int n) {
    const uint8_t* p = take(uint64_t(n));
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    return v;
  }

  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string name_;
};

}  // namespace io
}  // namespace ecnr
