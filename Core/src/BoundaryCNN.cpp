// Training of the boundary CNN (LibTorch, CPU). The network it returns is applied by BoundaryCNNApply.cpp.
#include "ecnr/BoundaryCNN.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <sstream>
#include <string>

// OpenBLAS's thread control, when the BLAS LibTorch loaded is OpenBLAS (weak: absent with another BLAS).
extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
int openblas_get_num_threads() __attribute__((weak));
}

namespace ecnr {

namespace {

// The same network as kernels/Conv3dCpu: replicate padding before every layer, LeakyReLU between layers.
torch::Tensor forward(const std::vector<torch::Tensor>& W, const std::vector<torch::Tensor>& b, const torch::Tensor& x,
                      int kernel, bool residual) {
  const int64_t r = kernel / 2;
  torch::Tensor h = x;
  for (size_t l = 0; l < W.size(); ++l) {
    if (r > 0) h = torch::replication_pad3d(h, {r, r, r, r, r, r});
    h = torch::conv3d(h, W[l], b[l]);
    if (l + 1 < W.size()) h = torch::leaky_relu(h, kBoundaryCnnSlope);
  }
  return residual ? x + h : h;
}

// One axis of a training patch: the output range [a, b) (the loss voxels) and the input range around it. An output
// side within the receptive radius h of the volume edge is moved onto it; there every layer pads by replication as
// in the full-volume apply; elsewhere the input extends h voxels further and the layers do not pad (each shrinks
// the range by r), so every loss voxel sees exactly what it sees when the whole volume is processed.
struct PatchAxis {
  int64_t a = 0, b = 0, in0 = 0, in1 = 0;
  bool padLo = false, padHi = false;
};

PatchAxis patchAxis(int64_t start, int64_t p, int64_t n, int64_t h) {
  PatchAxis ax;
  ax.a = start < h ? 0 : start;
  ax.b = start + p > n - h ? n : start + p;
  ax.padLo = ax.a == 0;
  ax.padHi = ax.b == n;
  ax.in0 = ax.padLo ? 0 : ax.a - h;
  ax.in1 = ax.padHi ? n : ax.b + h;
  return ax;
}

// The input patch's voxels at the output range (the identity's output).
torch::Tensor cropToOutput(const torch::Tensor& x, const PatchAxis ax[3], int64_t h) {
  using torch::indexing::Slice;
  auto crop = [&](const PatchAxis& a) { return Slice(a.padLo ? 0 : h, a.padLo ? a.b - a.a : h + a.b - a.a); };
  return x.index({0, 0, crop(ax[2]), crop(ax[1]), crop(ax[0])});
}

// forward() on one patch (1, 1, z, y, x): replicate padding only on the sides at the volume edge.
torch::Tensor forwardPatch(const std::vector<torch::Tensor>& W, const std::vector<torch::Tensor>& b, const torch::Tensor& x,
                           int kernel, bool residual, const PatchAxis ax[3]) {
  const int64_t r = kernel / 2, h = int64_t(W.size()) * r;
  const std::vector<int64_t> pad = {ax[0].padLo ? r : 0, ax[0].padHi ? r : 0, ax[1].padLo ? r : 0,
                                    ax[1].padHi ? r : 0, ax[2].padLo ? r : 0, ax[2].padHi ? r : 0};
  const bool anyPad = std::any_of(pad.begin(), pad.end(), [](int64_t v) { return v > 0; });
  torch::Tensor y = x;
  for (size_t l = 0; l < W.size(); ++l) {
    if (anyPad) y = torch::replication_pad3d(y, pad);
    y = torch::conv3d(y, W[l], b[l]);
    if (l + 1 < W.size()) y = torch::leaky_relu(y, kBoundaryCnnSlope);
  }
  return residual ? y + cropToOutput(x, ax, h) : y;
}

}  // namespace

namespace {

struct Patch {
  int64_t t = 0;
  torch::Tensor input, target;  ///< the decode around the loss voxels (with the halo), the original at them
  PatchAxis ax[3];
};

// The patch's input from one decoded time step and its target from the original step (3D arrays of dims d).
void cutPatch(const float* decoded, const float* original, const Dims4& d, Patch& pt) {
  const PatchAxis* ax = pt.ax;
  const int64_t ix = ax[0].in1 - ax[0].in0, iy = ax[1].in1 - ax[1].in0, iz = ax[2].in1 - ax[2].in0;
  const int64_t ox = ax[0].b - ax[0].a, oy = ax[1].b - ax[1].a, oz = ax[2].b - ax[2].a;
  pt.input = torch::empty({1, 1, iz, iy, ix});
  pt.target = torch::empty({1, 1, oz, oy, ox});
  float* ip = pt.input.data_ptr<float>();
  float* tp = pt.target.data_ptr<float>();
  auto at = [&](int64_t x, int64_t y, int64_t z) { return x + d.x * (y + d.y * z); };
  for (int64_t z = 0; z < iz; ++z)
    for (int64_t y = 0; y < iy; ++y)
      std::copy_n(decoded + at(ax[0].in0, ax[1].in0 + y, ax[2].in0 + z), ix, ip + (z * iy + y) * ix);
  for (int64_t z = 0; z < oz; ++z)
    for (int64_t y = 0; y < oy; ++y)
      std::copy_n(original + at(ax[0].a, ax[1].a + y, ax[2].a + z), ox, tp + (z * oy + y) * ox);
}

}  // namespace

BoundaryCnn trainBoundaryCnn(const Field& decoded, const Field& original, const BoundaryCnnOptions& o,
                             const Progress& progress) {
  if (decoded.dims != original.dims) throw Error("trainBoundaryCnn: decoded and original dims differ");
  const Dims4 d = decoded.dims;
  if (decoded.values.size() != size_t(d.count()) || original.values.size() != size_t(d.count()))
    throw Error("trainBoundaryCnn: field size does not match its dims");
  const int64_t n = d.voxelsPerStep();
  return trainBoundaryCnn(
      d,
      [&](int64_t t, float* dec, float* orig) {
        std::copy_n(decoded.step(t), n, dec);
        std::copy_n(original.step(t), n, orig);
      },
      o, progress);
}

BoundaryCnn trainBoundaryCnn(const Dims4& d, const CnnStepReader& read, const BoundaryCnnOptions& o,
                             const Progress& progress) {
  validateDims(d);
  if (o.steps < 1 || o.batch < 1 || o.patch < 1 || !(o.learningRate > 0))
    throw Error("trainBoundaryCnn: steps, batch, patch and learning rate must be positive");
  if (o.bits != 0 && (o.bits < 2 || o.bits > 16)) throw Error("trainBoundaryCnn: bits must be 0 or 2..16");
  BoundaryCnn cnn = makeBoundaryCnn(o.layers, o.channels, o.kernel, o.residual);  // validates the shape

  // LibTorch's thread count is process-wide: restore it when training ends, however it ends. OpenBLAS (the
  // BLAS of Debian's LibTorch) keeps its own, taken from the CPUs the process may use, and splits its sums by it:
  // held at the same count, the network does not depend on the CPU affinity (mpiexec binds each rank to a core).
  struct ThreadCount {
    int saved = torch::get_num_threads();
    int savedBlas = openblas_get_num_threads ? openblas_get_num_threads() : 0;
    ~ThreadCount() {
      torch::set_num_threads(saved);
      if (openblas_set_num_threads && savedBlas > 0) openblas_set_num_threads(savedBlas);
    }
  } restore;
  if (o.threads > 0) torch::set_num_threads(o.threads);
  if (openblas_set_num_threads) openblas_set_num_threads(o.threads > 0 ? o.threads : 1);
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);

