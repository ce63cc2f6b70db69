// Writes the fuzzers' seed corpus: real small archives made by the encoder (a few epochs, narrow MLPs so each file
// is a few KB) covering what the reader must handle: float16 and float32, several scales, a 2D image, a single
// time step, odd dims, a constant field (no blocks), non-uniform time values, two arrays, and an unknown
// (extension) section. Usage: ecnr_make_corpus <output folder>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ecnr/Archive.h"
#include "ecnr/Checksum.h"
#include "ecnr/Encoder.h"

using namespace ecnr;

namespace {

Field wave(const Dims4& d, float phase) {
  Field f(d);
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t z = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x)
          f.at(x, y, z, t) = std::sin(0.7f * float(x) + phase + 0.3f * float(t)) * std::cos(0.5f * float(y)) +
                             0.1f * float(z);
  return f;
}

EncoderSettings tiny(int scales, WeightPrecision p) {
  EncoderSettings s = presetSettings("fast");
  s.scales = scales;
  s.epochs = {2, 2, 2};
  s.latentDim = 2;
  s.hidden = 4;
  s.sineLayers = 1;
  s.batchPerMlp = 16;
  s.minAxisLength = 2;
  s.threads = 1;
  s.precision = p;
  s.verbose = false;
  return s;
}

Model encodeTiny(const Field& f, int scales, WeightPrecision p, const GridMeta& meta = GridMeta{}) {
  return encode(f, meta, tiny(scales, p), Progress());
}

void putLE(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

/// The archive with one extra section of an unknown type appended (layout: docs/ARCHIVE.md).
std::vector<uint8_t> withExtensionSection(const std::vector<uint8_t>& archive) {
  const ArchiveSummary s = summarizeArchive(archive.data(), archive.size());
  const std::vector<uint8_t> extra{'t', 'h', 'u', 'm', 'b'};
  const size_t n = s.sections.size() + 1;
  std::vector<uint8_t> out{archive.begin(), archive.begin() + 8};
  putLE(out, s.version, 4);  // the archive's own: its Header layout depends on it
  putLE(out, n, 4);
  uint64_t offset = 16 + 32 * n + 4;
  auto entry = [&](uint32_t type, uint32_t array, uint32_t scale, const uint8_t* p, uint64_t length) {
    putLE(out, type, 4);
    putLE(out, array, 4);
    putLE(out, scale, 4);
    putLE(out, crc32c(p, size_t(length)), 4);
    putLE(out, offset, 8);
    putLE(out, length, 8);
    offset += length;
  };
  for (const SectionInfo& e : s.sections)
    entry(uint32_t(e.type), e.array, e.scale, archive.data() + e.offset, e.length);
  entry(77, 0, 0, extra.data(), extra.size());
  putLE(out, crc32c(out.data(), out.size()), 4);
  for (const SectionInfo& e : s.sections)
    out.insert(out.end(), archive.begin() + long(e.offset), archive.begin() + long(e.offset + e.length));
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ecnr_make_corpus <output folder>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  int written = 0;
  auto save = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    writeFileAtomic((dir / (name + ".ecnr")).string(), bytes.data(), bytes.size());
    ++written;
  };
  try {
    const Model series = encodeTiny(wave(Dims4{8, 8, 8, 2}, 0.0f), 2, WeightPrecision::Float16);
    save("series-f16", serializeArchive({series}));
    save("series-f32", serializeArchive({encodeTiny(wave(Dims4{8, 8, 4, 2}, 0.5f), 2, WeightPrecision::Float32)}));
    save("three-scales", serializeArchive({encodeTiny(wave(Dims4{8, 8, 8, 4}, 1.0f), 3, WeightPrecision::Float16)}));
    save("image-2d", serializeArchive({encodeTiny(wave(Dims4{12, 10, 1, 1}, 0.2f), 2, WeightPrecision::Float16)}));
    save("single-step", serializeArchive({encodeTiny(wave(Dims4{6, 6, 6, 1}, 0.3f), 1, WeightPrecision::Float32)}));
    save("odd-dims", serializeArchive({encodeTiny(wave(Dims4{7, 5, 3, 3}, 0.4f), 2, WeightPrecision::Float16)}));
    save("constant", serializeArchive({encodeTiny(Field(Dims4{8, 8, 8, 2}, 3.5f), 2, WeightPrecision::Float16)}));
    GridMeta meta;
    meta.times = {0.0, 0.1, 0.35, 1.0};
    meta.spacing = {0.5, 1.0, 2.0};
    meta.origin = {-1.0, 0.0, 10.0};
    meta.arrayName = "pressure";
    const Model timed = encodeTiny(wave(Dims4{8, 4, 4, 4}, 0.6f), 2, WeightPrecision::Float16, meta);
    save("nonuniform-times", serializeArchive({timed}));
    meta.arrayName = "temperature";
    const Model second = encodeTiny(wave(Dims4{8, 4, 4, 4}, 2.0f), 2, WeightPrecision::Float32, meta);
    save("two-arrays", serializeArchive({timed, second}));
    save("extension-section", withExtensionSection(serializeArchive({series})));
    // The error-bounded correction (Residual section, version 3): one bounded and one target-PSNR archive.
    EncoderSettings bounded = tiny(2, WeightPrecision::Float16);
    bounded.mode = QualityMode::MaxError;
    bounded.relativeError = 1e-3;
    save("max-error", serializeArchive({encode(wave(Dims4{8, 8, 8, 2}, 0.7f), GridMeta{}, bounded, Progress())}));
    EncoderSettings psnr = tiny(2, WeightPrecision::Float16);
    psnr.mode = QualityMode::Psnr;
    psnr.targetPsnr = 60;
    save("target-psnr", serializeArchive({encode(wave(Dims4{9, 7, 5, 3}, 0.9f), GridMeta{}, psnr, Progress())}));
    // A latent grid (version 4: the Header's latent grid field).
    EncoderSettings grid = tiny(2, WeightPrecision::Float16);
    grid.latentGrid = 2;
    save("latent-grid", serializeArchive({encode(wave(Dims4{8, 8, 8, 2}, 0.8f), GridMeta{}, grid, Progress())}));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ecnr_make_corpus: %s\n", e.what());
    return 1;
  }
  std::printf("ecnr_make_corpus: wrote %d archives to %s\n", written, dir.string().c_str());
  return 0;
}
