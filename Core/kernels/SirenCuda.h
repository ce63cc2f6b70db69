// SirenCuda: the fused SIREN block decoder on an NVIDIA GPU (one thread per voxel, the MLP's weights in shared
// memory, the same folded weights and polynomial sine as the CPU kernels). Plain C++ interface: no CUDA type
// leaks out, and without nvcc the build gets a stub whose cudaDecoderAvailable() is false.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ecnr {
namespace kernels {

/// True when this build has the CUDA kernels and a GPU is visible (any CUDA error, e.g. no driver, means no).
bool cudaDecoderAvailable();
/// Why not (empty when available): "built without CUDA", the CUDA error, ...
std::string cudaDecoderStatus();

/// One time step's worth of blocks to decode: block i uses MLP mlp[i] and latent row latentRow[i].
struct CudaBlockList {
  std::vector<int32_t> mlp, latentRow;
  std::vector<int32_t> validDims;  ///< 3 per block
};

/// The MLPs and latents of one scale resident on the GPU; decode() evaluates a list of blocks.
class CudaScaleDecoder {
public:
  /// weights[l] (mlpCount, fanIn, fanOut) and biases[l] (mlpCount, fanOut) in the model layout; latents
  /// (rows, latentDim). Throws std::runtime_error when no GPU can be used.
  CudaScaleDecoder(int mlpCount, int latentDim, int hidden, int sineLayers, float omega0,
                   const std::vector<std::vector<float>>& weights, const std::vector<std::vector<float>>& biases,
                   const std::vector<float>& latents, const int blockDims[3]);
  ~CudaScaleDecoder();
  CudaScaleDecoder(const CudaScaleDecoder&) = delete;
  CudaScaleDecoder& operator=(const CudaScaleDecoder&) = delete;

  /// out: blocks * voxelsPerBlock floats (x fastest); padding voxels are set to 0.
  void decode(const CudaBlockList& blocks, float* out);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kernels
}  // namespace ecnr
