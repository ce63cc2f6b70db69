// Ensemble: all MLPs of one scale trained together. Every layer is one batched tensor (m, Fin, Fout) applied
// with a batched matmul, so m small SIRENs cost one large kernel per layer (paper appendix, Algorithm 1).
// LibTorch lives only in Ensemble.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ecnr/Comm.h"
#include "ecnr/Half.h"
#include "ecnr/Model.h"
#include "ecnr/Progress.h"
#include "ecnr/Quantization.h"

namespace ecnr {

/// One scale's effective blocks, each min-max normalized to [-1, 1], and who fits them.
struct TrainingSet {
  std::array<int, 3> blockDims{};
  std::vector<std::array<int, 3>> validDims;  ///< per block: voxels inside the grid (the rest is padding)
  std::vector<float> values;                  ///< blocks * voxelsPerBlock, x fastest
  /// The same as IEEE half (Half.h) instead, when `values` is empty: a scale too large to hold in float32
  /// (EncoderSettings::halfTrainingValues). Block-normalized to [-1, 1], a half is within 2^-11 of the value.
  std::vector<uint16_t> halfValues;
  std::vector<int> mlpOfBlock;
  int mlpCount = 0;
  /// Per block loss weight (empty = all 1). Blocks are fitted in normalized units; weighting by the block's
  /// (max - min)^2 makes the loss the squared error in the scale's own units, so capacity goes where errors count.
  std::vector<float> lossWeight;
  /// Shared codes (MlpShape::codeSteps > 1): each block's latent code (codeSlots; blocks that share one share an
  /// MLP) and its time input (codeTime). Empty: a code per block, no time input.
  std::vector<int> codeOfBlock;
  std::vector<float> blockTime;
  int64_t codeCount = 0;

