#include "ecnr/Ensemble.h"

#include <torch/torch.h>

#include "SirenTrainCpu.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ecnr {

bool cudaAvailable() { return torch::cuda::is_available(); }

namespace {

torch::Device pickDevice(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw Error("--device cuda: this LibTorch build has no CUDA support or no GPU is visible; use --device cpu");
    return torch::kCUDA;
  }
  throw Error("unknown device '" + name + "' (expected cpu or cuda)");
}

// The batched SIREN of one scale: layer l is W[l] (m, Fin, Fout) and b[l] (m, 1, Fout).
struct BatchedSiren {
  std::vector<torch::Tensor> W, b;
  float omega0 = 30;

  BatchedSiren(const MlpShape& shape, int64_t m, torch::Device dev) : omega0(shape.omega0) {
    for (int l = 0; l < shape.layerCount(); ++l) {
      const int64_t in = shape.fanIn(l), out = shape.fanOut(l);
      // SIREN initialisation: the first layer spans +-1/in; later layers +-sqrt(6/in)/omega0 so activations stay
      // in the sine's well-conditioned range. Biases as PyTorch's Linear: +-1/sqrt(in).
      const double wBound = l == 0 ? 1.0 / double(in) : std::sqrt(6.0 / double(in)) / shape.omega0;
      const double bBound = 1.0 / std::sqrt(double(in));
      W.push_back((torch::rand({m, in, out}) * 2 - 1).mul_(wBound).to(dev).set_requires_grad(true));
      b.push_back((torch::rand({m, 1, out}) * 2 - 1).mul_(bBound).to(dev).set_requires_grad(true));
    }
  }

  torch::Tensor forward(torch::Tensor x) const {
    const size_t last = W.size() - 1;
    for (size_t l = 0; l < last; ++l) x = torch::sin(omega0 * torch::baddbmm(b[l], x, W[l]));
    return torch::baddbmm(b[last], x, W[last]);
  }
};

// Draws a batch of random voxels per MLP from that MLP's blocks, uniformly over blocks then over valid voxels.
struct Sampler {
  torch::Tensor mlpBlocks;  // (m, cap) block ids, padded by repetition
  torch::Tensor counts;     // (m) float
  torch::Tensor valid;      // (blocks, 3) float
  torch::Tensor values;     // (blocks * V)
  torch::Tensor weights;    // (blocks) loss weight, undefined when all are 1
  std::array<int, 3> bd{};
  int64_t m = 0, batch = 0;

  Sampler(const TrainingSet& set, int64_t batchPerMlp) : bd(set.blockDims), m(set.mlpCount), batch(batchPerMlp) {
    std::vector<std::vector<int64_t>> lists(static_cast<size_t>(m));
    for (int64_t i = 0; i < set.blockCount(); ++i) lists[size_t(set.mlpOfBlock[size_t(i)])].push_back(i);
    size_t cap = 1;
    for (auto& l : lists) cap = std::max(cap, l.size());
    std::vector<int64_t> flat;
    std::vector<float> cnt;
    for (auto& l : lists) {
      if (l.empty()) throw Error("internal: an MLP has no block");
      cnt.push_back(float(l.size()));
      for (size_t k = 0; k < cap; ++k) flat.push_back(l[k % l.size()]);
    }
    mlpBlocks = torch::tensor(flat, torch::kLong).view({m, int64_t(cap)});
    counts = torch::tensor(cnt);
    std::vector<float> vd;
    for (auto& v : set.validDims) vd.insert(vd.end(), {float(v[0]), float(v[1]), float(v[2])});
    valid = torch::tensor(vd).view({set.blockCount(), 3});
    values = torch::from_blob(const_cast<float*>(set.values.data()), {int64_t(set.values.size())}, torch::kFloat);
    if (!set.lossWeight.empty()) weights = torch::tensor(set.lossWeight);
  }

