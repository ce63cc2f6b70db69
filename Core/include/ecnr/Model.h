// Model: everything the decoder needs, as plain arrays. The Archive serializes exactly this;
// the Encoder produces it; the Decoder consumes it. No LibTorch type appears here.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ecnr/BoundaryCNN.h"
#include "ecnr/Field.h"
#include "ecnr/Residual.h"
#include "ecnr/Settings.h"

namespace ecnr {

/// Shape shared by all MLPs of an archive: input = 3 local coords + latentDim (+ the time input with shared
/// codes), `sineLayers` sine layers of `hidden` neurons (sin(omega0 * (W x + b))), then one linear output neuron.
struct MlpShape {
  int latentDim = 8;
  int hidden = 24;
  int sineLayers = 3;
  float omega0 = 30.0f;
  /// 1: one latent code per block (the paper); 2: a code at each of the block's 8 corners, trilinearly
  /// interpolated at each voxel (kernels/LatentGrid.h; issue 10's coarse feature grid).
  int latentGrid = 1;
  /// 1: a latent code per block per step (the paper). W > 1: a block's code is shared by the W steps
  /// [kW, kW + W) of its scale and the step's place among them, codeTime(), is one more MLP input (issue 10's
  /// temporal structure: time as an input instead of a code per step).
  int codeSteps = 1;

  int timeInputs() const { return codeSteps > 1 ? 1 : 0; }
  int inputDim() const { return 3 + latentDim + timeInputs(); }
  int latentCorners() const { return latentGrid == 2 ? 8 : 1; }
  int latentsPerBlock() const { return latentCorners() * latentDim; }  ///< stored values, corner-major
  int layerCount() const { return sineLayers + 1; }
  int fanIn(int layer) const { return layer == 0 ? inputDim() : hidden; }
  int fanOut(int layer) const { return layer == sineLayers ? 1 : hidden; }
  int64_t paramsPerMlp() const;
};

/// One effective block instance: a spatial block at one time step of its scale.
struct BlockRecord {
  uint32_t block = 0;   ///< linear spatial block index in the scale's block grid (bx fastest)
  uint32_t t = 0;       ///< time index at this scale
  uint32_t mlp = 0;     ///< which MLP of the scale fits it
  float minValue = 0;   ///< per-block min-max normalization: value = min + (y + 1) / 2 * (max - min)
  float maxValue = 0;
};

/// Deep compression (paper Sec. 3.5): the shared values ("codebooks") of a scale's quantized parameter groups.
/// A group with a codebook holds only values of its codebook, or 0 where a parameter was pruned; the archive
/// stores such a group as a pruning mask plus entropy-coded indices. Empty codebooks: plain values.
struct ScaleCodebooks {
  bool local = false;  ///< one codebook per MLP for weights and biases (mlpCount codebooks back to back)
  std::vector<std::vector<float>> weights, biases;  ///< per layer (empty vectors: layer not quantized)
  std::vector<float> latents;                       ///< one codebook for every latent value of the scale

  bool any() const {
    for (const auto& w : weights)
      if (!w.empty()) return true;
    for (const auto& b : biases)
      if (!b.empty()) return true;
    return !latents.empty();
  }
};

/// Which axes were halved going from the next finer scale to this one (x, y, z, t).
using HalvedAxes = std::array<bool, 4>;

struct ScaleModel {
  Dims4 dims;                        ///< grid of this scale
  HalvedAxes halved{};               ///< relative to the next finer scale (all false for the finest)
  std::array<int, 3> blockDims{};    ///< the same at every scale
  int mlpCount = 0;
  std::vector<BlockRecord> blocks;   ///< sorted by (t, block); latent slot = position in this vector
  std::vector<float> latents;        ///< codes (codeSlots) * shape.latentsPerBlock()
  /// weights[l]: mlpCount * fanIn(l) * fanOut(l), laid out (mlp, in, out); biases[l]: mlpCount * fanOut(l)
  std::vector<std::vector<float>> weights;
  std::vector<std::vector<float>> biases;
  WeightPrecision precision = WeightPrecision::Float32;  ///< of plain values and of codebook entries
  ScaleCodebooks codebooks;
  /// Grid of the block min/max values (RangeGrid in Blocks.h); step 0 = plain float32 ranges.
  float rangeLo = 0, rangeStep = 0;

  std::array<int64_t, 3> blockGrid() const;  ///< blocks per axis (ceil division)
};

struct Model {
  Dims4 dims;                      ///< the original field (of this time window: dims.t of its steps)
  /// A long series is stored as windows of consecutive steps, each a Model of its own (Series.h): this one
  /// holds steps [firstStep, firstStep + dims.t) of the series; meta.times are those steps' times.
  int64_t firstStep = 0;
  GridMeta meta;
  float dataMin = 0, dataMax = 0;  ///< global normalization: normalized = 2 * (v - min) / (max - min) - 1
  MlpShape shape;
  std::vector<ScaleModel> scales;  ///< coarsest first; scales.back() is the finest (original resolution)
  std::string preset;              ///< informational
  /// Optional boundary CNN (paper Sec. 3.6), applied to the full-resolution decode in normalized units.
  BoundaryCnn cnn;
  bool hasCnn() const { return !cnn.weights.empty(); }
  /// Optional error-bounded correction and the quality mode that sized it (Residual.h), applied in data units
  /// after the CNN.
  ResidualCorrection residual;
  bool hasResidualSection() const { return residual.quality.mode != QualityMode::Expert || residual.hasCorrection(); }

  int scaleCount() const { return int(scales.size()); }
  float toData(float normalized) const;
  float toNormalized(float value) const;
};

/// The latent code of each block record of a scale: its own position (codeSteps 1), else the rank of
/// (t / codeSteps, block) among the scale's distinct pairs, so the records of one block in one group of steps share
/// a code; `count` receives the number of codes (scale.latents holds count * latentsPerBlock values).
std::vector<uint32_t> codeSlots(const ScaleModel& scale, int codeSteps, int64_t* count);
/// The time input of a step t of its scale with shared codes: its place in its group of steps, in [-1, 1].
float codeTime(uint32_t t, int codeSteps);

/// Rounds every weight, bias and latent to what the archive will store (float16 when requested), so that the
/// encoder's closed loop sees exactly what the decoder will.
void applyStoragePrecision(ScaleModel& scale, const MlpShape& shape);

}  // namespace ecnr
