// Pruning: block-guided pruning of a scale's MLPs (paper Sec. 3.5, Eq. 2). Parameters are ranked globally over
// all MLPs of the scale by importance N(|p|) + lambda_b * N(L_b), where L_b is the average block loss of the MLP
// that owns p and N is min-max normalization: small parameters of MLPs that already fit well go first.
#pragma once

#include <cstdint>
#include <vector>

#include "ecnr/Model.h"

namespace ecnr {

/// 1 = kept, 0 = pruned; model layout: weights[l] (mlp, in, out), biases[l] (mlp, out).
struct PruneMasks {
  std::vector<std::vector<uint8_t>> weights, biases;
};

/// The paper's exclusions: the output layer's weights are few, and the first and last biases are not sparse and
/// matter, so only the other weights and the hidden layers' biases are candidates.
bool prunableWeights(const MlpShape& shape, int layer);
bool prunableBiases(const MlpShape& shape, int layer);

/// Nothing pruned.
PruneMasks keepAll(const MlpShape& shape, int mlpCount);

/// Prunes the least important candidates of `params` until `sparsity` (fraction of all candidates) are pruned.
/// Parameters pruned in `current` stay pruned and count towards the target. mlpLoss has one value per MLP.
PruneMasks blockGuidedPrune(const ScaleModel& params, const MlpShape& shape, const std::vector<double>& mlpLoss,
                            double sparsity, double lambda, const PruneMasks& current);

/// Fraction of the candidates that are pruned.
double candidateSparsity(const PruneMasks& masks, const MlpShape& shape);

}  // namespace ecnr
