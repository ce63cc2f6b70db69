// The fused SIREN kernels for AVX-512 (compiled with -mavx512f -mfma); see SirenIsaImpl.h.
#define ECNR_KERNEL_ISA avx512
#include "SirenIsaImpl.h"

namespace ecnr {
namespace kernels {
namespace avx512 {
extern const IsaKernels kKernels = {"avx512", Vec::W, &decode, &trainBatch};
}  // namespace avx512
}  // namespace kernels
}  // namespace ecnr
