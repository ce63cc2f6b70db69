// Residual: the error-bounded correction that ECNR adds on top of the network (beyond the paper). The encoder
// takes what the decoder will produce, quantizes original - decoded with a uniform step 2E (as SZ does) and
// stores the integers per time step; every voxel then lands within E of the original. Voxels the quantized
// correction cannot bring within the bound (float rounding at large magnitudes, huge errors) are stored exactly.
// Pure C++ (the decoder applies it without LibTorch).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ecnr/Field.h"

namespace ecnr {

/// How the encoder chose its bytes (shown by `ecnr info`; the ParaView writer's Mode property).
enum class QualityMode : uint8_t { Expert = 0, Ratio = 1, Psnr = 2, MaxError = 3 };
const char* qualityModeName(QualityMode m);

/// Stored beside the correction: what was asked and what the encoder measured on the reference decode.
struct QualityInfo {
  QualityMode mode = QualityMode::Expert;
  double target = 0;           ///< ratio, dB, or absolute error, by mode
  double achievedPsnr = 0;     ///< dB over the data range, reference decode with the correction
  double achievedMaxError = 0; ///< max |original - decoded|, data units
  double networkPsnr = 0;      ///< the same without the correction
};

/// Integer prediction of the quantized correction within one time step.
enum class ResidualPredictor : uint8_t { Zero = 0, Plain = 1, Lorenzo = 2 };

/// The correction of one array: one independently decodable stream per time step.
struct ResidualCorrection {
  QualityInfo quality;
  double bound = 0;  ///< guaranteed max abs error on every decoder path (data units); 0 = no guarantee
  double step = 0;   ///< quantization step (data units); 0 = no correction stored
  double slack = 0;  ///< the decoders' measured disagreement the bound was reserved for (data units)
  std::vector<std::vector<uint8_t>> steps;  ///< coded streams, one per time step (empty: no correction)

  bool hasCorrection() const { return step > 0 && !steps.empty(); }
  uint64_t bytes() const;
};

/// Counts of one coded step (the benchmark and the tests).
struct ResidualStepStats {
  ResidualPredictor predictor = ResidualPredictor::Zero;
  int64_t nonZero = 0, escapes = 0, exact = 0;
  uint64_t bytes = 0;
};

/// Codes one time step: q = round((original - decoded) / step), the smaller of plain and Lorenzo-predicted
/// symbols. A voxel is stored exactly when decoded + q * step would be further than `bound - slack` from the
/// original (after float rounding), so applyResidualStep keeps every voxel within `bound` on any decode that is
/// within `slack` of `decoded`. bound <= 0 skips that check (target-PSNR and target-ratio corrections).
std::vector<uint8_t> encodeResidualStep(const float* original, const float* decoded, const Dims4& stepDims,
                                        double step, double bound, double slack, ResidualStepStats* stats = nullptr);

/// Adds the correction of one step to `values` (the decoded step, data units; x fastest over stepDims). With a
/// box (inclusive x0,x1,y0,y1,z0,z1 of the step grid), `values` holds only that box (its own dims) and only its
/// voxels are corrected: the stream is still read whole (Lorenzo is sequential). Malformed streams throw Error.
void applyResidualStep(const std::vector<uint8_t>& stream, const Dims4& stepDims, double step, float* values,
                       const std::array<int64_t, 6>* box = nullptr);

/// Max abs error and PSNR of original against decoded + correction quantized with `step`, without coding it
/// (the search of target-PSNR mode). bound as in encodeResidualStep.
struct CorrectedError {
  double sumSquares = 0, maxAbs = 0;
};
CorrectedError correctedError(const Field& original, const Field& decoded, double step);

}  // namespace ecnr
