// BoundaryCNN: the paper's lightweight CNN (Section 3.6) that smooths the block-boundary artifacts of the
// finest-scale decode. Training (LibTorch) lives in ecnr_encode; quantization, (de)serialization and the CPU
// apply (kernels/Conv3dCpu, no LibTorch) live in ecnr_decode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "ecnr/Comm.h"
#include "ecnr/Field.h"
#include "ecnr/Progress.h"

namespace ecnr {

/// Five 3D convolutions 1 -> C -> C -> C -> C -> 1 (kernel 3^3), LeakyReLU(kBoundaryCnnSlope) between them.
/// Every layer pads its input by edge replication, not zeros: the field is not zero outside the volume, and
/// zero padding would create a false edge at the volume border that the network would have to learn to undo.
/// With z = 1 (2D data) replication makes every z tap read the one plane, so the kernel collapses to 3 x 3.
struct BoundaryCnn {
  int layers = 5, channels = 32, kernel = 3;
  /// output = input + CNN(input): the CNN learns only the small correction, so a near-zero last layer (its
  /// initialisation) is the identity, training starts from the MLP decode and converges in far fewer steps.
  bool residual = true;
  /// 0: float weights. Else every weight is q * weightScale[l] and every bias q * biasScale[l] with integer
  /// |q| < 2^(bits-1) (what serializeBoundaryCnn stores).
  int bits = 0;
  std::vector<std::vector<float>> weights, biases;  ///< per layer; weights (out, in, kz, ky, kx), biases (out)
  std::vector<float> weightScale, biasScale;        ///< per layer, when bits > 0

  int inChannels(int l) const { return l == 0 ? 1 : channels; }
  int outChannels(int l) const { return l + 1 == layers ? 1 : channels; }
  int64_t parameterCount() const;
  /// Residual with every weight and bias zero: applying it changes nothing (no need to store or apply it).
  bool isIdentity() const;
  /// Throws Error unless the shape fields are in range and the arrays have the sizes they imply.
  void validate() const;
};

constexpr float kBoundaryCnnSlope = 0.01f;

/// A network of the given shape with all weights and biases zero (with residual, the identity).
BoundaryCnn makeBoundaryCnn(int layers = 5, int channels = 32, int kernel = 3, bool residual = true);

/// Defaults sized for CPU training in ~10-20 s whatever the volume (the cost is steps x batch x patch): 8 channels
/// (6.4 KB at 9 bits, 11 M voxels/s to apply on one AVX-512 core) rather than the paper's 32 (95 KB, 0.8 M/s).
struct BoundaryCnnOptions {
  int layers = 5, channels = 8, kernel = 3;
  bool residual = true;
  int steps = 300;             ///< Adam steps (one batch of patches each)
  double maxSeconds = 0;       ///< stop early when training has run this long (0: no limit)
  float learningRate = 1e-3f;  ///< halved at 50 % and 75 % of the steps
  int patch = 16;              ///< loss patch edge in voxels (clamped to the dims); the input adds the receptive radius
  int batch = 2;               ///< patches per step
  uint64_t seed = 1;
  int threads = 0;             ///< LibTorch intra-op threads (0: leave as is)
  int bits = 9;                ///< quantization at the end (paper: 9, no fine-tuning); 0 keeps float weights
  /// The ranks sharing the training (nullptr: this process alone): every rank draws the same patches and computes
  /// the gradient of its share of each batch; the gradients are summed, so all ranks end with the same network.
  const Comm* comm = nullptr;
};

/// Trains on the finest-scale decode (`decoded`, in the encoder's normalized [-1, 1] units) against the original
/// (`original`, same units and dims), each time step a separate 3D volume. Random patches, Adam, MSE. A patch's
/// input carries the receptive radius (layers * kernel/2) of real neighbours, and replicate padding only where
/// it meets the volume edge, so each loss voxel is computed exactly as applyBoundaryCnn computes it on the whole
/// volume. Quantizes to options.bits at the end, so the returned network is what the archive stores. When that
/// network does not lower the MSE on 8 held-out patches, returns the identity instead (isIdentity()). Reports
/// progress and honours cancellation.
BoundaryCnn trainBoundaryCnn(const Field& decoded, const Field& original, const BoundaryCnnOptions& options,
                             const Progress& progress = Progress());

/// Fills `decoded` and `original` (voxelsPerStep values each, the same units) with time step t.
using CnnStepReader = std::function<void(int64_t t, float* decoded, float* original)>;

/// The same training, its patches read one time step at a time (each step at most once, in increasing order):
/// the encoder decodes the finest scale step by step, so neither series is held whole. The patches themselves
/// (steps x batch, each (patch + 2 x receptive radius)^3 + patch^3 floats) are drawn first and kept.
BoundaryCnn trainBoundaryCnn(const Dims4& dims, const CnnStepReader& read, const BoundaryCnnOptions& options,
                             const Progress& progress = Progress());

/// Quantizes every layer's weights and biases to `bits` (2..16): uniform, symmetric, one scale per layer for the
/// weights and one for the biases (scale = max|v| / (2^(bits-1) - 1)). The network then holds exactly the
/// dequantized values, so what the encoder measures is what the decoder computes.
void quantizeBoundaryCnn(BoundaryCnn& cnn, int bits);

/// The quantized form, little-endian: "ECNN", version, flags, layers, kernel, channels (u16), bits, reserved;
/// per layer weight and bias scales (f32); then every q (weights then biases, layer by layer) in `bits`-bit
/// two's complement, LSB first, zero-padded to a byte. Throws Error unless cnn is quantized (bits > 0).
std::vector<uint8_t> serializeBoundaryCnn(const BoundaryCnn& cnn);
/// The exact inverse. Every field is range-checked and the size must match exactly before anything is
/// allocated; malformed input throws Error.
BoundaryCnn parseBoundaryCnn(const uint8_t* data, size_t size);

/// Applies the CNN in place to every time step of `field` (CPU, OpenMP within each z-plane; no LibTorch).
void applyBoundaryCnn(const BoundaryCnn& cnn, Field& field);

/// The same, by the training graph in LibTorch (ecnr_encode; whole time steps at once, so for tests and small
/// volumes): the reference applyBoundaryCnn is checked against. threads > 0 sets LibTorch's thread count.
void applyBoundaryCnnTorch(const BoundaryCnn& cnn, Field& field, int threads = 0);

}  // namespace ecnr
