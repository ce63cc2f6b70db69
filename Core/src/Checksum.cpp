#include "ecnr/Checksum.h"

#include <array>

namespace ecnr {
namespace {

// CRC-32C (Castagnoli), reflected polynomial. Chosen over zlib's CRC-32 for its better error detection on
// the section sizes an archive has.
constexpr uint32_t kPolynomial = 0x82F63B78u;

std::array<uint32_t, 256> makeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

}  // namespace

uint32_t crc32c(const uint8_t* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = makeTable();
  // The running value is kept inverted so that crc32c(b, crc32c(a)) == crc32c(a + b).
  uint32_t c = ~crc;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return ~c;
}

}  // namespace ecnr
