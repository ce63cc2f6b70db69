// SirenCpu: evaluates one small SIREN MLP over the voxels of one block, on plain arrays. A leaf: it includes
// nothing of Core, so the decoder (and the ParaView reader) runs without LibTorch.
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
  const float* W[kMaxLayers] = {};
  const float* b[kMaxLayers] = {};
};

/// Writes the network output for every valid voxel (x < validDims[0], ...) of a block whose local coordinates
/// span [-1, 1] over blockDims; padding voxels of `out` are left untouched.
void evalSirenBlock(const SirenView& net, const float* latent, const int blockDims[3], const int validDims[3],
                    float* out);

/// sin with |error| < 2e-7 for |x| < 1e4; branch-free so loops over it vectorize.
float fastSin(float x);

}  // namespace kernels
}  // namespace ecnr
