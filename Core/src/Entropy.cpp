#include "ecnr/Entropy.h"

#include <zstd.h>

#include <algorithm>
#include <limits>
#include <string>

#include "ecnr/Field.h"  // ecnr::Error

namespace ecnr {
namespace {

// >= 16 so that a full 2^16 alphabet always fits; small enough that the slow decode path stays short.
constexpr int kMaxCodeLength = 20;
// Width of the primary decode table (codes up to this length decode with one lookup): at least kFastBits,
// up to kMaxFastBits for long streams.
constexpr int kFastBits = 11, kMaxFastBits = 16;
constexpr int kZstdLevel = 19;
constexpr uint32_t kZstdMagic = 0xFD2FB528u;

[[noreturn]] void fail(const std::string& why) { throw Error("entropy stream: " + why); }

void checkBits(int bits) {
  if (bits < 1 || bits > 16)
    throw Error("entropy coding: symbol width " + std::to_string(bits) + " bits is outside 1..16");
}

int bitWidth(uint64_t v) {  // bits needed to write v (0 for v == 0)
  int n = 0;
  while (v) {
    ++n;
    v >>= 1;
  }
  return n;
}

// ---- LEB128 varints (minimal encoding only, so that every value has one byte form) ----

void putVarint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(uint8_t(v | 0x80));
    v >>= 7;
  }
  out.push_back(uint8_t(v));
}

uint64_t getVarint(const uint8_t* data, size_t size, size_t& pos, const char* what) {
  uint64_t v = 0;
  for (int i = 0; i < 10; ++i) {
    if (pos >= size) fail(std::string("truncated in the ") + what);
    const uint8_t b = data[pos++];
    if (i == 9 && b > 1) fail(std::string("the ") + what + " overflows 64 bits");
    v |= uint64_t(b & 0x7F) << (7 * i);
    if (!(b & 0x80)) {
      if (b == 0 && i > 0) fail(std::string("the ") + what + " has a non-minimal encoding");
      return v;
    }
  }
  fail(std::string("the ") + what + " is longer than 10 bytes");
}

// ---- LSB-first bit I/O ----

class BitWriter {
public:
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out) {}
  void put(uint64_t value, int n) {  // n <= 32, value < 2^n
    acc_ |= value << fill_;
    fill_ += n;
    while (fill_ >= 8) {
      out_.push_back(uint8_t(acc_));
      acc_ >>= 8;
      fill_ -= 8;
    }
  }
  void finish() {  // zero-pads the last byte
    if (fill_ > 0) out_.push_back(uint8_t(acc_));
    acc_ = 0;
    fill_ = 0;
  }

private:
  std::vector<uint8_t>& out_;
  uint64_t acc_ = 0;
  int fill_ = 0;
};

// Reads past the end as zero bits; callers check bitsConsumed() against the payload size. After refill() at least
// 56 bits are buffered.
class BitReader {
public:
  BitReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  void refill() {
    if (fill_ > 56) return;
    if (size_ >= 8 && pos_ <= size_ - 8) {
      uint64_t w = 0;
      for (int i = 0; i < 8; ++i) w |= uint64_t(data_[pos_ + size_t(i)]) << (8 * i);
      // Bits of a partly loaded byte land where the next refill puts them again (OR of equal bits).
      buf_ |= w << fill_;
      pos_ += size_t((63 - fill_) >> 3);
      fill_ |= 56;
    } else {
      while (fill_ <= 56) {
        const uint64_t b = pos_ < size_ ? data_[pos_] : 0;
        buf_ |= b << fill_;
        ++pos_;
        fill_ += 8;
      }
    }
  }
  uint32_t peek(int n) const { return uint32_t(buf_ & ((uint64_t(1) << n) - 1)); }  // n <= 32, after refill
  void skip(int n) {
    buf_ >>= n;
    fill_ -= n;
  }
  uint64_t bitsConsumed() const { return uint64_t(pos_) * 8 - uint64_t(fill_); }
  uint64_t bitsTotal() const { return uint64_t(size_) * 8; }

  // Checked read for headers and tables.
  uint32_t read(int n) {
    refill();
    const uint32_t v = peek(n);
    skip(n);
    if (bitsConsumed() > bitsTotal()) fail("truncated Huffman payload");
    return v;
  }