  const int L = cnn.layers, k = cnn.kernel;
  std::vector<torch::Tensor> W, b;
  for (int l = 0; l < L; ++l) {
    const int64_t in = cnn.inChannels(l), out = cnn.outChannels(l), fanIn = in * k * k * k;
    // He initialisation for the hidden layers; the last layer starts at zero so a residual network starts as
    // the identity (never worse than the decode), and its gradient alone gets the others going at step 1.
    const double sd = l + 1 < L || !o.residual ? std::sqrt(2.0 / double(fanIn)) : 0.0;
    W.push_back((torch::randn({out, in, k, k, k}) * sd).set_requires_grad(true));
    b.push_back(torch::zeros({out}).set_requires_grad(true));
  }
  std::vector<torch::Tensor> params(W);
  params.insert(params.end(), b.begin(), b.end());
  torch::optim::Adam adam(params, torch::optim::AdamOptions(o.learningRate));
  std::vector<std::vector<int64_t>> fixedGrad;
  for (const auto& p : params) fixedGrad.emplace_back(size_t(p.numel()), 0);

  const int64_t halo = int64_t(L) * (k / 2);
  const int64_t p[3] = {std::min<int64_t>(o.patch, d.x), std::min<int64_t>(o.patch, d.y), std::min<int64_t>(o.patch, d.z)};
  std::uniform_int_distribution<int64_t> ut(0, d.t - 1), ux(0, d.x - p[0]), uy(0, d.y - p[1]), uz(0, d.z - p[2]);

