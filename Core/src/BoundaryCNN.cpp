// Training of the boundary CNN (LibTorch, CPU). The network it returns is applied by BoundaryCNNApply.cpp.
#include "ecnr/BoundaryCNN.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>

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

// Loss weights along one axis of a patch [start, start + p) of an axis of n voxels: 1 where the receptive field
// (halo voxels each side) stays inside the patch or the patch edge is the volume edge, else 0.
void axisMask(int64_t start, int64_t p, int64_t n, int64_t halo, float* m) {
  const int64_t lo = start == 0 ? 0 : halo, hi = start + p == n ? p : p - halo;
  for (int64_t i = 0; i < p; ++i) m[i] = i >= lo && i < hi ? 1.0f : 0.0f;
}

}  // namespace

BoundaryCnn trainBoundaryCnn(const Field& decoded, const Field& original, const BoundaryCnnOptions& o,
                             const Progress& progress) {
  if (decoded.dims != original.dims) throw Error("trainBoundaryCnn: decoded and original dims differ");
  const Dims4 d = decoded.dims;
  if (decoded.values.size() != size_t(d.count()) || original.values.size() != size_t(d.count()))
    throw Error("trainBoundaryCnn: field size does not match its dims");
  if (o.steps < 1 || o.batch < 1 || o.patch < 1 || !(o.learningRate > 0))
    throw Error("trainBoundaryCnn: steps, batch, patch and learning rate must be positive");
  if (o.bits != 0 && (o.bits < 2 || o.bits > 16)) throw Error("trainBoundaryCnn: bits must be 0 or 2..16");
  BoundaryCnn cnn = makeBoundaryCnn(o.layers, o.channels, o.kernel, o.residual);  // validates the shape

  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);

  const int L = cnn.layers, k = cnn.kernel;
  std::vector<torch::Tensor> W, b;
  for (int l = 0; l < L; ++l) {
    const int64_t in = cnn.inChannels(l), out = cnn.outChannels(l), fanIn = in * k * k * k;
    // He initialisation for the hidden layers; the last layer starts at zero so a residual network starts as
    // the identity (never worse than the decode), and its gradient alone gets the others going at step 1.
    const double std = l + 1 < L || !o.residual ? std::sqrt(2.0 / double(fanIn)) : 0.0;
    W.push_back((torch::randn({out, in, k, k, k}) * std).set_requires_grad(true));
    b.push_back(torch::zeros({out}).set_requires_grad(true));
  }
  std::vector<torch::Tensor> params(W);
  params.insert(params.end(), b.begin(), b.end());
  torch::optim::Adam adam(params, torch::optim::AdamOptions(o.learningRate));

  const int64_t px = std::min<int64_t>(o.patch, d.x), py = std::min<int64_t>(o.patch, d.y),
                pz = std::min<int64_t>(o.patch, d.z);
  const int64_t halo = int64_t(L) * (k / 2), B = o.batch, pv = px * py * pz;
  for (int64_t a : {px < d.x ? px : 0, py < d.y ? py : 0, pz < d.z ? pz : 0})
    if (a > 0 && a <= 2 * halo)
      throw Error("trainBoundaryCnn: patch " + std::to_string(o.patch) + " must exceed twice the receptive radius (" +
                  std::to_string(halo) + ") or cover the axis");
  std::vector<float> mx(static_cast<size_t>(px)), my(static_cast<size_t>(py)), mz(static_cast<size_t>(pz));
  std::uniform_int_distribution<int64_t> ut(0, d.t - 1), ux(0, d.x - px), uy(0, d.y - py), uz(0, d.z - pz);

  const Timer timer;
  for (int step = 0;; ++step) {
    progress.checkCancel();
    const double f = std::max(double(step) / o.steps, o.maxSeconds > 0 ? timer.seconds() / o.maxSeconds : 0.0);
    if (f >= 1) break;
    const double lr = o.learningRate * (f >= 0.5 ? 0.5 : 1.0) * (f >= 0.75 ? 0.5 : 1.0);
    for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);

    auto input = torch::empty({B, 1, pz, py, px});
    auto target = torch::empty({B, 1, pz, py, px});
    auto mask = torch::empty({B, 1, pz, py, px});
    float* ip = input.data_ptr<float>();
    float* tp = target.data_ptr<float>();
    float* mp = mask.data_ptr<float>();
    for (int64_t s = 0; s < B; ++s) {
      const int64_t t = ut(rng), x0 = ux(rng), y0 = uy(rng), z0 = uz(rng);
      axisMask(x0, px, d.x, halo, mx.data());
      axisMask(y0, py, d.y, halo, my.data());
      axisMask(z0, pz, d.z, halo, mz.data());
      for (int64_t z = 0; z < pz; ++z)
        for (int64_t y = 0; y < py; ++y) {
          const size_t src = size_t(decoded.index(x0, y0 + y, z0 + z, t));
          const size_t dst = size_t(s * pv + (z * py + y) * px);
          std::copy_n(decoded.values.data() + src, px, ip + dst);
          std::copy_n(original.values.data() + src, px, tp + dst);
          for (int64_t x = 0; x < px; ++x) mp[dst + size_t(x)] = mz[size_t(z)] * my[size_t(y)] * mx[size_t(x)];
        }
    }
    const auto count = mask.sum();
    auto loss = (mask * (forward(W, b, input, k, o.residual) - target).square()).sum() / count;
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step % 10 == 0) {
      std::ostringstream msg;
      msg << "boundary CNN: step " << step << ", loss " << loss.item<float>();
      progress.report(std::min(f, 1.0), msg.str());
    }
  }

  for (int l = 0; l < L; ++l) {
    auto w = W[size_t(l)].detach().contiguous(), bb = b[size_t(l)].detach().contiguous();
    std::copy_n(w.data_ptr<float>(), w.numel(), cnn.weights[size_t(l)].data());
    std::copy_n(bb.data_ptr<float>(), bb.numel(), cnn.biases[size_t(l)].data());
  }
  if (o.bits > 0) quantizeBoundaryCnn(cnn, o.bits);
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