  // The stream must end in the payload's last byte, padded with zero bits: nothing else may follow inside it.
  void finish() {
    const uint64_t used = bitsConsumed();
    if (used > bitsTotal()) fail("truncated payload");
    if ((used + 7) / 8 != size_) fail("trailing bytes inside the payload");
    const int padding = int(bitsTotal() - used);
    refill();
    if (peek(padding) != 0) fail("non-zero padding bits at the end of the payload");
  }

private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;  // bytes loaded into buf_ (may run past size_: zeros)
  uint64_t buf_ = 0;
  int fill_ = 0;
};

// Exp-Golomb of order k: small values short, any value representable; used for the Huffman table.
int expGolombBits(uint64_t v, int k) { return 2 * (bitWidth((v >> k) + 1) - 1) + 1 + k; }

void putExpGolomb(BitWriter& w, uint64_t v, int k) {
  const uint64_t u = (v >> k) + 1;
  const int n = bitWidth(u) - 1;
  w.put(0, n);
  w.put(1, 1);
  w.put(u & ((uint64_t(1) << n) - 1), n);
  w.put(v & ((uint64_t(1) << k) - 1), k);
}

uint64_t getExpGolomb(BitReader& r, int k, const char* what = "Huffman table") {
  int n = 0;
  while (r.read(1) == 0)
    if (++n > 24) fail(std::string("invalid ") + what + " (over-long exp-Golomb code)");
  const uint64_t u = (uint64_t(1) << n) | r.read(n);
  return ((u - 1) << k) | r.read(k);
}

uint64_t zigzag(int64_t v) { return v >= 0 ? uint64_t(v) << 1 : (uint64_t(-v) << 1) - 1; }
int64_t unzigzag(uint64_t z) { return (z & 1) ? -int64_t((z + 1) >> 1) : int64_t(z >> 1); }

uint32_t reverseBits(uint32_t code, int n) {
  uint32_t r = 0;
  for (int i = 0; i < n; ++i) r |= ((code >> i) & 1u) << (n - 1 - i);
  return r;
}

uint32_t reverse32(uint32_t v) {
  v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
  v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
  v = ((v >> 4) & 0x0F0F0F0Fu) | ((v & 0x0F0F0F0Fu) << 4);
  v = ((v >> 8) & 0x00FF00FFu) | ((v & 0x00FF00FFu) << 8);
  return (v >> 16) | (v << 16);
}

// ---- Huffman code construction ----

// Optimal code lengths for the used symbols of `freq` (at least two), limited to kMaxCodeLength.
std::vector<uint8_t> huffmanLengths(const std::vector<uint64_t>& freq) {
  std::vector<uint32_t> leaves;  // used symbols by (frequency, symbol): ties broken by symbol for determinism
  for (size_t s = 0; s < freq.size(); ++s)
    if (freq[s]) leaves.push_back(uint32_t(s));
  std::stable_sort(leaves.begin(), leaves.end(), [&](uint32_t a, uint32_t b) { return freq[a] < freq[b]; });
  const size_t n = leaves.size();

  // Two-queue Huffman: leaves in [0, n), internal nodes appended in non-decreasing weight order.
  std::vector<uint64_t> weight(2 * n - 1);
  std::vector<size_t> parent(2 * n - 1, 0);
  for (size_t i = 0; i < n; ++i) weight[i] = freq[leaves[i]];
  size_t leaf = 0, inner = n;
  for (size_t k = n; k < 2 * n - 1; ++k) {
    size_t pick[2];
    for (size_t& p : pick) p = (leaf < n && (inner >= k || weight[leaf] <= weight[inner])) ? leaf++ : inner++;
    weight[k] = weight[pick[0]] + weight[pick[1]];
    parent[pick[0]] = parent[pick[1]] = k;
  }
  std::vector<uint32_t> depth(2 * n - 1, 0);
  for (size_t k = 2 * n - 1; k-- > 0;)
    if (k != 2 * n - 2) depth[k] = depth[parent[k]] + 1;
  uint32_t maxDepth = 0;
  for (size_t i = 0; i < n; ++i) maxDepth = std::max(maxDepth, depth[i]);
  std::vector<uint64_t> count(std::max<size_t>(maxDepth, kMaxCodeLength) + 1, 0);
  for (size_t i = 0; i < n; ++i) ++count[depth[i]];

  // Length limiting (JPEG Annex K.3): move pairs of over-long leaves up; the Kraft sum stays exactly 1.
  for (size_t i = maxDepth; i > size_t(kMaxCodeLength); --i) {
    while (count[i] > 0) {
      size_t j = i - 2;
      while (j > 0 && count[j] == 0) --j;
      if (j == 0) throw Error("entropy coding: internal error limiting Huffman code lengths");
      count[i] -= 2;
      count[i - 1] += 1;
      count[j + 1] += 2;
      count[j] -= 1;
    }
  }
  // Shortest lengths to the most frequent symbols.
  std::vector<uint8_t> lengths(freq.size(), 0);
  size_t next = n;
  for (int len = 1; len <= kMaxCodeLength; ++len)
    for (uint64_t c = 0; c < count[size_t(len)]; ++c) lengths[leaves[--next]] = uint8_t(len);
  return lengths;
}

