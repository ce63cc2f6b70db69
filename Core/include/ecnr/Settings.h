// Settings: every knob of the encoder, with presets. A zero / empty value means "derive from the data".
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ecnr/Comm.h"
#include "ecnr/Field.h"
#include "ecnr/Residual.h"

namespace ecnr {

enum class WeightPrecision : uint8_t { Float32 = 0, Float16 = 1 };

struct EncoderSettings {
  int scales = 3;                           ///< pyramid levels s (1 = no pyramid)
  std::array<int, 3> blockDims{0, 0, 0};    ///< spatial block size; 0 = chosen from dims and targetRatio
  std::vector<int> blocksPerMlp;            ///< b_i per scale, coarsest first; empty = 4/8/16 (series) or 1/2/4 (static)
  int seriesFinestBlocksPerMlp = 16;        ///< the finest b_i of a time series when blocksPerMlp is empty (coarser
                                            ///< scales halve it): 16 as in the authors' released config, the paper's 32
                                            ///< in the `paper` preset
  int64_t finestMlps = 0;                   ///< MLPs of the finest scale, overriding its b_i (0 = from b_i): the
                                            ///< ratio and PSNR modes size the network to the MLP, not to b_i's steps
  std::vector<int> epochs;                  ///< epochs per scale, coarsest first; empty = preset
  int latentDim = 8;
  int latentGrid = 1;                       ///< 2: a latent code at each block corner, interpolated (MlpShape)
  int codeSteps = 8;                        ///< W > 1: a block's code shared by W steps of its scale, the step's
                                            ///< time an MLP input (MlpShape; issue 10: +3 to +6 dB on the Gray-Scott
                                            ///< series, BENCHMARKS.md); 1: a code per step (the paper)
  int hidden = 24;
  int sineLayers = 3;
  float omega0 = 30.0f;
  float threshold = 1e-4f;                  ///< block mean-square residual (normalized units) under which a block is skipped
  int batchPerMlp = 512;                    ///< samples per MLP per optimizer step
  float learningRate = 1e-3f;
  float weightDecay = 2e-5f;
  float lrDecayFactor = 0.5f;               ///< lr multiplier at 30/45/60/75 % of training (the paper's prune rounds;
                                            ///< the paper uses 0.75, 0.5 measured +0.4 dB on the Gray-Scott series)
  float importance = 0;                     ///< share of each MLP's training draws made by its blocks' running RMS
                                            ///< error, the samples weighted to keep the MSE (0: uniform draws)
  double capacityByError = 0;               ///< > 0: blocks share MLPs by weight, their RMS (scale units) to this
                                            ///< power: hard blocks get MLPs of fewer blocks; an epoch stays the
                                            ///< steps of an equal share (0: equal counts, the paper's Algorithm 1)
  bool rangeWeightedLoss = true;            ///< weight each block's loss by its range^2 (see TrainingSet::lossWeight)
  WeightPrecision precision = WeightPrecision::Float16;
  double targetRatio = 80.0;                ///< used only to choose blockDims when they are 0
  int minAxisLength = 8;                    ///< a spatial axis is not halved below this (time: below half of it)
  // Deep compression (paper Sec. 3.5); Ensemble.h DeepCompressionOptions.
  bool pruning = false;                     ///< block-guided pruning during training (off: at our epoch budgets it
                                            ///< costs more PSNR than the bytes it saves, BENCHMARKS.md)
  std::vector<double> pruneAt, pruneSparsity;  ///< rounds (fraction of training, sparsity); empty = the paper's
  double pruneLambda = 0.1;                 ///< lambda_b of Eq. 2
  int pruneScales = 1;                      ///< prune only this many of the finest scales (0 = all): the coarse
                                            ///< scales hold few MLPs but carry the content (see BENCHMARKS.md)
  int quantBits = 8;                        ///< shared values per layer: 2^quantBits; 0 = plain values at `precision`
  int biasBits = 8;                         ///< the biases' codebooks: 2^biasBits values (0 = quantBits)
  int valuesPerSharedWeight = 2;            ///< a weight group's codebook: at most one entry per this many values
  double codebookRateSlope = 1.0;           ///< > 0: a codebook shrinks (to 128 / 64) where that pays at
                                            ///< MSE ~ rate^-slope (Quantization.h); 0: sizes by group size only
  int codebookRateGroups = 1;               ///< the groups it may shrink: 1 weights, 2 biases, 4 latent codes
  bool localQuantization = false;           ///< per-MLP codebooks (the paper's ECNR* baseline) instead of per scale
  int latentBits = 8;                       ///< latent codes quantized the same way; 0 = plain values
  double fineTuneFraction = 0.25;           ///< fine-tuning of the shared values, as a fraction of the scale's epochs
  float fineTuneLr = 1e-4f;
  double quantAwareFraction = 0;            ///< quantization-aware training: the last this fraction of the training
                                            ///< epochs run at codebook-rounded weights and biases (Ensemble.h)
  bool quantizeRanges = true;               ///< block min/max on a 16-bit grid per scale (else float32)
  // Boundary CNN (paper Sec. 3.6), trained on the finest decode against the original; BoundaryCNN.h.
  bool boundaryCnn = true;                  ///< kept only when it lowers the error
  int cnnChannels = 8;                      ///< the paper's 32 cost ~96 KB at 9 bits: too much for small archives
  int cnnSteps = 300;
  int cnnBits = 9;
  // Quality modes (beyond the paper; Quality.h): what the user asks for, the network and an error-bounded
  // correction (Residual.h) are sized to deliver it. Expert = the settings above as they are.
  QualityMode mode = QualityMode::Expert;
  double maxError = 0;                      ///< MaxError: absolute bound on every voxel (data units)
  double relativeError = 0;                 ///< MaxError when maxError is 0: the bound as a fraction of the data range
  double targetPsnr = 0;                    ///< Psnr: at least this many dB over the data range (lands in [P, P + 1])
                                            ///< Ratio: targetRatio, hit within +-10 %
  double networkShare = 1.0;                ///< Ratio: share of the byte budget the network is sized for; the
                                            ///< correction gets the rest (BENCHMARKS.md measures the split)
  /// The finest scale's training values held as half floats (half the memory of the largest buffer of an
  /// encode): 1 always, 0 never, -1 when they would take more than kHalfTrainingBytes as float32.
  int halfTrainingValues = -1;
  uint64_t seed = 1;
  int threads = 0;                          ///< 0 = hardware concurrency
  std::string device = "cpu";               ///< "cpu" or "cuda"
  std::string trainer = "auto";             ///< "auto" (fused CPU kernels when they fit), "fused" or "libtorch"
  const Comm* comm = nullptr;               ///< MPI ranks sharing the encode (Comm.h; nullptr: this process
                                            ///< alone): the MLPs of each scale are split over them, and every
                                            ///< rank returns the same model
  bool verbose = true;
};

/// Named presets: "fast" (README demo, minutes on 2 cores), "default", "quality", and "paper": the paper's choices
/// (Sec. 4.1) at the default preset's epochs, the baseline of the rate-distortion race (BENCHMARKS.md).
EncoderSettings presetSettings(const std::string& name);

/// Epochs and blocks-per-MLP for each scale (coarsest first) after defaults are resolved.
struct ResolvedSettings {
  EncoderSettings s;
  std::array<int, 3> blockDims{};
  std::vector<int> blocksPerMlp;
  std::vector<int> epochs;
  std::vector<double> pruneAt, pruneSparsity;  ///< empty when pruning is off
};

/// Fills every "derive from the data" field for a field of these dims.
ResolvedSettings resolveSettings(const EncoderSettings& in, const Dims4& dims);

/// halfTrainingValues = -1 switches to half floats above this many float32 bytes of finest-scale training values
/// (every block counted, padding included): 512 MiB, a 128^3 x 64 series; below it archives stay as they were.
constexpr uint64_t kHalfTrainingBytes = uint64_t(512) << 20;
/// Whether the finest scale's training values (a field of `dims`, blocks of r.blockDims) are held as half floats.
bool useHalfTrainingValues(const Dims4& dims, const ResolvedSettings& r);

}  // namespace ecnr
