// Encoder: the whole ECNR pipeline. Normalize, build the Laplacian pyramid, then from the coarsest scale up:
// residual against the *decoded* coarser scale, effective blocks, assignment, ensemble training, decode.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ecnr/Field.h"
#include "ecnr/FieldSource.h"
#include "ecnr/Model.h"
#include "ecnr/Progress.h"
#include "ecnr/Settings.h"

namespace ecnr {

struct ScaleReport {
  Dims4 dims;
  int64_t totalBlocks = 0;
  int64_t effectiveBlocks = 0;
  int mlps = 0;
  int epochs = 0;
  double trainSeconds = 0;
  double trainLoss = 0;
  double sparsity = 0;   ///< fraction of the pruning candidates pruned
  double samplesPerSecond = 0;
  double psnrAfter = 0;  ///< PSNR (normalized range 2) of this scale's reconstruction against its target V_i
};

struct EncodeReport {
  std::array<int, 3> blockDims{};
  std::vector<ScaleReport> scales;  ///< coarsest first
  double seconds = 0;
  double psnrBeforeCnn = 0, psnrAfterCnn = 0, cnnSeconds = 0;  ///< boundary CNN (normalized range), when trained
  // Quality modes (Quality.h): zeros in Expert mode.
  int networkAttempts = 0;        ///< networks trained to meet the mode (a retrain when the first was off target)
  uint64_t networkBytes = 0;      ///< archive bytes without the correction
  uint64_t correctionBytes = 0;   ///< bytes of the Residual section
  double correctionSeconds = 0;   ///< spread measurement + step search + coding
  std::vector<std::pair<uint64_t, double>> networks;  ///< every network trained: archive bytes, PSNR (dB)
};

/// Encodes `field` (validated: finite values, sane dims) as settings.mode asks: Expert trains the network as set;
/// the other modes add the correction of Quality.h. Throws Error on bad input, Cancelled on cancel.
Model encode(const Field& field, const GridMeta& meta, const EncoderSettings& settings, const Progress& progress,
             EncodeReport* report = nullptr);

/// The same from a source read step by step (VolumeIO.h openField: a memory-mapped file). In Expert mode the
/// series is never held whole: each pass over the finest scale reads it again (memory: the finest scale's
/// training values, the coarser scales and a few time steps; MemoryEstimate.h). The quality modes read it into
/// memory first (their correction compares whole decodes).
Model encode(const FieldSource& source, const GridMeta& meta, const EncoderSettings& settings,
             const Progress& progress, EncodeReport* report = nullptr);

/// A series as independent windows of `windowSteps` consecutive steps (the last may be shorter; Series.h), each
/// encoded as encode() does, one after the other (memory: one window at a time). windowSteps <= 0 or >= the step
/// count gives one window. `report`, when given, gets one entry per window.
std::vector<Model> encodeWindows(const Field& field, const GridMeta& meta, const EncoderSettings& settings,
                                 int64_t windowSteps, const Progress& progress,
                                 std::vector<EncodeReport>* reports = nullptr);

std::vector<Model> encodeWindows(const FieldSource& source, const GridMeta& meta, const EncoderSettings& settings,
                                 int64_t windowSteps, const Progress& progress,
                                 std::vector<EncodeReport>* reports = nullptr);

/// The network alone (the paper's pipeline), whatever settings.mode says.
Model encodeNetwork(const Field& field, const GridMeta& meta, const EncoderSettings& settings, const Progress& progress,
                    EncodeReport* report = nullptr);
Model encodeNetwork(const FieldSource& source, const GridMeta& meta, const EncoderSettings& settings,
                    const Progress& progress, EncodeReport* report = nullptr);

}  // namespace ecnr