// Canonical codes in (length, symbol) order, bit-reversed for the LSB-first stream.
std::vector<uint32_t> canonicalCodes(const std::vector<uint8_t>& lengths) {
  uint32_t count[kMaxCodeLength + 1] = {};
  for (uint8_t l : lengths) ++count[l];
  count[0] = 0;
  uint32_t next[kMaxCodeLength + 2] = {};
  uint32_t code = 0;
  for (int len = 1; len <= kMaxCodeLength; ++len) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  std::vector<uint32_t> codes(lengths.size(), 0);
  for (size_t s = 0; s < lengths.size(); ++s)
    if (lengths[s]) codes[s] = reverseBits(next[lengths[s]]++, lengths[s]);
  return codes;
}

// ---- per-method payloads ----

void encodeRaw(const std::vector<uint32_t>& symbols, int bits, std::vector<uint8_t>& out) {
  out.reserve(out.size() + (symbols.size() * size_t(bits) + 7) / 8);
  BitWriter w(out);
  for (uint32_t s : symbols) w.put(s, bits);
  w.finish();
}

std::vector<uint32_t> decodeRaw(const uint8_t* data, size_t size, uint64_t count, int bits, size_t& pos) {
  const uint64_t available = size - pos;
  if (count > available * 8 / uint64_t(bits)) fail("truncated raw payload");
  const size_t payload = size_t((count * uint64_t(bits) + 7) / 8);
  BitReader r(data + pos, payload);
  std::vector<uint32_t> out(static_cast<size_t>(count));
  for (uint32_t& s : out) {
    r.refill();
    s = r.peek(bits);
    r.skip(bits);
  }
  r.finish();
  pos += payload;
  return out;
}