  auto draw = [&](std::mt19937_64& g) {
    Patch pt;
    pt.t = ut(g);
    pt.ax[0] = patchAxis(ux(g), p[0], d.x, halo);
    pt.ax[1] = patchAxis(uy(g), p[1], d.y, halo);
    pt.ax[2] = patchAxis(uz(g), p[2], d.z, halo);
    return pt;
  };
  // Every patch is drawn before training (the same random stream as drawing them step by step), then filled one
  // time step at a time: the reader decodes each step once, and neither series is held whole.
  std::vector<Patch> heldOut;  // held-out patches (own seed) on which the final, quantized network must beat the identity
  {
    std::mt19937_64 g(o.seed ^ 0x9E3779B97F4A7C15ull);
    for (int i = 0; i < 8; ++i) heldOut.push_back(draw(g));
  }
  std::vector<Patch> patches;  // o.batch per step; every rank draws every patch: the random stream stays the same
  for (int64_t i = 0; i < int64_t(o.steps) * o.batch; ++i) patches.push_back(draw(rng));
  {
    std::map<int64_t, std::vector<Patch*>> byStep;
    for (auto* group : {&heldOut, &patches})
      for (Patch& pt : *group) byStep[pt.t].push_back(&pt);
    const int64_t n = d.voxelsPerStep();
    std::vector<float> decoded(static_cast<size_t>(n)), original(static_cast<size_t>(n));
    for (const auto& [t, list] : byStep) {
      progress.checkCancel();
      read(t, decoded.data(), original.data());
      for (Patch* pt : list) cutPatch(decoded.data(), original.data(), d, *pt);
    }
  }

  const Comm& comm = o.comm ? *o.comm : aloneComm();
  const Timer timer;
  for (int step = 0;; ++step) {
    progress.checkCancel();
    double f = std::max(double(step) / o.steps, o.maxSeconds > 0 ? timer.seconds() / o.maxSeconds : 0.0);
    if (o.maxSeconds > 0 && comm.parallel()) f = comm.sum(f) / comm.size();  // the ranks agree on the schedule
    if (f >= 1) break;
    const double lr = o.learningRate * (f >= 0.5 ? 0.5 : 1.0) * (f >= 0.75 ? 0.5 : 1.0);
    for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);

