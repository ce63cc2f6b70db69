// SirenTrainCpu: trains the MLPs of one scale on the CPU without LibTorch: forward and hand-derived backward pass
// of each small SIREN fused over vectors of samples (kernels/SirenIsa.h), Adam as torch.optim.Adam (L2 weight
// decay added to the gradient), and the MLPs spread over OpenMP threads (they share nothing: each MLP has its
// own blocks, latents, sampler and random stream, so results do not depend on the thread count). A leaf on plain
// arrays; Core's Ensemble.cpp calls it. Checked against LibTorch autograd by Testing/Core/test_kernels.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace ecnr {
namespace kernels {

struct FusedTrainProblem {
  // data: blocks of blockDims voxels (x fastest), each fitted by one MLP
  int blockDims[3] = {0, 0, 0};
  int64_t blockCount = 0;
  const int* validDims = nullptr;     ///< 3 per block
  const float* values = nullptr;      ///< blockCount * voxels per block
  const uint16_t* halfValues = nullptr;  ///< the same as IEEE half (Half.h), when `values` is null
  const int* mlpOfBlock = nullptr;
  const float* lossWeight = nullptr;  ///< per block, or nullptr for 1
  /// Share of each MLP's block draws made in proportion to the block's running RMS error (ImportanceSampler);
  /// 0: uniform. Samples are weighted so that the loss keeps its expectation.
  float importance = 0;
  int mlpCount = 0;
  // network: input 3 coords + latentDim, sineLayers sine layers of `hidden`, linear output
  int latentDim = 8, hidden = 24, sineLayers = 3;
  float omega0 = 30;
  /// Latent codes per block: 1, or 2 for a code at each of the block's 8 corners, interpolated (LatentGrid.h).
  /// A block's latent values are then corners x latentDim, corner-major.
  int latentGrid = 1;
  /// Shared codes (MlpShape::codeSteps): block b uses latent code codeOfBlock[b] of codeCount (blocks that share a
  /// code must share an MLP) and has timeOfBlock[b] as one more input after the latent; nullptr: a code per block,
  /// no time input.
  const int* codeOfBlock = nullptr;
  int64_t codeCount = 0;
  const float* timeOfBlock = nullptr;
  // optimisation
  int64_t steps = 0;
  int batchPerMlp = 2048;
  float weightDecay = 2e-5f;
  uint64_t seed = 1;
  int threads = 0;  ///< 0 = OpenMP default
  std::function<float(int64_t step)> learningRate;
  /// Steps between reports (an epoch); 0 = all. Called on the calling thread after each round with the steps done
  /// so far and the sum over the round's steps of the step loss (sum of w (y - t)^2 over all samples /
  /// (mlpCount * batchPerMlp), the LibTorch trainer's loss); return false to stop early.
  int64_t stepsPerRound = 0;
  std::function<bool(int64_t stepsDone, double roundLoss)> onRound;
  // Part of an ensemble split over processes (Comm.h): these MLPs are [mlpIdOffset, mlpIdOffset + mlpCount) of
  // lossMlpCount, so each keeps the random stream and the loss scale it has when one process trains them all;
  // reduceShared sums the shared values' gradient over the processes (called every fine-tuning step). That
  // gradient is accumulated in fixed point (Comm.h), where sums do not depend on their order:
  // the fine-tuned values come out bit-identical however the MLPs are split over processes and threads.
  int mlpIdOffset = 0;
  int lossMlpCount = 0;  ///< 0 = mlpCount
  std::function<void(int64_t* grad, size_t n)> reduceShared;
};

struct FusedTrainResult {
  std::vector<std::vector<float>> weights, biases;  ///< per layer: (mlp, in, out) and (mlp, out)
  std::vector<float> latents;                       ///< codes (blockCount or codeCount) * corners * latentDim
  int64_t stepsDone = 0;
};

/// Parameters tied to a table of shared values (quantized fine-tuning, paper Sec. 3.5): each parameter is
/// values[id], or stays 0 where id = -1 (pruned). Ids are in the model layout, like FusedTrainResult.
struct SharedParameters {
  std::vector<float> values;
  std::vector<std::vector<int32_t>> weightId, biasId;  ///< per layer
  std::vector<int32_t> latentId;  ///< codes * corners * latentDim (as FusedTrainResult); empty = latents stay free
};

/// Quantization-aware training (issue 10): per layer, the sorted codebook each weight (and bias) is rounded to
/// in the forward and backward passes, the gradient applied to the float parameter (straight-through). An empty
/// codebook leaves its layer in float; a parameter that is exactly 0 (pruned) stays 0.
struct ForwardCodebooks {
  std::vector<std::vector<float>> weights, biases;
  bool any() const;
};

/// Whether the fused trainer handles this shape (hidden <= 256, sineLayers <= 16).
bool fusedTrainSupported(int hidden, int sineLayers, int latentDim);

/// The trainer as an object, so that training can stop at a pruning round, change the masks or tie the parameters
/// to shared values, and go on with its Adam state. The problem's arrays must outlive it.
class FusedTrainer {
public:
  explicit FusedTrainer(const FusedTrainProblem& problem);  ///< initialises (SIREN init, latents ~ N(0, 1))
  ~FusedTrainer();
  FusedTrainer(const FusedTrainer&) = delete;
  FusedTrainer& operator=(const FusedTrainer&) = delete;

  /// Optimizer steps [begin, end) in rounds of problem.stepsPerRound, reporting through problem.onRound;
  /// returns false when onRound stopped it.
  bool run(int64_t begin, int64_t end);
  /// Pruning: a parameter whose mask is 0 becomes 0 and stays 0 (its Adam moments too). Model layout.
  void setMasks(const std::vector<std::vector<uint8_t>>& weightMask, const std::vector<std::vector<uint8_t>>& biasMask);
  /// From now on each parameter (and each latent with an id) is shared.values[id]; run() optimizes the shared
  /// values (one Adam state, gradients summed over every use, in a fixed order) and the free latents.
  void shareParameters(const SharedParameters& shared);
  const std::vector<float>& sharedValues() const;
  /// From now on each step runs at the parameters rounded to these codebooks (ForwardCodebooks; empty: float).
  void setForwardCodebooks(const ForwardCodebooks& books);
  FusedTrainResult result() const;
  /// Each MLP's sample loss over the last round (sum of w (y - t)^2 / (mlpCount * batchPerMlp)), for pruning.
  const std::vector<double>& mlpLoss() const;

private:
  struct Impl;
  Impl* impl_;
};

/// FusedTrainer(problem).run(0, problem.steps), then its result.
FusedTrainResult trainSirenCpu(const FusedTrainProblem& problem);

/// One MLP's loss and gradients on a given batch, exactly as one training step computes them (tests): weights in
/// the model layout of one MLP (W[l]: fanIn x fanOut, b[l]), inputs (batch x inputDim, rows = samples), targets and
/// scale (the per-sample factor in the loss sum(scale (y - t)^2)). Returns the loss; gradients in the same layouts,
/// gradInputs for the latent columns only (batch x latentDim).
double fusedLossGradients(const std::vector<std::vector<float>>& W, const std::vector<std::vector<float>>& b,
                          int latentDim, int hidden, int sineLayers, float omega0, const std::vector<float>& inputs,
                          const std::vector<float>& targets, const std::vector<float>& scale,
                          std::vector<std::vector<float>>& gradW, std::vector<std::vector<float>>& gradB,
                          std::vector<float>& gradLatent);

}  // namespace kernels
}  // namespace ecnr
