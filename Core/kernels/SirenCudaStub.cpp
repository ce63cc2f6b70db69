// Built instead of SirenCuda.cu when no CUDA compiler was found.
#include <stdexcept>

#include "SirenCuda.h"

namespace ecnr {
namespace kernels {

bool cudaDecoderAvailable() { return false; }
std::string cudaDecoderStatus() { return "built without CUDA (no nvcc found at configure time)"; }

struct CudaScaleDecoder::Impl {};

CudaScaleDecoder::CudaScaleDecoder(int, int, int, int, float, const std::vector<std::vector<float>>&,
                                   const std::vector<std::vector<float>>&, const std::vector<float>&, const int*) {
  throw std::runtime_error(cudaDecoderStatus());
}
CudaScaleDecoder::~CudaScaleDecoder() = default;
void CudaScaleDecoder::decode(const CudaBlockList&, float*) { throw std::runtime_error(cudaDecoderStatus()); }

}  // namespace kernels
}  // namespace ecnr
