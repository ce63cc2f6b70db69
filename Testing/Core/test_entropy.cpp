#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <random>

#include "ecnr/Entropy.h"
#include "ecnr/Field.h"

using namespace ecnr;

namespace {

constexpr unsigned kRaw = 1u << 0, kHuffman = 1u << 1, kZstd = 1u << 2, kExpGolomb = 1u << 3, kAll = 15u;
const int kWidths[] = {1, 7, 8, 9, 12, 16};

std::vector<uint32_t> uniformSymbols(size_t n, int bits, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint32_t> d(0, (1u << bits) - 1);
  std::vector<uint32_t> s(n);
  for (uint32_t& v : s) v = d(rng);
  return s;
}

// Geometric: P(k) ~ (1-p)^k, clamped to the alphabet.
std::vector<uint32_t> geometricSymbols(size_t n, int bits, double p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::geometric_distribution<uint32_t> d(p);
  std::vector<uint32_t> s(n);
  for (uint32_t& v : s) v = std::min(d(rng), (1u << bits) - 1);
  return s;
}

// Encodes, decodes (with unrelated bytes after the stream) and checks bit-exactness and the consumed size.
std::vector<uint8_t> expectRoundTrip(const std::vector<uint32_t>& symbols, int bits, unsigned allowed,
                                     EntropyMethod* chosen = nullptr) {
  EntropyMethod m{};
  std::vector<uint8_t> stream = encodeSymbols(symbols, bits, allowed, &m);
  EXPECT_TRUE(allowed & (1u << unsigned(m)));
  std::vector<uint8_t> padded = stream;
  padded.insert(padded.end(), {0xAB, 0xCD, 0xEF});
  size_t consumed = 0;
  const std::vector<uint32_t> back = decodeSymbols(padded.data(), padded.size(), symbols.size(), bits, &consumed);
  EXPECT_EQ(consumed, stream.size()) << "bits " << bits << " n " << symbols.size() << " method " << int(m);
  EXPECT_TRUE(back == symbols) << "bits " << bits << " n " << symbols.size() << " method " << int(m);
  if (chosen) *chosen = m;
  return stream;
}

size_t forcedSize(const std::vector<uint32_t>& symbols, int bits, unsigned method) {
  return encodeSymbols(symbols, bits, method).size();
}

void expectRefused(const std::vector<uint8_t>& data, size_t size, uint64_t count, int bits, const char* what) {
  size_t consumed = 12345;
  EXPECT_THROW(decodeSymbols(data.data(), size, count, bits, &consumed), Error) << what << " size " << size;
}

}  // namespace

TEST(Entropy, EachMethodAloneAndAutomaticRoundTripRandomSymbolsBitExact) {
  for (int bits : kWidths)
    for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(5), size_t(300), size_t(4097), size_t(60000)})
      for (unsigned allowed : {kRaw, kHuffman, kZstd, kExpGolomb, kAll})
        expectRoundTrip(uniformSymbols(n, bits, n * 31 + uint64_t(bits)), bits, allowed);
}

TEST(Entropy, SkewedGeometricSymbolsRoundTripWithEveryMethod) {
  for (int bits : kWidths)
    for (double p : {0.5, 0.1, 0.01})
      for (unsigned allowed : {kRaw, kHuffman, kZstd, kExpGolomb, kAll})
        expectRoundTrip(geometricSymbols(20000, bits, p, uint64_t(bits * 1000 + p * 100)), bits, allowed);
}

TEST(Entropy, AdversarialInputsRoundTrip) {
  for (int bits : kWidths) {
    const uint32_t top = (1u << bits) - 1;
    std::vector<std::vector<uint32_t>> cases;
    cases.push_back({});                                   // empty
    cases.push_back({top});                                // a single symbol, the largest
    cases.push_back({0});                                  // a single symbol, the smallest
    cases.push_back(std::vector<uint32_t>(10000, top));    // all equal, max symbol
    cases.push_back(std::vector<uint32_t>(777, 0));        // all equal, zero
    std::vector<uint32_t> distinct(size_t(top) + 1);       // all distinct: the whole alphabet, shuffled
    std::iota(distinct.begin(), distinct.end(), 0u);
    std::shuffle(distinct.begin(), distinct.end(), std::mt19937(bits));
    cases.push_back(distinct);
    cases.push_back({0, top});                             // two symbols at the alphabet's ends
    std::vector<uint32_t> mostlyTop(5000, top);            // one dominant symbol plus a few rare ones
    for (size_t i = 0; i < mostlyTop.size(); i += 97) mostlyTop[i] = uint32_t(i) & top;
    cases.push_back(mostlyTop);
    for (const auto& c : cases)
      for (unsigned allowed : {kRaw, kHuffman, kZstd, kExpGolomb, kAll}) expectRoundTrip(c, bits, allowed);
  }
}

