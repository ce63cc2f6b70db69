// Archive: the .ecnr file. A versioned container of typed, length-prefixed, checksummed sections with a
// table of contents, so a reader can load the header alone, or the coarse scales alone. Layout: docs/ARCHIVE.md.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ecnr/Model.h"

namespace ecnr {

/// 2: entropy-coded Scale payloads (1 is still read); 3: a file with a Residual or Window section (written as 3 so
/// that a version-2 reader refuses it instead of skipping the correction and silently losing the error bound, or
/// reading time windows as separate arrays); 4: an array with a latent grid or shared codes (MlpShape::latentGrid,
/// codeSteps: two fields its Header gains). A file takes the lowest version that holds what it has.
constexpr uint32_t kArchiveVersion = 4;

enum class SectionType : uint32_t { Header = 1, Scale = 2, BoundaryCnn = 3, Residual = 4, Window = 5 };

/// One entry of the table of contents.
struct SectionInfo {
  SectionType type = SectionType::Header;
  uint32_t array = 0;   ///< which array of the archive (several arrays share one grid)
  uint32_t scale = 0;   ///< scale position, 0 = coarsest (Scale sections)
  uint64_t offset = 0;  ///< from the start of the file
  uint64_t length = 0;  ///< payload bytes
  uint32_t crc = 0;     ///< CRC-32C of the payload
};

/// Bytes of each component, for `ecnr info` (the paper's appendix Fig. 2): the block table (kept blocks, their
/// MLP and value range), latent codes, and the MLPs as pruning masks + shared values (codebooks) + indices, or as
/// plain weights; the boundary CNN.
struct ComponentBytes {
  uint64_t header = 0, toc = 0, blockTable = 0, latents = 0, weights = 0;
  uint64_t masks = 0, codebooks = 0, indices = 0, cnn = 0, residual = 0;
  uint64_t total() const {
    return header + toc + blockTable + latents + weights + masks + codebooks + indices + cnn + residual;
  }
};

/// What a Residual section adds to an archive (payload + its table-of-contents entry), without serializing.
uint64_t residualSectionBytes(const ResidualCorrection& c);

/// Serializes one or more parts into archive bytes: arrays of one grid, each array one Model or several time
/// windows (Series.h; Model::firstStep, which seriesOf checks).
std::vector<uint8_t> serializeArchive(const std::vector<Model>& arrays);

/// Archive bytes with `parts` (new time windows, usually) added after the existing sections, which are copied
/// byte for byte: nothing already in the file is re-encoded. The result must still form valid series (seriesOf).
std::vector<uint8_t> appendToArchive(const uint8_t* data, size_t size, const std::vector<Model>& parts);

/// The same on a file: `parts` number their steps from the first new one (firstStep 0 = right after the last step
/// of their array, found by name); the file is replaced atomically and keeps its bytes on any error. Returns the
/// new size.
uint64_t appendStepsToArchive(const std::string& path, std::vector<Model> parts);
/// Parses archive bytes; every length, count and checksum is verified; errors name the section.
/// maxScales < 0 loads every scale; otherwise only the coarsest maxScales scales of each array are decoded and
/// checksummed. The finer scales then keep their grid (dims, halved axes, block dims) but no blocks and no
/// MLPs, so a Decoder still produces the full grid: the coarse preview, upsampled.
std::vector<Model> parseArchive(const uint8_t* data, size_t size, int maxScales = -1);

/// Writes atomically: a temporary file in the same folder, flushed, then renamed over `path`.
/// On any failure the temporary is removed and `path` is left as it was.
void writeArchive(const std::vector<Model>& arrays, const std::string& path);
std::vector<Model> readArchive(const std::string& path, int maxScales = -1);

/// Table of contents and component sizes without decoding the weights.
struct ArchiveSummary {
  uint32_t version = 0;
  uint64_t fileBytes = 0;
  std::vector<SectionInfo> sections;
  ComponentBytes bytes;
  /// Per array: the quality mode, its target and the achieved figures (Expert with zeros when none was stored),
  /// and the guaranteed bound (0 = none).
  std::vector<QualityInfo> quality;
  std::vector<double> bound;
};
ArchiveSummary summarizeArchive(const std::string& path);
/// The same for archive bytes already in memory (verifies the prefix and the table of contents, reads only the
/// fixed fields of each section).
ArchiveSummary summarizeArchive(const uint8_t* data, size_t size);

/// Writes bytes to `path` atomically (temporary + rename); shared by every writer of the project.
void writeFileAtomic(const std::string& path, const uint8_t* data, size_t size);
/// The same from pieces written one after the other (a header and a field's memory: no copy joins them).
void writeFileAtomic(const std::string& path, const std::vector<std::pair<const uint8_t*, size_t>>& parts);

}  // namespace ecnr
