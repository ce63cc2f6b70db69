// SirenCpu: evaluates one small SIREN MLP over the voxels of one block, on plain arrays. A leaf: it includes
// nothing of Core, so the decoder (and the ParaView reader) runs without LibTorch. The work is done by the fused
// kernels of SirenIsa.h (AVX-512, AVX2 or portable, chosen at run time).
#pragma once

namespace ecnr {
namespace kernels {

constexpr int kMaxLayers = 17;

/// One MLP: layer l has weights W[l] laid out (in, out) row-major and biases b[l] (out). Layers 0..sineLayers-1
/// are sin(omega0 * (x W + b)); the last layer is linear with one output. Input = 3 local coords + latent.
struct SirenView {
  int inDim = 11;
  int hidden = 24;
  int sineLayers = 3;
  float omega0 = 30.0f;
  int latentGrid = 1;  ///< 1: one latent code per block; 2: one per corner, interpolated (LatentGrid.h)
  int timeInputs = 0;  ///< 1: the last input is the block's time (shared codes, MlpShape::codeSteps)
  const float* W[kMaxLayers] = {};
  const float* b[kMaxLayers] = {};
};

/// Writes the network output for every valid voxel (x < validDims[0], ...) of a block whose local coordinates
/// span [-1, 1] over blockDims; padding voxels of `out` are left untouched. latent: the block's code, or its
/// corners' codes back to back (latentGrid 2); time: the time input, when the net has one. hidden <= 1024,
/// sineLayers <= 16 (the archive's limits; std::invalid_argument beyond).
void evalSirenBlock(const SirenView& net, const float* latent, const int blockDims[3], const int validDims[3],
                    float* out, float time = 0.0f);

/// The decoder's sine, scalar: |sin(x) - fastSin(x)| < 1e-6 + 2 ulp(x) (the second term is the rounding of x / pi,
/// the same order as the rounding of x itself; the kernels fold 1 / pi into the weights instead).
float fastSin(float x);

}  // namespace kernels
}  // namespace ecnr