// Table: (used - 1) in `bits` bits; one used symbol: that symbol, no codes. Otherwise the used symbols as
// exp-Golomb(k) gaps, then their lengths either at a fixed width above the minimum or as exp-Golomb zigzag deltas,
// whichever the encoder finds shorter (smooth histograms give small deltas).
void encodeHuffman(const std::vector<uint32_t>& symbols, int bits, std::vector<uint8_t>& out) {
  if (symbols.empty()) return;
  std::vector<uint64_t> freq(size_t(1) << bits, 0);
  for (uint32_t s : symbols) ++freq[s];
  std::vector<uint32_t> used;
  for (size_t s = 0; s < freq.size(); ++s)
    if (freq[s]) used.push_back(uint32_t(s));

  BitWriter w(out);
  w.put(used.size() - 1, bits);
  if (used.size() == 1) {
    w.put(used[0], bits);
    w.finish();
    return;
  }
  const std::vector<uint8_t> lengths = huffmanLengths(freq);
  const std::vector<uint32_t> codes = canonicalCodes(lengths);

  std::vector<uint64_t> gaps(used.size());
  for (size_t i = 0; i < used.size(); ++i) gaps[i] = i == 0 ? used[0] : used[i] - used[i - 1] - 1;
  int gapK = 0;
  uint64_t gapCost = std::numeric_limits<uint64_t>::max();
  for (int k = 0; k < 16; ++k) {
    uint64_t c = 0;
    for (uint64_t g : gaps) c += uint64_t(expGolombBits(g, k));
    if (c < gapCost) gapCost = c, gapK = k;
  }
  w.put(uint32_t(gapK), 4);
  for (uint64_t g : gaps) putExpGolomb(w, g, gapK);

  int minLen = kMaxCodeLength, maxLen = 1;
  for (uint32_t s : used) minLen = std::min<int>(minLen, lengths[s]), maxLen = std::max<int>(maxLen, lengths[s]);
  const int fixedWidth = bitWidth(uint64_t(maxLen - minLen));
  int mode = 0;  // 0: fixed width; 1..3: exp-Golomb order mode-1 of zigzag deltas
  uint64_t modeCost = 3 + uint64_t(fixedWidth) * used.size();
  for (int k = 0; k < 3; ++k) {
    uint64_t c = 0;
    int prev = minLen;
    for (uint32_t s : used) c += uint64_t(expGolombBits(zigzag(lengths[s] - prev), k)), prev = lengths[s];
    if (c < modeCost) modeCost = c, mode = k + 1;
  }
  w.put(uint32_t(minLen), 5);
  w.put(uint32_t(mode), 2);
  if (mode == 0) {
    w.put(uint32_t(fixedWidth), 3);
    for (uint32_t s : used) w.put(uint32_t(lengths[s] - minLen), fixedWidth);
  } else {
    int prev = minLen;
    for (uint32_t s : used) putExpGolomb(w, zigzag(lengths[s] - prev), mode - 1), prev = lengths[s];
  }

  for (uint32_t s : symbols) w.put(codes[s], lengths[s]);
  w.finish();
}

