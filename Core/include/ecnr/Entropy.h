// Entropy: lossless coding of small-integer symbol streams (codebook indices, masks) for the archive.
// Each stream is self-describing: a method byte, the symbol count (LEB128), then the payload:
//   Raw     : the symbols packed at exactly `bits` bits each, LSB-first, zero padding in the last byte.
//   Huffman : LEB128 payload length, then one LSB-first bit stream: the canonical code-length table of the used
//             symbols (order-0, lengths <= 20), then the codes; zero padding in the last byte.
//   Zstd    : LEB128 payload length, then one zstd frame (level 19) of the symbols as 1 or 2 little-endian bytes.
//   ExpGolomb: LEB128 payload length, then the order k (one byte, <= bits) and every symbol's exp-Golomb code of
//             order k, LSB-first; zero padding in the last byte.
// The symbol width `bits` is not stored: the caller knows it, as it knows the count it expects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ecnr {

enum class EntropyMethod : uint8_t { Raw = 0, Huffman = 1, Zstd = 2, ExpGolomb = 3 };

/// Encodes `symbols` (each < 2^bits, 1 <= bits <= 16) into self-describing bytes: a method byte, the symbol count,
/// then the payload. Tries every method in `allowed` (bitmask 1<<method; default all) and keeps the smallest
/// (ties go to the lower method number: Raw, then Huffman). Deterministic. Throws ecnr::Error on bad arguments.
std::vector<uint8_t> encodeSymbols(const std::vector<uint32_t>& symbols, int bits, unsigned allowed = 15u,
                                   EntropyMethod* chosen = nullptr);

/// Decodes one stream written by encodeSymbols starting at data[0]; reads at most `size` bytes and sets *consumed
/// (if not null) to the bytes used. `expectedCount` must equal the stored symbol count and `bits` the encoder's:
/// this bounds allocations on hostile input. Every malformed input throws ecnr::Error.
std::vector<uint32_t> decodeSymbols(const uint8_t* data, size_t size, uint64_t expectedCount, int bits,
                                    size_t* consumed);

/// Convenience for 0/1 masks: packs 8 per byte (bit i -> byte i/8, bit i%8), then encodeSymbols(bytes, 8).
std::vector<uint8_t> encodeBits(const std::vector<uint8_t>& bits01, unsigned allowed = 15u,
                                EntropyMethod* chosen = nullptr);
/// The inverse of encodeBits; `expectedCount` is the number of bits. Non-zero padding bits are refused.
std::vector<uint8_t> decodeBits(const uint8_t* data, size_t size, uint64_t expectedCount, size_t* consumed);

/// Sizes every method would give (for the benchmark and `ecnr info`): bytes of the whole stream per method.
struct EntropySizes {
  uint64_t raw = 0, huffman = 0, zstd = 0, expGolomb = 0;
};
EntropySizes measureSymbols(const std::vector<uint32_t>& symbols, int bits);

}  // namespace ecnr
