// Checksum: CRC-32C (Castagnoli) used for every archive section.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ecnr {

uint32_t crc32c(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace ecnr