std::vector<uint32_t> decodeHuffman(const uint8_t* payload, size_t size, uint64_t count, int bits) {
  if (count == 0) {
    if (size != 0) fail("trailing bytes inside an empty Huffman payload");
    return {};
  }
  BitReader r(payload, size);
  const uint32_t nUsed = r.read(bits) + 1;
  if (nUsed == 1) {
    const uint32_t symbol = r.read(bits);
    r.finish();
    return std::vector<uint32_t>(size_t(count), symbol);
  }

  const int gapK = int(r.read(4));
  std::vector<uint32_t> used(nUsed);
  const uint64_t alphabet = uint64_t(1) << bits;
  uint64_t next = 0;  // smallest symbol the next gap can name
  for (uint32_t& s : used) {
    const uint64_t gap = getExpGolomb(r, gapK);
    if (gap >= alphabet || next + gap >= alphabet) fail("invalid Huffman table (symbol outside 2^bits)");
    s = uint32_t(next + gap);
    next = uint64_t(s) + 1;
  }
  const int minLen = int(r.read(5));
  const int mode = int(r.read(2));
  if (minLen < 1 || minLen > kMaxCodeLength) fail("invalid Huffman table (minimum code length)");
  std::vector<uint8_t> lens(nUsed);
  if (mode == 0) {
    const int width = int(r.read(3));
    if (width > 5) fail("invalid Huffman table (length width)");
    for (uint8_t& l : lens) {
      const int len = minLen + int(r.read(width));
      if (len > kMaxCodeLength) fail("invalid Huffman table (code length over the limit)");
      l = uint8_t(len);
    }
  } else {
    int64_t prev = minLen;
    for (uint8_t& l : lens) {
      const uint64_t z = getExpGolomb(r, mode - 1);
      if (z > 2 * kMaxCodeLength) fail("invalid Huffman table (code length delta)");
      const int64_t len = prev + unzigzag(z);
      if (len < 1 || len > kMaxCodeLength) fail("invalid Huffman table (code length outside 1..20)");
      l = uint8_t(len);
      prev = len;
    }
  }
  // The code must be complete: an over-full code is ambiguous, an incomplete one leaves undecodable patterns.
  uint64_t kraft = 0;
  uint32_t perLength[kMaxCodeLength + 1] = {};
  int maxLen = 0;
  for (uint8_t l : lens) {
    kraft += uint64_t(1) << (kMaxCodeLength - l);
    ++perLength[l];
    maxLen = std::max<int>(maxLen, l);
  }
  if (kraft != (uint64_t(1) << kMaxCodeLength))
    fail("invalid Huffman table (code lengths do not form a complete code)");

  // Every symbol takes at least one bit: this bounds the allocation by the payload size.
  if (count > r.bitsTotal() - std::min(r.bitsTotal(), r.bitsConsumed())) fail("truncated Huffman payload");

  // Canonical decode structures: symbols in (length, symbol) order, first code and offset per length.
  uint32_t first[kMaxCodeLength + 2] = {}, offset[kMaxCodeLength + 2] = {};
  {
    uint32_t code = 0, off = 0;
    for (int len = 1; len <= kMaxCodeLength; ++len) {
      code = (code + (len > 1 ? perLength[len - 1] : 0)) << 1;
      first[len] = code;
      offset[len] = off;
      off += perLength[len];
    }
  }
  std::vector<uint32_t> sorted(nUsed);
  {
    uint32_t fill[kMaxCodeLength + 2];
    std::copy(offset, offset + kMaxCodeLength + 2, fill);
    for (uint32_t i = 0; i < nUsed; ++i) sorted[fill[lens[i]]++] = used[i];
  }
  // Longer streams afford a wider table (at most count/4 entries) so that fewer codes take the slow path.
  int fastBits = kFastBits;
  while (fastBits < kMaxFastBits && (uint64_t(1) << (fastBits + 2)) <= count) ++fastBits;
  fastBits = std::min(fastBits, maxLen);
  std::vector<uint32_t> table(size_t(1) << fastBits, 0);  // (symbol << 5) | length; 0: longer than fastBits
  for (int len = 1; len <= fastBits; ++len)
    for (uint32_t i = 0; i < perLength[len]; ++i) {
      const uint32_t entry = (sorted[offset[len] + i] << 5) | uint32_t(len);
      for (size_t j = reverseBits(first[len] + i, len); j < table.size(); j += size_t(1) << len) table[j] = entry;
    }

  std::vector<uint32_t> out(static_cast<size_t>(count));
  for (uint32_t& s : out) {
    r.refill();
    const uint32_t e = table[r.peek(fastBits)];
    if (e & 31u) {
      s = e >> 5;
      r.skip(int(e & 31u));
      continue;
    }
    // Longer code (rare: the least frequent symbols): canonical search on the MSB-first view of the next bits.
    const uint32_t window = reverse32(r.peek(maxLen)) >> (32 - maxLen);
    int len = fastBits + 1;
    uint32_t code = 0;
    for (; len <= maxLen; ++len) {
      code = window >> (maxLen - len);
      if (code >= first[len] && code - first[len] < perLength[len]) break;
    }
    if (len > maxLen) fail("invalid Huffman code");  // unreachable for a complete code
    s = sorted[offset[len] + (code - first[len])];
    r.skip(len);
  }
  r.finish();
  return out;
}

void encodeZstd(const std::vector<uint32_t>& symbols, int bits, std::vector<uint8_t>& out) {
  const size_t bps = bits <= 8 ? 1 : 2;
  std::vector<uint8_t> bytes;
  bytes.reserve(symbols.size() * bps);
  for (uint32_t s : symbols) {
    bytes.push_back(uint8_t(s));
    if (bps == 2) bytes.push_back(uint8_t(s >> 8));
  }
  const size_t start = out.size();
  out.resize(start + ZSTD_compressBound(bytes.size()));
  const size_t n = ZSTD_compress(out.data() + start, out.size() - start, bytes.data(), bytes.size(), kZstdLevel);
  if (ZSTD_isError(n)) throw Error(std::string("entropy coding: zstd failed: ") + ZSTD_getErrorName(n));
  out.resize(start + n);
}

