// The fused SIREN kernels for portable C++ (no -m flags); see SirenIsaImpl.h.
#define ECNR_KERNEL_ISA generic
#include "SirenIsaImpl.h"

namespace ecnr {
namespace kernels {
namespace generic {
extern const IsaKernels kKernels = {"generic", Vec::W, &decode, &trainBatch};
}  // namespace generic
}  // namespace kernels
}  // namespace ecnr
