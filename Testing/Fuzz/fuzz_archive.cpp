// libFuzzer target over the archive reader: parseArchive (full read and coarse previews) and summarizeArchive,
// on the input as given and on a copy whose checksums were recomputed (otherwise almost every mutation stops at
// the first checksum and the fuzzer never reaches the fields behind it). With ECNR_FUZZ_DECODE, small archives that
// parse are also decoded (Decoder: every step, previews, one region), which is what a reader does next.
//
// Anything but ecnr::Error escaping (std::bad_alloc, std::length_error, ...) is a finding, as are the invariants
// checked below (a file the reader accepts must be one the writer would write, and the summary must agree).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ecnr/Archive.h"
#include "ecnr/Checksum.h"
#ifdef ECNR_FUZZ_DECODE
#include "ecnr/Decoder.h"
#endif

using namespace ecnr;

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "ecnr fuzz: invariant violated: %s\n", what);
  std::abort();
}

uint64_t getLE(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

void putLE(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = uint8_t(v >> (8 * i));
}

/// The input with every checksum the layout lets us locate recomputed (docs/ARCHIVE.md): payload CRCs of entries
/// that lie inside the file, then the TOC CRC. Returns false when there is no table of contents to fix.
bool withChecksumsFixed(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
  if (size < 20) return false;
  const uint64_t count = getLE(data + 12, 4);
  if (count > (size - 20) / 32) return false;
  out.assign(data, data + size);
  const size_t tocEnd = size_t(16 + 32 * count);
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t* e = out.data() + 16 + 32 * i;
    const uint64_t offset = getLE(e + 16, 8), length = getLE(e + 24, 8);
    if (offset <= size && length <= size - offset) putLE(e + 12, crc32c(out.data() + offset, size_t(length)), 4);
  }
  putLE(out.data() + tocEnd, crc32c(out.data(), tocEnd), 4);
  return true;
}

#ifdef ECNR_FUZZ_DECODE
/// Decoding allocates the grid the header claims; only archives whose every scale is small are decoded here.
bool smallEnoughToDecode(const Model& m) {
  if (m.dims.count() > (int64_t(1) << 15)) return false;
  for (const ScaleModel& s : m.scales)
    if (s.dims.count() > (int64_t(1) << 15) ||
        int64_t(s.blockDims[0]) * s.blockDims[1] * s.blockDims[2] > (int64_t(1) << 15))
      return false;
  return true;
}

void decodeAll(const std::vector<Model>& arrays) {
  for (const Model& m : arrays) {
    if (!smallEnoughToDecode(m)) continue;
    try {
      Decoder d(m);
      d.decodeAll();
      d.decodeAll(1, false);
      d.decodeStep(m.dims.t - 1);
      d.decodeRegion(0, Extent{0, 0, 0, m.dims.y - 1, m.dims.z / 2, m.dims.z - 1});
    } catch (const Error&) {
    }
  }
}
#endif

void check(const uint8_t* data, size_t size) {
  std::vector<Model> full;
  bool parsed = false;
  try {
    full = parseArchive(data, size);
    parsed = true;
  } catch (const Error&) {
  }
  for (int maxScales : {0, 1, 2}) {
    try {
      const std::vector<Model> preview = parseArchive(data, size, maxScales);
#ifdef ECNR_FUZZ_DECODE
      if (maxScales == 1) decodeAll(preview);  // finer scales are grids without blocks: still a full decode
#else
      (void)preview;
#endif
    } catch (const Error&) {
      if (parsed) violated("a coarse preview refused a file that a full read accepted");
    }
  }
  try {
    const ArchiveSummary summary = summarizeArchive(data, size);
    if (summary.bytes.total() != size) violated("the summary's components do not add up to the file size");
  } catch (const Error&) {
    if (parsed) violated("summarizeArchive refused a file that parseArchive accepted");
  }
  if (!parsed) return;
  // What the reader accepts, the writer must write, and writing what it reads back must be stable.
  std::vector<uint8_t> again;
  try {
    again = serializeArchive(full);
  } catch (const Error&) {
    violated("the writer refuses a model that the reader accepted");
  }
  std::vector<Model> back;
  try {
    back = parseArchive(again.data(), again.size());
  } catch (const Error&) {
    violated("the reader refuses what the writer wrote");
  }
  if (serializeArchive(back) != again) violated("writing what was read back changes the bytes");
#ifdef ECNR_FUZZ_DECODE
  decodeAll(full);
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check(data, size);
  std::vector<uint8_t> fixed;
  if (withChecksumsFixed(data, size, fixed)) check(fixed.data(), fixed.size());
  return 0;
}