std::vector<uint32_t> decodeZstd(const uint8_t* payload, size_t size, uint64_t count, int bits) {
  const uint64_t bps = bits <= 8 ? 1 : 2;
  if (count > uint64_t(std::numeric_limits<size_t>::max()) / 4) fail("symbol count too large");
  if (size < 4 || (uint32_t(payload[0]) | uint32_t(payload[1]) << 8 | uint32_t(payload[2]) << 16 |
                   uint32_t(payload[3]) << 24) != kZstdMagic)
    fail("the zstd payload is not a zstd frame");
  const size_t frame = ZSTD_findFrameCompressedSize(payload, size);
  if (ZSTD_isError(frame)) fail(std::string("zstd: ") + ZSTD_getErrorName(frame));
  if (frame != size) fail("trailing bytes inside the zstd payload");
  const unsigned long long content = ZSTD_getFrameContentSize(payload, size);
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR)
    fail("the zstd frame does not state its content size");
  if (content != count * bps) fail("the zstd frame's content size does not match the symbol count");
  std::vector<uint8_t> bytes(size_t(std::max<uint64_t>(content, 1)));
  const size_t n = ZSTD_decompress(bytes.data(), size_t(content), payload, size);
  if (ZSTD_isError(n)) fail(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != content) fail("the zstd frame decompressed to the wrong size");
  std::vector<uint32_t> out(static_cast<size_t>(count));
  const uint32_t limit = uint32_t(1) << bits;
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t s = bps == 1 ? bytes[i] : uint32_t(bytes[2 * i]) | uint32_t(bytes[2 * i + 1]) << 8;
    if (s >= limit) fail("symbol " + std::to_string(s) + " at index " + std::to_string(i) + " is not below 2^" +
                         std::to_string(bits));
    out[i] = s;
  }
  return out;
}

// ExpGolomb: one order k for the stream (the cheapest), then every symbol's code: for values spread like a
// geometric law over a wide range (sorted codebooks' key differences), where a Huffman table would cost more
// than it saves.
void encodeExpGolomb(const std::vector<uint32_t>& symbols, int bits, std::vector<uint8_t>& out) {
  int bestK = 0;
  uint64_t bestBits = UINT64_MAX;
  for (int k = 0; k <= bits; ++k) {
    uint64_t total = 0;
    for (uint32_t v : symbols) total += uint64_t(expGolombBits(v, k));
    if (total < bestBits) bestBits = total, bestK = k;
  }
  out.push_back(uint8_t(bestK));
  BitWriter w(out);
  for (uint32_t v : symbols) putExpGolomb(w, v, bestK);
  w.finish();
}

std::vector<uint32_t> decodeExpGolomb(const uint8_t* payload, size_t size, uint64_t count, int bits) {
  if (size < 1) fail("truncated exp-Golomb payload");
  const int k = payload[0];
  if (k > bits) fail("invalid exp-Golomb order " + std::to_string(k));
  // Every code takes at least k + 1 bits: a count the payload cannot hold is refused before allocating.
  if (count > (uint64_t(size - 1) * 8) / uint64_t(k + 1)) fail("exp-Golomb payload too short for its symbols");
  BitReader r(payload + 1, size - 1);
  std::vector<uint32_t> out(static_cast<size_t>(count));
  const uint64_t limit = uint64_t(1) << bits;
  for (uint32_t& v : out) {
    const uint64_t x = getExpGolomb(r, k, "exp-Golomb stream");
    if (x >= limit || r.bitsConsumed() > r.bitsTotal()) fail("exp-Golomb stream is corrupt");
    v = uint32_t(x);
  }
  return out;
}

