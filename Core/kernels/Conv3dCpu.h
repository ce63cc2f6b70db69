// Conv3dCpu: runs a small stack of 3D convolutions (the boundary CNN) over one scalar volume, on plain arrays.
// A leaf: it includes nothing of Core, so the decoder (and the ParaView reader) applies the CNN without LibTorch.
#pragma once

#include <cstdint>

namespace ecnr {
namespace kernels {

constexpr int kMaxConvLayers = 16;
constexpr int kMaxConvChannels = 256;

/// A stack of `layers` convolutions, kernel k^3 (k = 1, 3 or 5), replicate padding k/2 before every layer (so
/// the output has the input's dims), LeakyReLU(negativeSlope) after every layer but the last.
struct ConvStackView {
  int layers = 0;
  int kernel = 3;
  int channels[kMaxConvLayers + 1] = {};  ///< channels[0] == channels[layers] == 1; others <= kMaxConvChannels
  const float* W[kMaxConvLayers] = {};    ///< layer l: (channels[l+1], channels[l], kz, ky, kx) row-major
  const float* b[kMaxConvLayers] = {};    ///< layer l: channels[l+1]
  float negativeSlope = 0.01f;
  bool residual = true;  ///< out = in + stack(in)
};

/// Evaluates the stack over an nx * ny * nz volume (x fastest). `out` may equal `in` (in-place). Parallel
/// (OpenMP) within each z-plane; memory is k planes per layer, never the whole volume times the channels.
/// std::invalid_argument on a bad shape.
void conv3dStack(const ConvStackView& net, const float* in, float* out, int64_t nx, int64_t ny, int64_t nz);

/// Instruction set of the inner loops: chosen at run time from the CPU; forcing one the CPU lacks falls back to
/// the best it has (tests force each to compare them).
enum class ConvIsa { Auto, Generic, Avx2, Avx512 };
void forceConvIsa(ConvIsa isa);
ConvIsa convIsaInUse();

}  // namespace kernels
}  // namespace ecnr
