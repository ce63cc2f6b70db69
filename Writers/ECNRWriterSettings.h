// The writer's properties -> ecnr::EncoderSettings. Shared by vtkECNRWriter and the Qt size-estimate widget so
// that the estimate is computed from exactly the settings a save would use. Not wrapped (no VTK type).
#pragma once

#include <array>
#include <string>

#include "ecnr/Settings.h"

#include "ECNRWritersModule.h"

namespace ecnr {

/// The writer's user-facing knobs. 0 / empty = "take the preset's (or the data-derived) value".
struct WriterKnobs {
  int preset = 1;                       ///< 0 fast, 1 default, 2 quality
  int scales = 0;
  std::array<int, 3> blockSize{0, 0, 0};
  std::string blocksPerMlp;             ///< "a,b,c" coarsest first
  std::string epochs;                   ///< "a,b,c" coarsest first
  int latentSize = 0;
  int hiddenWidth = 0;
  double threshold = -1;                ///< < 0 = preset
  double targetRatio = 0;
  std::string device;                   ///< "" = cpu
  int seed = 1;
  int threads = 0;
  int pruning = 0;                      ///< block-guided pruning (paper Sec. 3.5)
  int quantizationBits = 8;             ///< 0 = plain float16 weights
  int boundaryCnn = 1;                  ///< train the boundary CNN (paper Sec. 3.6)
  /// Quality mode (ecnr/Quality.h): 0 expert (the settings as they are), 1 ratio, 2 PSNR (dB), 3 max error
  /// (absolute, data units), 4 max error relative to each array's range; modeValue is that one number.
  int mode = 0;
  double modeValue = 0;
};

/// Name of preset index 0/1/2; throws ecnr::Error for others.
ECNRWRITERS_EXPORT std::string presetName(int preset);

/// Builds the settings; throws ecnr::Error naming the knob when a list does not parse or a value is out of range.
ECNRWRITERS_EXPORT EncoderSettings settingsFromKnobs(const WriterKnobs& k);

}  // namespace ecnr