TEST(Entropy, FullSixteenBitAlphabetWithOneDominantSymbolRoundTrips) {
  // Every one of the 2^16 symbols once, symbol 12345 two million times: an unlimited Huffman code would be
  // deeper than the length limit.
  std::vector<uint32_t> s(65536);
  std::iota(s.begin(), s.end(), 0u);
  s.insert(s.end(), 2000000, 12345u);
  std::shuffle(s.begin(), s.end(), std::mt19937(7));
  expectRoundTrip(s, 16, kHuffman);
}

TEST(Entropy, FibonacciFrequenciesForceTheLengthLimitAndStayCloseToOptimal) {
  // Frequencies 1, 1, 2, 3, 5, ... give a maximally deep Huffman tree (depth 31 for 32 symbols).
  std::vector<uint32_t> s;
  std::vector<uint64_t> f;
  uint64_t a = 1, b = 1;
  for (uint32_t sym = 0; sym < 32; ++sym) {
    f.push_back(a);
    s.insert(s.end(), size_t(a), sym);
    const uint64_t c = a + b;
    a = b;
    b = c;
  }
  // The unlimited Huffman cost in bits is the sum of the merged weights.
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<uint64_t>> q(f.begin(), f.end());
  double unlimitedBits = 0;
  while (q.size() > 1) {
    const uint64_t x = q.top();
    q.pop();
    const uint64_t y = q.top();
    q.pop();
    unlimitedBits += double(x + y);
    q.push(x + y);
  }
  std::shuffle(s.begin(), s.end(), std::mt19937(3));
  const std::vector<uint8_t> stream = expectRoundTrip(s, 9, kHuffman);
  EXPECT_LT(double(stream.size()), 1.01 * unlimitedBits / 8 + 64) << "unlimited Huffman " << unlimitedBits / 8;
}

TEST(Entropy, AutomaticChoiceIsNeverLargerThanAnySingleMethod) {
  for (int bits : kWidths)
    for (size_t n : {size_t(0), size_t(3), size_t(200), size_t(20000)})
      for (int kind = 0; kind < 3; ++kind) {
        const std::vector<uint32_t> s = kind == 0 ? uniformSymbols(n, bits, n + bits)
                                        : kind == 1 ? geometricSymbols(n, bits, 0.3, n + bits)
                                                    : std::vector<uint32_t>(n, (1u << bits) - 1);
        EntropyMethod m{};
        const size_t automatic = encodeSymbols(s, bits, kAll, &m).size();
        const EntropySizes sizes = measureSymbols(s, bits);
        EXPECT_EQ(sizes.raw, forcedSize(s, bits, kRaw));
        EXPECT_EQ(sizes.huffman, forcedSize(s, bits, kHuffman));
        EXPECT_EQ(sizes.zstd, forcedSize(s, bits, kZstd));
        EXPECT_EQ(sizes.expGolomb, forcedSize(s, bits, kExpGolomb));
        EXPECT_LE(automatic, sizes.expGolomb);
        EXPECT_LE(automatic, sizes.raw);
        EXPECT_LE(automatic, sizes.huffman);
        EXPECT_LE(automatic, sizes.zstd);
        EXPECT_EQ(automatic, std::min({sizes.raw, sizes.huffman, sizes.zstd, sizes.expGolomb}));
      }
}

TEST(Entropy, RawCostsExactlyBitsPerSymbol) {
  // 1000 9-bit symbols: 1125 bytes of payload, plus the method byte and a 2-byte count.
  EXPECT_EQ(forcedSize(uniformSymbols(1000, 9, 1), 9, kRaw), 1 + 2 + 1125u);
  EXPECT_EQ(forcedSize({}, 9, kRaw), 2u);
}

TEST(Entropy, HuffmanBeatsRawOnASkewedSourceIncludingShortStreams) {
  // Geometric p = 0.5 has an entropy of 2 bits per symbol against 8 raw.
  const auto s = geometricSymbols(100000, 8, 0.5, 11);
  const EntropySizes big = measureSymbols(s, 8);
  EXPECT_LT(double(big.huffman), 0.28 * double(big.raw)) << big.huffman << " vs raw " << big.raw;
  // A few hundred 9-bit indices: the code-length table must stay small enough for Huffman to still win clearly.
  const auto shortStream = geometricSymbols(300, 9, 0.15, 12);
  const EntropySizes small = measureSymbols(shortStream, 9);
  EXPECT_LT(double(small.huffman), 0.6 * double(small.raw)) << small.huffman << " vs raw " << small.raw;
  // One symbol repeated: the table is the whole payload.
  EXPECT_LE(measureSymbols(std::vector<uint32_t>(1000000, 5), 16).huffman, 12u);
}