    // Patches differ in shape near the volume edges, so each is its own graph; the loss is their summed squared
    // error over all their voxels. Each patch's gradient is added in fixed point (exact, order-free sums), so
    // the network is bit-identical however the patches are split over MPI ranks (Comm.h).
    const Patch* batch = patches.data() + int64_t(step) * o.batch;
    int64_t voxels = 0;
    for (int s = 0; s < o.batch; ++s) voxels += batch[s].target.numel();
    for (size_t i = 0; i < params.size(); ++i) std::fill(fixedGrad[i].begin(), fixedGrad[i].end(), 0);
    double lossSum = 0;
    for (int s = comm.rank(); s < o.batch; s += comm.size()) {
      const Patch& pt = batch[s];
      auto loss = (forwardPatch(W, b, pt.input, k, o.residual, pt.ax) - pt.target).square().sum() / double(voxels);
      adam.zero_grad();
      loss.backward();
      lossSum += loss.item<double>();
      for (size_t i = 0; i < params.size(); ++i) {
        const torch::Tensor g = params[i].grad().contiguous();
        const float* gp = g.data_ptr<float>();
        for (size_t j = 0; j < fixedGrad[i].size(); ++j) fixedGrad[i][j] += toFixedPoint(gp[j]);
      }
    }
    for (size_t i = 0; i < params.size(); ++i) {
      comm.sum(fixedGrad[i].data(), fixedGrad[i].size());
      torch::Tensor g = torch::empty_like(params[i]);
      float* gp = g.data_ptr<float>();
      for (size_t j = 0; j < fixedGrad[i].size(); ++j) gp[j] = float(fromFixedPoint(fixedGrad[i][j]));
      params[i].mutable_grad() = g;
    }
    const double loss = comm.sum(lossSum);
    adam.step();
    if (step % 10 == 0) {
      std::ostringstream msg;
      msg << "boundary CNN: step " << step << ", loss " << loss;
      progress.report(std::min(f, 1.0), msg.str());
    }
  }

  for (int l = 0; l < L; ++l) {
    auto w = W[size_t(l)].detach().contiguous(), bb = b[size_t(l)].detach().contiguous();
    std::copy_n(w.data_ptr<float>(), w.numel(), cnn.weights[size_t(l)].data());
    std::copy_n(bb.data_ptr<float>(), bb.numel(), cnn.biases[size_t(l)].data());
  }
  bool finite = true;
  for (const auto* group : {&cnn.weights, &cnn.biases})
    for (const auto& layer : *group)
      for (float v : layer) finite = finite && std::isfinite(v);
  if (!finite) cnn = makeBoundaryCnn(o.layers, o.channels, o.kernel, o.residual);  // diverged: zeros (the identity)
  if (o.bits > 0) quantizeBoundaryCnn(cnn, o.bits);

  if (cnn.residual) {
    torch::NoGradGuard noGrad;
    std::vector<torch::Tensor> Wq, bq;
    for (int l = 0; l < L; ++l) {
      Wq.push_back(torch::tensor(cnn.weights[size_t(l)]).view(W[size_t(l)].sizes()));
      bq.push_back(torch::tensor(cnn.biases[size_t(l)]));
    }
    double withCnn = 0, without = 0;
    for (const Patch& pt : heldOut) {
      withCnn += (forwardPatch(Wq, bq, pt.input, k, true, pt.ax) - pt.target).square().sum().item<double>();
      without += (cropToOutput(pt.input, pt.ax, halo) - pt.target).square().sum().item<double>();
    }
    if (!(withCnn < without)) {
      // Training did not help (too few steps, or nothing to correct): the identity, which isIdentity() reports.
      const int bits = cnn.bits;
      cnn = makeBoundaryCnn(o.layers, o.channels, o.kernel, true);
      if (bits > 0) quantizeBoundaryCnn(cnn, bits);
    }
  }
  progress.report(1.0, "boundary CNN: trained");
  return cnn;
}

void applyBoundaryCnnTorch(const BoundaryCnn& cnn, Field& field, int threads) {
  cnn.validate();
  if (field.values.size() != size_t(field.dims.count()))
    throw Error("applyBoundaryCnnTorch: field size does not match its dims");
  if (threads > 0) torch::set_num_threads(threads);
  torch::NoGradGuard noGrad;
  const int k = cnn.kernel;
  std::vector<torch::Tensor> W, b;
  for (int l = 0; l < cnn.layers; ++l) {
    W.push_back(torch::tensor(cnn.weights[size_t(l)]).view({cnn.outChannels(l), cnn.inChannels(l), k, k, k}));
    b.push_back(torch::tensor(cnn.biases[size_t(l)]));
  }
  const Dims4& d = field.dims;
  for (int64_t t = 0; t < d.t; ++t) {
    auto x = torch::from_blob(field.step(t), {1, 1, d.z, d.y, d.x}, torch::kFloat);
    auto y = forward(W, b, x, k, cnn.residual).contiguous();
    std::copy_n(y.data_ptr<float>(), d.voxelsPerStep(), field.step(t));
  }
}

}  // namespace ecnr