  int64_t blockCount() const { return int64_t(validDims.size()); }
  int64_t codes() const { return codeOfBlock.empty() ? blockCount() : codeCount; }
  int64_t codeOf(int64_t block) const { return codeOfBlock.empty() ? block : codeOfBlock[size_t(block)]; }
  bool half() const { return values.empty() && !halfValues.empty(); }
  float value(int64_t i) const { return half() ? halfToFloat(halfValues[size_t(i)]) : values[size_t(i)]; }
  int64_t voxelsPerBlock() const { return int64_t(blockDims[0]) * blockDims[1] * blockDims[2]; }
};

/// Deep compression during and after training (paper Sec. 3.5).
struct DeepCompressionOptions {
  /// Block-guided pruning rounds: at pruneAt[i] (fraction of training) prune to pruneSparsity[i] of the candidates.
  std::vector<double> pruneAt, pruneSparsity;
  double lambda = 0.1;        ///< lambda_b of Eq. 2
  int bits = 0;               ///< 0 = no quantization; else 2^bits shared values per layer (weights, biases apart)
  bool local = false;         ///< per-MLP codebooks instead of per-scale ones (comparison only)
  int latentBits = 0;         ///< 0 = latent codes stay plain values
  int biasBits = 0;           ///< biases' codebooks: 2^biasBits values (0 = bits)
  int valuesPerEntry = 2;     ///< weights: at most one codebook entry per this many values
  double codebookRateSlope = 0;  ///< > 0: codebooks sized by rate (rateAwareEntries, this slope)
  int codebookRateGroups = kRateWeights;  ///< which groups that choice may shrink (RateAwareGroups)
  /// Quantization-aware training (issue 10): this fraction of the training epochs, at its end, runs each step at
  /// the weights and biases rounded to the codebooks (fitted to the parameters at every epoch, sizes by group),
  /// the gradient applied to the float parameters (straight-through); 0: training in float until quantization.
  double quantAwareFraction = 0;
  int fineTuneEpochs = 0;     ///< epochs of shared-value fine-tuning after quantization (indices fixed)
  float fineTuneLr = 1e-4f;
};

struct TrainOptions {
  int epochs = 100;
  int batchPerMlp = 2048;
  float learningRate = 1e-3f;
  float weightDecay = 2e-5f;
  /// lr is multiplied by lrDecayFactor at these fractions of training (the paper decays at its pruning rounds).
  std::vector<double> lrDecayAt{0.3, 0.45, 0.6, 0.75};
  float lrDecayFactor = 0.75f;
  uint64_t seed = 1;
  int threads = 0;
  std::string device = "cpu";
  /// "auto": the fused CPU trainer (kernels/SirenTrainCpu.h) when device is "cpu" and the shape fits it (7-30x
  /// faster than LibTorch here, BENCHMARKS.md), LibTorch otherwise; "fused" or "libtorch" force one (fused runs on
  /// the CPU only). Both are deterministic for a seed; the fused one whatever the thread count.
  std::string trainer = "auto";
  /// Share of each MLP's block draws made by the blocks' running RMS error (kernels/BlockImportance.h); 0: uniform.
  float importance = 0;
  /// An epoch is one pass over the largest MLP's voxels; with blocks shared out by weight (capacity by error) that
  /// MLP can hold many times an equal share, so the epoch is then the steps of an equal share (ceil(blocks / MLPs)
  /// blocks of the mean size): the same training as with equal counts.
  bool epochOfEqualShare = false;
  DeepCompressionOptions deep;
  /// The ranks sharing this scale (nullptr: this process alone): each trains its share of the MLPs (fused trainer
  /// only) and every rank ends with the whole scale.
  const Comm* comm = nullptr;
  /// progress range of this stage within the whole job
  double progressBegin = 0, progressEnd = 1;
  std::string label = "scale";
};

struct TrainStats {
  double seconds = 0;
  double finalLoss = 0;    ///< MSE in block-normalized units over the last epoch
  int64_t samples = 0;     ///< training samples processed
  int64_t steps = 0;
  std::string trainer;     ///< "fused" or "libtorch": which one ran
  double sparsity = 0;     ///< fraction of the pruning candidates pruned
  double lossBeforeFineTune = 0, lossAfterFineTune = 0;  ///< last-epoch loss right after quantization, and at the end
};

/// Trains mlpCount MLPs and one latent per block; writes weights, biases and latents into `out`
/// (out.blocks must already list the blocks in TrainingSet order). With options.deep: prunes during training,
/// quantizes afterwards (out.codebooks) and fine-tunes the shared values; `out` then holds exactly the values the
/// archive stores (rounded to out.precision).
TrainStats trainEnsemble(const TrainingSet& set, const MlpShape& shape, const TrainOptions& options,
                         ScaleModel& out, const Progress& progress);

/// True when this LibTorch build can run on CUDA and a GPU is visible.
bool cudaAvailable();

}  // namespace ecnr

namespace ecnr {

/// Runs the batched (LibTorch, bmm) forward pass of a scale's MLPs: inputs are (mlpCount, batch, inputDim) and
/// the result is (mlpCount, batch). The training path uses the same layer; tests compare it with per-MLP code.
std::vector<float> batchedForward(const ScaleModel& scale, const MlpShape& shape, const std::vector<float>& inputs,
                                  int64_t batch);

/// LibTorch autograd reference of one training step's loss and gradients (tests of the fused trainer): inputs
/// (mlpCount, batch, inputDim), targets and sample weights (mlpCount, batch; empty weights = 1). The loss is
/// sum(w (y - target)^2) / (mlpCount * batch), the training loss. Gradients come back in the model layout
/// (gradWeights[l], gradBiases[l]) and per input (gradInputs, the layout of inputs).
struct LossGradients {
  double loss = 0;
  std::vector<std::vector<float>> gradWeights, gradBiases;
  std::vector<float> gradInputs;
};
LossGradients batchedLossGradients(const ScaleModel& scale, const MlpShape& shape, const std::vector<float>& inputs,
                                   const std::vector<float>& targets, const std::vector<float>& weights,
                                   int64_t batch);

}  // namespace ecnr