TEST(Entropy, OutputIsDeterministic) {
  const auto s = geometricSymbols(30000, 12, 0.05, 5);
  for (unsigned allowed : {kRaw, kHuffman, kZstd, kExpGolomb, kAll})
    EXPECT_EQ(encodeSymbols(s, 12, allowed), encodeSymbols(s, 12, allowed));
}

TEST(Entropy, ConsecutiveStreamsDecodeOneAfterAnother) {
  const auto a = geometricSymbols(500, 7, 0.2, 1), b = uniformSymbols(123, 16, 2), c = uniformSymbols(40, 1, 3);
  std::vector<uint8_t> all = encodeSymbols(a, 7, kHuffman);
  const std::vector<uint8_t> sb = encodeSymbols(b, 16, kRaw), sc = encodeSymbols(c, 1, kZstd);
  all.insert(all.end(), sb.begin(), sb.end());
  all.insert(all.end(), sc.begin(), sc.end());
  size_t pos = 0, used = 0;
  EXPECT_EQ(decodeSymbols(all.data() + pos, all.size() - pos, a.size(), 7, &used), a);
  pos += used;
  EXPECT_EQ(decodeSymbols(all.data() + pos, all.size() - pos, b.size(), 16, &used), b);
  pos += used;
  EXPECT_EQ(decodeSymbols(all.data() + pos, all.size() - pos, c.size(), 1, &used), c);
  pos += used;
  EXPECT_EQ(pos, all.size());
}

TEST(Entropy, EncoderRefusesBadArguments) {
  EXPECT_THROW(encodeSymbols({1, 2}, 0), Error);
  EXPECT_THROW(encodeSymbols({1, 2}, 17), Error);
  EXPECT_THROW(encodeSymbols({1, 256}, 8), Error);
  EXPECT_THROW(encodeSymbols({1, 2}, 8, 0u), Error);
  EXPECT_THROW(encodeSymbols({1, 2}, 8, 16u), Error);
  EXPECT_THROW(encodeBits({0, 1, 2}), Error);
}

TEST(Entropy, DecoderRefusesEveryTruncation) {
  for (int bits : {1, 9, 16})
    for (unsigned method : {kRaw, kHuffman, kZstd, kExpGolomb})
      for (const auto& s : {geometricSymbols(200, bits, 0.2, 9), std::vector<uint32_t>(50, 1u),
                            std::vector<uint32_t>{}}) {
        const std::vector<uint8_t> stream = encodeSymbols(s, bits, method);
        for (size_t len = 0; len < stream.size(); ++len) {
          // Copy the prefix alone so that AddressSanitizer would catch a read past it.
          const std::vector<uint8_t> prefix(stream.begin(), stream.begin() + long(len));
          expectRefused(prefix, prefix.size(), s.size(), bits, "truncated");
        }
      }
}

TEST(Entropy, DecoderRefusesAFlippedMethodByte) {
  const auto s = geometricSymbols(400, 9, 0.1, 4);
  for (unsigned method : {kRaw, kHuffman, kZstd, kExpGolomb}) {
    const std::vector<uint8_t> stream = encodeSymbols(s, 9, method);
    for (int other : {0, 1, 2, 3, 4, 7, 128, 255}) {
      if (other == stream[0]) continue;
      std::vector<uint8_t> bad = stream;
      bad[0] = uint8_t(other);
      expectRefused(bad, bad.size(), s.size(), 9, "flipped method byte");
    }
  }
}

TEST(Entropy, DecoderRefusesAWrongExpectedCount) {
  const auto s = uniformSymbols(300, 12, 8);
  for (unsigned method : {kRaw, kHuffman, kZstd}) {
    const std::vector<uint8_t> stream = encodeSymbols(s, 12, method);
    for (uint64_t wrong : {uint64_t(0), uint64_t(299), uint64_t(301), uint64_t(1) << 40, ~uint64_t(0)})
      expectRefused(stream, stream.size(), wrong, 12, "wrong expectedCount");
  }
  // The stored count altered along with expectedCount: the payload no longer matches it (Raw has no payload length,
  // so there a shorter count just reads a shorter stream).
  for (unsigned method : {kHuffman, kZstd}) {
    std::vector<uint8_t> stream = encodeSymbols(s, 12, method);  // count 300 = LEB128 AC 02
    ASSERT_EQ(stream[1], 0xAC);
    stream[1] = 0xAB;  // 299
    expectRefused(stream, stream.size(), 299, 12, "stored count altered");
  }
}