  // Returns (block ids (m*B), coords (m, B, 3), targets (m, B)); per-sample weights come from sampleWeights().
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> draw() const {
    auto slot = (torch::rand({m, batch}) * counts.unsqueeze(1)).floor().to(torch::kLong);
    slot = torch::minimum(slot, (counts.to(torch::kLong) - 1).unsqueeze(1));
    auto blk = mlpBlocks.gather(1, slot).flatten();
    auto vox = (torch::rand({m * batch, 3}) * valid.index_select(0, blk)).floor();
    auto vi = vox.to(torch::kLong);
    const int64_t V = int64_t(bd[0]) * bd[1] * bd[2];
    auto lin = blk * V + vi.select(1, 0) + bd[0] * (vi.select(1, 1) + int64_t(bd[1]) * vi.select(1, 2));
    auto target = values.index_select(0, lin).view({m, batch});
    auto scale = torch::tensor({bd[0] > 1 ? 2.0f / float(bd[0] - 1) : 0.0f, bd[1] > 1 ? 2.0f / float(bd[1] - 1) : 0.0f,
                                bd[2] > 1 ? 2.0f / float(bd[2] - 1) : 0.0f});
    auto offset = torch::tensor({bd[0] > 1 ? -1.0f : 0.0f, bd[1] > 1 ? -1.0f : 0.0f, bd[2] > 1 ? -1.0f : 0.0f});
    auto coords = (vox * scale + offset).view({m, batch, 3});
    return {blk, coords, target};
  }

  torch::Tensor sampleWeights(const torch::Tensor& blk) const {
    return weights.defined() ? weights.index_select(0, blk).view({m, batch}) : torch::Tensor();
  }
};

double learningRateAt(const TrainOptions& o, double fraction) {
  double lr = o.learningRate;
  for (double at : o.lrDecayAt)
    if (fraction >= at) lr *= o.lrDecayFactor;
  return lr;
}

void copyOut(const BatchedSiren& net, const torch::Tensor& latents, const MlpShape& shape, ScaleModel& out) {
  auto toVector = [](const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  out.weights.clear();
  out.biases.clear();
  for (int l = 0; l < shape.layerCount(); ++l) {
    out.weights.push_back(toVector(net.W[size_t(l)]));
    out.biases.push_back(toVector(net.b[size_t(l)]));
  }
  out.latents = toVector(latents);
}

}  // namespace

