// StagedSeries: a time series written to disk one step at a time while the writer walks the input's time steps,
// so the writer never holds the series; the encoder then reads it back step by step through a memory map
// (ecnr::openRaw). The file is removed when the object goes away, whatever happened in between.
#ifndef ECNRStaging_h
#define ECNRStaging_h

#include <cstdint>
#include <memory>
#include <string>

#include "ecnr/FieldSource.h"

namespace ecnr
{
class StagedSeries
{
public:
  /// A new, uniquely named file in `directory` (Error when it cannot be created, naming the path and why).
  StagedSeries(const std::string& directory, const std::string& label, int64_t voxelsPerStep);
  ~StagedSeries();
  StagedSeries(const StagedSeries&) = delete;
  StagedSeries& operator=(const StagedSeries&) = delete;

  /// Appends one step of voxelsPerStep values; Error on a short write (disk full), naming the file.
  void appendStep(const float* values);
  int64_t steps() const { return this->Steps; }
  const std::string& path() const { return this->Path; }
  /// Ends the writing and opens the file as a source of the grid (x, y, z) and steps() time steps.
  std::unique_ptr<FieldSource> source(const Dims4& grid);

private:
  std::string Path;
  int Fd = -1;
  int64_t VoxelsPerStep = 0;
  int64_t Steps = 0;
};

/// Where the staging files go: `requested` when set, else the directory of the output file (where the user has
/// room to write; the temp directory may be a RAM disk).
std::string stagingDirectory(const char* requested, const char* outputFile);
}

#endif