std::vector<uint8_t> encodeWith(EntropyMethod m, const std::vector<uint32_t>& symbols, int bits) {
  std::vector<uint8_t> out;
  out.push_back(uint8_t(m));
  putVarint(out, symbols.size());
  if (m == EntropyMethod::Raw) {
    encodeRaw(symbols, bits, out);
    return out;
  }
  std::vector<uint8_t> payload;
  if (m == EntropyMethod::Huffman)
    encodeHuffman(symbols, bits, payload);
  else if (m == EntropyMethod::Zstd)
    encodeZstd(symbols, bits, payload);
  else
    encodeExpGolomb(symbols, bits, payload);
  putVarint(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void checkSymbols(const std::vector<uint32_t>& symbols, int bits) {
  checkBits(bits);
  const uint32_t limit = uint32_t(1) << bits;
  for (size_t i = 0; i < symbols.size(); ++i)
    if (symbols[i] >= limit)
      throw Error("entropy coding: symbol " + std::to_string(symbols[i]) + " at index " + std::to_string(i) +
                  " does not fit in " + std::to_string(bits) + " bits");
}

}  // namespace

std::vector<uint8_t> encodeSymbols(const std::vector<uint32_t>& symbols, int bits, unsigned allowed,
                                   EntropyMethod* chosen) {
  checkSymbols(symbols, bits);
  if (allowed == 0 || (allowed & ~15u))
    throw Error("entropy coding: allowed-method mask " + std::to_string(allowed) + " is not a non-empty subset of 15");
  std::vector<uint8_t> best;
  EntropyMethod bestMethod = EntropyMethod::Raw;
  for (int m = 0; m < 4; ++m) {
    if (!(allowed & (1u << m))) continue;
    std::vector<uint8_t> s = encodeWith(EntropyMethod(m), symbols, bits);
    if (best.empty() || s.size() < best.size()) best.swap(s), bestMethod = EntropyMethod(m);
  }
  if (chosen) *chosen = bestMethod;
  return best;
}

std::vector<uint32_t> decodeSymbols(const uint8_t* data, size_t size, uint64_t expectedCount, int bits,
                                    size_t* consumed) {
  checkBits(bits);
  if (!data && size) fail("null data");
  size_t pos = 0;
  if (size < 1) fail("truncated before the method byte");
  const uint8_t method = data[pos++];
  if (method > 3) fail("unknown method byte " + std::to_string(method));
  const uint64_t count = getVarint(data, size, pos, "symbol count");
  if (count != expectedCount)
    fail("holds " + std::to_string(count) + " symbols where " + std::to_string(expectedCount) + " were expected");
  if (count > uint64_t(std::numeric_limits<size_t>::max()) / sizeof(uint32_t)) fail("symbol count too large");

  std::vector<uint32_t> out;
  if (method == uint8_t(EntropyMethod::Raw)) {
    out = decodeRaw(data, size, count, bits, pos);
  } else {
    const uint64_t payload = getVarint(data, size, pos, "payload length");
    if (payload > size - pos) fail("truncated payload (" + std::to_string(payload) + " bytes stated, " +
                                   std::to_string(size - pos) + " available)");
    const uint8_t* p = data + pos;
    out = method == uint8_t(EntropyMethod::Huffman) ? decodeHuffman(p, size_t(payload), count, bits)
          : method == uint8_t(EntropyMethod::Zstd)  ? decodeZstd(p, size_t(payload), count, bits)
                                                    : decodeExpGolomb(p, size_t(payload), count, bits);
    pos += size_t(payload);
  }
  if (consumed) *consumed = pos;
  return out;
}

std::vector<uint8_t> encodeBits(const std::vector<uint8_t>& bits01, unsigned allowed, EntropyMethod* chosen) {
  std::vector<uint32_t> bytes((bits01.size() + 7) / 8, 0);
  for (size_t i = 0; i < bits01.size(); ++i) {
    if (bits01[i] > 1)
      throw Error("entropy coding: mask value " + std::to_string(bits01[i]) + " at index " + std::to_string(i) +
                  " is not 0 or 1");
    bytes[i / 8] |= uint32_t(bits01[i]) << (i % 8);
  }
  return encodeSymbols(bytes, 8, allowed, chosen);
}

std::vector<uint8_t> decodeBits(const uint8_t* data, size_t size, uint64_t expectedCount, size_t* consumed) {
  if (expectedCount > std::numeric_limits<uint64_t>::max() - 7) fail("bit count too large");
  size_t used = 0;
  const std::vector<uint32_t> bytes = decodeSymbols(data, size, (expectedCount + 7) / 8, 8, &used);
  if (expectedCount % 8 && (bytes.back() >> (expectedCount % 8)) != 0)
    fail("non-zero padding bits after the last mask bit");
  std::vector<uint8_t> out(static_cast<size_t>(expectedCount));
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t((bytes[i / 8] >> (i % 8)) & 1u);
  if (consumed) *consumed = used;
  return out;
}

EntropySizes measureSymbols(const std::vector<uint32_t>& symbols, int bits) {
  checkSymbols(symbols, bits);
  EntropySizes s;
  s.raw = encodeWith(EntropyMethod::Raw, symbols, bits).size();
  s.huffman = encodeWith(EntropyMethod::Huffman, symbols, bits).size();
  s.zstd = encodeWith(EntropyMethod::Zstd, symbols, bits).size();
  s.expGolomb = encodeWith(EntropyMethod::ExpGolomb, symbols, bits).size();
  return s;
}

}  // namespace ecnr