std::vector<float> batchedForward(const ScaleModel& scale, const MlpShape& shape, const std::vector<float>& inputs,
                                  int64_t batch) {
  torch::NoGradGuard noGrad;
  const int64_t m = scale.mlpCount;
  if (int64_t(inputs.size()) != m * batch * shape.inputDim()) throw Error("batchedForward: input size mismatch");
  BatchedSiren net(shape, m, torch::kCPU);
  for (int l = 0; l < shape.layerCount(); ++l) {
    const int64_t in = shape.fanIn(l), out = shape.fanOut(l);
    net.W[size_t(l)] = torch::tensor(scale.weights[size_t(l)]).view({m, in, out});
    net.b[size_t(l)] = torch::tensor(scale.biases[size_t(l)]).view({m, 1, out});
  }
  auto x = torch::tensor(inputs).view({m, batch, int64_t(shape.inputDim())});
  auto y = net.forward(x).contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

namespace {

// Optimizer steps per epoch: enough for the MLP with the most voxels to see each of them once on average.
int64_t stepsPerEpochOf(const TrainingSet& set, const TrainOptions& o) {
  std::vector<int64_t> voxelsPerMlp(size_t(set.mlpCount), 0);
  for (int64_t i = 0; i < set.blockCount(); ++i) {
    const auto& v = set.validDims[size_t(i)];
    voxelsPerMlp[size_t(set.mlpOfBlock[size_t(i)])] += int64_t(v[0]) * v[1] * v[2];
  }
  const int64_t most = *std::max_element(voxelsPerMlp.begin(), voxelsPerMlp.end());
  return std::max<int64_t>(1, (most + o.batchPerMlp - 1) / o.batchPerMlp);
}

bool useFusedTrainer(const MlpShape& shape, const TrainOptions& o) {
  const bool fits = kernels::fusedTrainSupported(shape.hidden, shape.sineLayers, shape.latentDim);
  if (o.trainer == "libtorch") return false;
  if (o.trainer == "fused") {
    if (o.device != "cpu") throw Error("the fused trainer runs on the CPU only (use --device cpu or trainer libtorch)");
    if (!fits) throw Error("the fused trainer does not support this MLP shape");
    return true;
  }
  if (o.trainer != "auto") throw Error("unknown trainer '" + o.trainer + "' (expected auto, fused or libtorch)");
  return o.device == "cpu" && fits;
}

// The fused CPU trainer (kernels/SirenTrainCpu.h): same sampling distribution, loss, initialisation and Adam as
// the LibTorch path below, its own random streams (one per MLP).
TrainStats trainFused(const TrainingSet& set, const MlpShape& shape, const TrainOptions& o, ScaleModel& out,
                      const Progress& progress) {
  Timer timer;
  TrainStats stats;
  stats.trainer = "fused";
  const int64_t stepsPerEpoch = stepsPerEpochOf(set, o), totalSteps = stepsPerEpoch * o.epochs;
  std::vector<int> valid;
  for (const auto& v : set.validDims) valid.insert(valid.end(), {v[0], v[1], v[2]});
  kernels::FusedTrainProblem pr;
  for (int a = 0; a < 3; ++a) pr.blockDims[a] = set.blockDims[size_t(a)];
  pr.blockCount = set.blockCount();
  pr.validDims = valid.data();
  pr.values = set.values.data();
  pr.mlpOfBlock = set.mlpOfBlock.data();
  pr.lossWeight = set.lossWeight.empty() ? nullptr : set.lossWeight.data();
  pr.mlpCount = set.mlpCount;
  pr.latentDim = shape.latentDim;
  pr.hidden = shape.hidden;
  pr.sineLayers = shape.sineLayers;
  pr.omega0 = shape.omega0;
  pr.steps = totalSteps;
  pr.batchPerMlp = o.batchPerMlp;
  pr.weightDecay = o.weightDecay;
  pr.seed = o.seed;
  pr.threads = o.threads;
  pr.learningRate = [&](int64_t step) { return float(learningRateAt(o, double(step) / double(totalSteps))); };
  pr.stepsPerRound = stepsPerEpoch;
  pr.onRound = [&](int64_t done, double roundLoss) {
    stats.finalLoss = roundLoss / double(stepsPerEpoch);
    std::ostringstream msg;
    msg << o.label << ": epoch " << done / stepsPerEpoch << "/" << o.epochs << " loss " << stats.finalLoss;
    progress.report(o.progressBegin + (o.progressEnd - o.progressBegin) * double(done) / double(totalSteps), msg.str());
    return !progress.isCancelled();
  };
  kernels::FusedTrainResult r;
  try {
    r = kernels::trainSirenCpu(pr);
  } catch (const std::invalid_argument& e) {
    throw Error(e.what());
  }
  progress.checkCancel();
  out.weights = std::move(r.weights);
  out.biases = std::move(r.biases);
  out.latents = std::move(r.latents);
  stats.steps = r.stepsDone;
  stats.samples = r.stepsDone * set.mlpCount * o.batchPerMlp;
  stats.seconds = timer.seconds();
  return stats;
}

}  // namespace

LossGradients batchedLossGradients(const ScaleModel& scale, const MlpShape& shape, const std::vector<float>& inputs,
                                   const std::vector<float>& targets, const std::vector<float>& weights,
                                   int64_t batch) {
  const int64_t m = scale.mlpCount, D = shape.inputDim();
  if (int64_t(inputs.size()) != m * batch * D || int64_t(targets.size()) != m * batch ||
      (!weights.empty() && int64_t(weights.size()) != m * batch))
    throw Error("batchedLossGradients: size mismatch");
  BatchedSiren net(shape, m, torch::kCPU);
  for (int l = 0; l < shape.layerCount(); ++l) {
    const int64_t in = shape.fanIn(l), out = shape.fanOut(l);
    net.W[size_t(l)] = torch::tensor(scale.weights[size_t(l)]).view({m, in, out}).set_requires_grad(true);
    net.b[size_t(l)] = torch::tensor(scale.biases[size_t(l)]).view({m, 1, out}).set_requires_grad(true);
  }
  auto x = torch::tensor(inputs).view({m, batch, D}).set_requires_grad(true);
  auto y = net.forward(x).squeeze(2);
  auto t = torch::tensor(targets).view({m, batch});
  auto loss = weights.empty() ? torch::mse_loss(y, t) : (torch::tensor(weights).view({m, batch}) * (y - t).square()).mean();
  loss.backward();
  auto toVector = [](const torch::Tensor& g) {
    auto c = g.contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  LossGradients r;
  r.loss = loss.item<double>();
  for (int l = 0; l < shape.layerCount(); ++l) {
    r.gradWeights.push_back(toVector(net.W[size_t(l)].grad()));
    r.gradBiases.push_back(toVector(net.b[size_t(l)].grad()));
  }
  r.gradInputs = toVector(x.grad());
  return r;
}

TrainStats trainEnsemble(const TrainingSet& set, const MlpShape& shape, const TrainOptions& o, ScaleModel& out,
                         const Progress& progress) {
  Timer timer;
  TrainStats stats;
  stats.trainer = "libtorch";
  const torch::Device dev = pickDevice(o.device);
  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const int64_t m = set.mlpCount, nb = set.blockCount();
  out.mlpCount = int(m);
  if (nb == 0) {
    out.weights.assign(size_t(shape.layerCount()), {});
    out.biases.assign(size_t(shape.layerCount()), {});
    out.latents.clear();
    return stats;
  }
  if (useFusedTrainer(shape, o)) return trainFused(set, shape, o, out, progress);
  BatchedSiren net(shape, m, dev);
  auto latents = torch::randn({nb, int64_t(shape.latentDim)}).to(dev).set_requires_grad(true);
  std::vector<torch::Tensor> params = net.W;
  params.insert(params.end(), net.b.begin(), net.b.end());
  params.push_back(latents);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(o.learningRate).betas({0.9, 0.999}).weight_decay(o.weightDecay));

  Sampler sampler(set, o.batchPerMlp);
  const int64_t stepsPerEpoch = stepsPerEpochOf(set, o);
  const int64_t totalSteps = stepsPerEpoch * o.epochs;
  double epochLoss = 0;
  for (int64_t step = 0; step < totalSteps; ++step) {
    progress.checkCancel();
    const double fraction = double(step) / double(totalSteps);
    for (auto& g : adam.param_groups())
      static_cast<torch::optim::AdamOptions&>(g.options()).lr(learningRateAt(o, fraction));
    auto [blk, coords, target] = sampler.draw();
    auto lat = latents.index_select(0, blk.to(dev)).view({m, o.batchPerMlp, shape.latentDim});
    auto x = torch::cat({coords.to(dev), lat}, 2);
    auto y = net.forward(x).squeeze(2);
    auto w = sampler.sampleWeights(blk);
    auto loss = w.defined() ? (w.to(dev) * (y - target.to(dev)).square()).mean() : torch::mse_loss(y, target.to(dev));
    adam.zero_grad();
    loss.backward();
    adam.step();
    epochLoss += loss.item<double>();
    if ((step + 1) % stepsPerEpoch == 0) {
      const int64_t epoch = (step + 1) / stepsPerEpoch;
      stats.finalLoss = epochLoss / double(stepsPerEpoch);
      epochLoss = 0;
      std::ostringstream msg;
      msg << o.label << ": epoch " << epoch << "/" << o.epochs << " loss " << stats.finalLoss;
      progress.report(o.progressBegin + (o.progressEnd - o.progressBegin) * double(step + 1) / double(totalSteps),
                      msg.str());
    }
  }
  stats.steps = totalSteps;
  stats.samples = totalSteps * m * o.batchPerMlp;
  copyOut(net, latents, shape, out);
  stats.seconds = timer.seconds();
  return stats;
}

}  // namespace ecnr
