// The fused SIREN kernels for AVX2 + FMA (compiled with -mavx2 -mfma); see SirenIsaImpl.h.
#define ECNR_KERNEL_ISA avx2
#include "SirenIsaImpl.h"

namespace ecnr {
namespace kernels {
namespace avx2 {
extern const IsaKernels kKernels = {"avx2", Vec::W, &decode, &trainBatch};
}  // namespace avx2
}  // namespace kernels
}  // namespace ecnr
