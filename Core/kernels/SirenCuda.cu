// The CUDA block decoder (see SirenCuda.h). One CUDA block of 128 threads handles 128 voxels of one ECNR block:
// it stages that block's MLP in shared memory, folds the block's latent into the first bias, then every thread
// runs the whole MLP for its voxel with the activations in registers. Sine layers are pre-scaled by omega0 / pi
// and use the CPU kernels' reduction (k = rint(u), f = u - k) and degree-7 polynomial, so both decoders agree.
#include <cuda_runtime.h>

#include <stdexcept>

#include "SirenCuda.h"

namespace ecnr {
namespace kernels {

namespace {

constexpr int kThreads = 128;
constexpr float kInvPi = 0.318309886183790672f;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

__device__ __forceinline__ float sinPi(float u) {
  const float k = rintf(u);
  const float f = u - k;
  const float f2 = f * f;
  float p = fmaf(-5.546361975e-01f, f2, 2.541899028e+00f);
  p = fmaf(p, f2, -5.167142796e+00f);
  p = fmaf(p, f2, 3.141582022e+00f);
  const float s = p * f;
  return (int(k) & 1) ? -s : s;
}

// Per-MLP parameter record (floats): w0 coords (3 x H), w0 latent (D x H), b0 (H), then per hidden layer W (H x H)
// and b (H), then wOut (H) and bOut (1). Sine layers are scaled by omega0 / pi.
struct Shape {
  int H, S, D, P;  // hidden, sine layers, latent dim, floats per MLP
};

template <int HT>
__global__ void decodeKernel(Shape sh, const float* __restrict__ params, const float* __restrict__ latents,
                             const int* __restrict__ mlpOf, const int* __restrict__ latRow,
                             const int* __restrict__ valid, int bx, int by, int bz, float* __restrict__ out) {
  extern __shared__ float smem[];
  const int H = HT > 0 ? HT : sh.H;
  const int blk = blockIdx.x;
  const float* p = params + size_t(mlpOf[blk]) * size_t(sh.P);
  for (int i = threadIdx.x; i < sh.P; i += blockDim.x) smem[i] = p[i];
  __syncthreads();
  float* w0 = smem;
  const float* w0l = smem + 3 * H;
  float* b0 = smem + (3 + sh.D) * H;
  // fold the latent into b0 (one thread per neuron)
  if (threadIdx.x < H) {
    const float* lat = latents + size_t(latRow[blk]) * size_t(sh.D);
    float acc = b0[threadIdx.x];
    for (int k = 0; k < sh.D; ++k) acc = fmaf(lat[k], w0l[k * H + threadIdx.x], acc);
    b0[threadIdx.x] = acc;
  }
  __syncthreads();
  const int V = bx * by * bz;
  const int v = blockIdx.y * blockDim.x + threadIdx.x;
  if (v >= V) return;
  const int x = v % bx, y = (v / bx) % by, z = v / (bx * by);
  float* o = out + size_t(blk) * size_t(V);
  if (x >= valid[3 * blk] || y >= valid[3 * blk + 1] || z >= valid[3 * blk + 2]) {
    o[v] = 0.0f;
    return;
  }
  const float cx = bx > 1 ? 2.0f * float(x) / float(bx - 1) - 1.0f : 0.0f;
  const float cy = by > 1 ? 2.0f * float(y) / float(by - 1) - 1.0f : 0.0f;
  const float cz = bz > 1 ? 2.0f * float(z) / float(bz - 1) - 1.0f : 0.0f;
  constexpr int HM = HT > 0 ? HT : 64;
  float h[HM], g[HM];
#pragma unroll
  for (int j = 0; j < HM; ++j)
    if (j < H) h[j] = sinPi(fmaf(w0[j], cx, fmaf(w0[H + j], cy, fmaf(w0[2 * H + j], cz, b0[j]))));
  const float* q = b0 + H;
  for (int l = 1; l < sh.S; ++l) {
    const float* W = q;
    const float* b = q + H * H;
#pragma unroll
    for (int j = 0; j < HM; ++j)
      if (j < H) {
        float acc = b[j];
#pragma unroll
        for (int i = 0; i < HM; ++i)
          if (i < H) acc = fmaf(W[i * H + j], h[i], acc);
        g[j] = sinPi(acc);
      }
#pragma unroll
    for (int j = 0; j < HM; ++j)
      if (j < H) h[j] = g[j];
    q += H * H + H;
  }
  float y0 = q[H];
#pragma unroll
  for (int j = 0; j < HM; ++j)
    if (j < H) y0 = fmaf(q[j], h[j], y0);
  o[v] = y0;
}

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  void reserve(size_t n) {
    if (n <= count) return;
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
    check(cudaMalloc(&ptr, n * sizeof(T)), "cudaMalloc");
    count = n;
  }
  void upload(const T* host, size_t n) {
    reserve(n);
    check(cudaMemcpy(ptr, host, n * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

}  // namespace

bool cudaDecoderAvailable() { return cudaDecoderStatus().empty(); }

std::string cudaDecoderStatus() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return std::string("no usable GPU: ") + cudaGetErrorString(e);
  }
  return n > 0 ? std::string() : std::string("no GPU visible");
}

struct CudaScaleDecoder::Impl {
  Shape shape{};
  int bd[3] = {0, 0, 0};
  DeviceBuffer<float> params, latents, out;
  DeviceBuffer<int> mlp, latRow, valid;
};

CudaScaleDecoder::CudaScaleDecoder(int mlpCount, int latentDim, int hidden, int sineLayers, float omega0,
                                   const std::vector<std::vector<float>>& weights,
                                   const std::vector<std::vector<float>>& biases, const std::vector<float>& latents,
                                   const int blockDims[3])
    : impl_(new Impl) {
  const std::string status = cudaDecoderStatus();
  if (!status.empty()) throw std::runtime_error(status);
  if (hidden < 1 || hidden > 64 || sineLayers < 1) throw std::runtime_error("CUDA decoder: hidden must be 1..64");
  const int H = hidden, S = sineLayers, D = latentDim, in = 3 + D;
  Shape& sh = impl_->shape;
  sh = Shape{H, S, D, (3 + D) * H + H + (S - 1) * (H * H + H) + H + 1};
  const float s = omega0 * kInvPi;
  std::vector<float> flat(size_t(mlpCount) * size_t(sh.P));
  for (int m = 0; m < mlpCount; ++m) {
    float* p = flat.data() + size_t(m) * size_t(sh.P);
    const float* W0 = weights[0].data() + size_t(m) * size_t(in * H);
    for (int i = 0; i < in * H; ++i) *p++ = s * W0[i];  // coordinate rows then latent rows: (in, out) layout
    for (int j = 0; j < H; ++j) *p++ = s * biases[0][size_t(m * H + j)];
    for (int l = 1; l < S; ++l) {
      const float* W = weights[size_t(l)].data() + size_t(m) * size_t(H * H);
      for (int i = 0; i < H * H; ++i) *p++ = s * W[i];
      for (int j = 0; j < H; ++j) *p++ = s * biases[size_t(l)][size_t(m * H + j)];
    }
    for (int j = 0; j < H; ++j) *p++ = weights[size_t(S)][size_t(m * H + j)];
    *p++ = biases[size_t(S)][size_t(m)];
  }
  impl_->params.upload(flat.data(), flat.size());
  if (latents.empty()) impl_->latents.reserve(1);
  else impl_->latents.upload(latents.data(), latents.size());
  for (int a = 0; a < 3; ++a) impl_->bd[a] = blockDims[a];
}

CudaScaleDecoder::~CudaScaleDecoder() = default;

void CudaScaleDecoder::decode(const CudaBlockList& blocks, float* out) {
  const int n = int(blocks.mlp.size());
  if (n == 0) return;
  Impl& d = *impl_;
  const int V = d.bd[0] * d.bd[1] * d.bd[2];
  d.mlp.upload(blocks.mlp.data(), size_t(n));
  d.latRow.upload(blocks.latentRow.data(), size_t(n));
  d.valid.upload(blocks.validDims.data(), size_t(3 * n));
  d.out.reserve(size_t(n) * size_t(V));
  const dim3 grid(unsigned(n), unsigned((V + kThreads - 1) / kThreads));
  const size_t shared = size_t(d.shape.P) * sizeof(float);
  if (shared > 48 * 1024) throw std::runtime_error("CUDA decoder: MLP too large for shared memory");
  auto launch = [&](auto kernel) {
    kernel<<<grid, kThreads, shared>>>(d.shape, d.params.ptr, d.latents.ptr, d.mlp.ptr, d.latRow.ptr, d.valid.ptr,
                                       d.bd[0], d.bd[1], d.bd[2], d.out.ptr);
  };
  if (d.shape.H == 24) launch(decodeKernel<24>);
  else if (d.shape.H == 32) launch(decodeKernel<32>);
  else launch(decodeKernel<0>);
  check(cudaGetLastError(), "launch");
  check(cudaMemcpy(out, d.out.ptr, size_t(n) * size_t(V) * sizeof(float), cudaMemcpyDeviceToHost), "download");
}

}  // namespace kernels
}  // namespace ecnr