TEST(Entropy, DecoderRefusesZstdSymbolsOutsideTheWidthAndTrailingBytes) {
  const std::vector<uint32_t> s = {1, 2, 40000, 3};
  const std::vector<uint8_t> stream = encodeSymbols(s, 16, kZstd);
  expectRefused(stream, stream.size(), s.size(), 12, "zstd symbol >= 2^bits");
  // Trailing garbage inside the stated payload: lengthen the payload by one byte.
  std::vector<uint8_t> longer = encodeSymbols(uniformSymbols(50, 8, 1), 8, kZstd);
  ASSERT_LT(longer[2], 0x7F);
  ++longer[2];
  longer.push_back(0);
  expectRefused(longer, longer.size(), 50, 8, "zstd trailing byte");
  std::vector<uint8_t> huff = encodeSymbols(geometricSymbols(50, 8, 0.3, 1), 8, kHuffman);
  ASSERT_LT(huff[2], 0x7F);
  ++huff[2];
  huff.push_back(0);
  expectRefused(huff, huff.size(), 50, 8, "huffman trailing byte");
}

TEST(Entropy, DecoderRefusesNonZeroPaddingBits) {
  // 3 symbols of 3 bits = 9 bits: the second payload byte has 7 padding bits.
  std::vector<uint8_t> stream = encodeSymbols({1, 2, 3}, 3, kRaw);
  ASSERT_EQ(stream.size(), 4u);
  stream.back() |= 0x80;
  expectRefused(stream, stream.size(), 3, 3, "raw padding");
}

TEST(Entropy, DecoderSurvivesRandomGarbage) {
  std::mt19937_64 rng(2024);
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> data(rng() % 48);
    for (uint8_t& b : data) b = uint8_t(rng());
    if (!data.empty() && iter % 2) data[0] = uint8_t(rng() % 4);  // a valid method byte: reach the payload parsers
    if (data.size() > 1 && iter % 4 == 1) data[1] = uint8_t(rng() % 64);
    const int bits = kWidths[rng() % 6];
    const uint64_t count = data.size() > 1 && iter % 4 == 1 ? data[1] : rng() % 80;
    try {
      size_t consumed = 0;
      const std::vector<uint32_t> s = decodeSymbols(data.data(), data.size(), count, bits, &consumed);
      ++accepted;
      ASSERT_EQ(s.size(), count);
      ASSERT_LE(consumed, data.size());
      for (uint32_t v : s) ASSERT_LT(v, 1u << bits);
    } catch (const Error&) {
    }
  }
  EXPECT_LT(accepted, 20000u);
}

TEST(Entropy, DecoderSurvivesBitFlipsInValidStreams) {
  std::mt19937_64 rng(99);
  for (int bits : {1, 8, 9, 16})
    for (unsigned method : {kRaw, kHuffman, kZstd}) {
      const auto s = geometricSymbols(300, bits, 0.1, uint64_t(bits));
      const std::vector<uint8_t> stream = encodeSymbols(s, bits, method);
      for (int iter = 0; iter < 400; ++iter) {
        std::vector<uint8_t> bad = stream;
        for (int k = 0; k < 1 + iter % 3; ++k) bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8));
        try {
          size_t consumed = 0;
          const std::vector<uint32_t> back = decodeSymbols(bad.data(), bad.size(), s.size(), bits, &consumed);
          ASSERT_EQ(back.size(), s.size());
          for (uint32_t v : back) ASSERT_LT(v, 1u << bits);
        } catch (const Error&) {
        }
      }
    }
}

TEST(Entropy, BitHelpersRoundTripOddLengths) {
  std::mt19937_64 rng(5);
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(1001), size_t(65537)})
    for (double ones : {0.0, 0.02, 0.5, 1.0})
      for (unsigned allowed : {kRaw, kHuffman, kZstd, kExpGolomb, kAll}) {
        std::bernoulli_distribution d(ones);
        std::vector<uint8_t> mask(n);
        for (uint8_t& b : mask) b = d(rng) ? 1 : 0;
        const std::vector<uint8_t> stream = encodeBits(mask, allowed);
        size_t consumed = 0;
        EXPECT_EQ(decodeBits(stream.data(), stream.size(), n, &consumed), mask) << n << " " << ones;
        EXPECT_EQ(consumed, stream.size());
      }
  // A mask of 10 bits whose padding bits are set is refused; so is the wrong bit count.
  std::vector<uint8_t> stream = encodeSymbols({0xFF, 0xFF}, 8, kRaw);
  EXPECT_THROW(decodeBits(stream.data(), stream.size(), 10, nullptr), Error);
  EXPECT_NO_THROW(decodeBits(stream.data(), stream.size(), 16, nullptr));
  EXPECT_THROW(decodeBits(stream.data(), stream.size(), 17, nullptr), Error);
}
