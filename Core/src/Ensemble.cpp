#include "ecnr/Ensemble.h"

#include <torch/torch.h>

#include "BlockImportance.h"
#include "MlpView.h"
#include "SirenCpu.h"
#include "SirenTrainCpu.h"
#include "ecnr/Pruning.h"
#include "ecnr/Quantization.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
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

  /// Quantization-aware training: per layer, the sorted codebook its weights (biases) are rounded to in the
  /// forward pass, the gradient passed straight through to the float values (undefined: float).
  std::vector<torch::Tensor> bookW, bookB;

  torch::Tensor forward(torch::Tensor x) const {
    const size_t last = W.size() - 1;
    for (size_t l = 0; l < last; ++l) x = torch::sin(omega0 * torch::baddbmm(used(b, bookB, l), x, used(W, bookW, l)));
    return torch::baddbmm(used(b, bookB, last), x, used(W, bookW, last));
  }

private:
  // p rounded to its nearest codebook entry (0 stays 0: pruned), with p's gradient (straight-through estimator).
  static torch::Tensor used(const std::vector<torch::Tensor>& p, const std::vector<torch::Tensor>& books, size_t l) {
    if (l >= books.size() || !books[l].defined()) return p[l];
    const torch::Tensor& book = books[l];
    const torch::Tensor v = p[l].detach();
    torch::Tensor q = book.index_select(0, torch::bucketize(v, (book.slice(0, 1) + book.slice(0, 0, -1)) / 2).view(-1))
                          .view(v.sizes());
    q = torch::where(v == 0, v, q);
    return p[l] + (q - v);
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
  // Importance sampling (TrainOptions::importance): per MLP, its blocks' running errors; the last draw's slots
  // (each block's position in its MLP's list) and factors.
  std::vector<kernels::BlockImportance> importance;
  torch::Tensor isSlot, isWeight;  // (m, B), or undefined

  Sampler(const TrainingSet& set, int64_t batchPerMlp, float importanceShare)
      : bd(set.blockDims), m(set.mlpCount), batch(batchPerMlp) {
    std::vector<std::vector<int64_t>> lists(static_cast<size_t>(m));
    for (int64_t i = 0; i < set.blockCount(); ++i) lists[size_t(set.mlpOfBlock[size_t(i)])].push_back(i);
    if (importanceShare > 0) {
      importance.resize(size_t(m));
      for (int64_t q = 0; q < m; ++q)
        importance[size_t(q)].reset(lists[size_t(q)].size(), std::min(importanceShare, 0.9f));
    }
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
    if (set.half()) {  // the LibTorch reference path takes float32 values (a copy; the fused trainer reads halves)
      values = torch::empty({int64_t(set.halfValues.size())}, torch::kFloat);
      float* v = values.data_ptr<float>();
      for (size_t i = 0; i < set.halfValues.size(); ++i) v[i] = halfToFloat(set.halfValues[i]);
    } else {
      values = torch::from_blob(const_cast<float*>(set.values.data()), {int64_t(set.values.size())}, torch::kFloat);
    }
    if (!set.lossWeight.empty()) weights = torch::tensor(set.lossWeight);
  }

  // Returns (block ids (m*B), coords (m, B, 3), targets (m, B)); per-sample weights come from sampleWeights().
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> draw() {
    torch::Tensor slot;
    if (importance.empty()) {
      slot = (torch::rand({m, batch}) * counts.unsqueeze(1)).floor().to(torch::kLong);
      slot = torch::minimum(slot, (counts.to(torch::kLong) - 1).unsqueeze(1));
    } else {
      slot = drawByImportance();
    }
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
    torch::Tensor w = weights.defined() ? weights.index_select(0, blk).view({m, batch}) : torch::Tensor();
    if (isWeight.defined()) w = w.defined() ? w * isWeight : isWeight;
    return w;
  }

  // Slots by each MLP's BlockImportance, from 64-bit random numbers made of LibTorch's (seeded) generator.
  torch::Tensor drawByImportance() {
    auto bits = torch::randint(0, int64_t(1) << 31, {m, batch, 2}, torch::kLong).contiguous();
    const int64_t* r = bits.data_ptr<int64_t>();
    auto slot = torch::empty({m, batch}, torch::kLong);
    isWeight = torch::empty({m, batch}, torch::kFloat);
    int64_t* sl = slot.data_ptr<int64_t>();
    float* w = isWeight.data_ptr<float>();
    for (int64_t q = 0; q < m; ++q)
      for (int64_t k = 0; k < batch; ++k) {
        const int64_t i = q * batch + k;
        const uint64_t u = (uint64_t(r[2 * i]) << 33) ^ (uint64_t(r[2 * i + 1]) << 2);
        sl[i] = int64_t(importance[size_t(q)].draw(u, &w[i]));
      }
    isSlot = slot;
    return slot;
  }

  // The step's squared errors (m, B) of the last draw (blocks blk), without weights: each block's running error
  // for the next draws.
  void observe(const torch::Tensor& blk, const torch::Tensor& squaredError) {
    if (importance.empty()) return;
    auto e = squaredError.detach().to(torch::kCPU, torch::kFloat).contiguous();
    auto b = blk.to(torch::kCPU).contiguous();
    const float* ev = e.data_ptr<float>();
    const int64_t* bv = b.data_ptr<int64_t>();
    const int64_t* slot = isSlot.data_ptr<int64_t>();
    const float* lw = weights.defined() ? weights.data_ptr<float>() : nullptr;
    for (int64_t q = 0; q < m; ++q) {
      for (int64_t k = 0; k < batch; ++k) {
        const int64_t i = q * batch + k;
        importance[size_t(q)].observe(size_t(slot[i]), (lw ? lw[bv[i]] : 1.0f) * ev[i]);
      }
      importance[size_t(q)].endStep();
    }
  }
};

// The scale's weighted squared error (the training loss's weights) over an even spread of its blocks, about 2^20
// voxels, by the decoder's kernel: what the rate-aware codebook choice compares. Deterministic, one thread, the
// same on every MPI rank (each holds the whole training set).
double spreadLoss(const TrainingSet& set, const MlpShape& shape, const ScaleModel& s) {
  const int64_t nb = set.blockCount(), vpb = set.voxelsPerBlock();
  const int64_t stride = std::max<int64_t>(1, (nb * vpb + (int64_t(1) << 20) - 1) >> 20);
  const int dims[3] = {set.blockDims[0], set.blockDims[1], set.blockDims[2]};
  std::vector<float> out(static_cast<size_t>(vpb), 0.0f);
  double sum = 0;
  for (int64_t b = 0; b < nb; b += stride) {
    const auto& v = set.validDims[size_t(b)];
    const int valid[3] = {v[0], v[1], v[2]};
    kernels::evalSirenBlock(mlpView(shape, s, uint32_t(set.mlpOfBlock[size_t(b)])),
                            s.latents.data() + set.codeOf(b) * shape.latentsPerBlock(), dims, valid, out.data(),
                            set.blockTime.empty() ? 0.0f : set.blockTime[size_t(b)]);
    double e = 0;
    for (int z = 0; z < valid[2]; ++z)
      for (int y = 0; y < valid[1]; ++y)
        for (int x = 0; x < valid[0]; ++x) {
          const int64_t i = x + int64_t(dims[0]) * (y + int64_t(dims[1]) * z);
          const double d = double(out[size_t(i)]) - set.value(b * vpb + i);
          e += d * d;
        }
    sum += (set.lossWeight.empty() ? 1.0 : double(set.lossWeight[size_t(b)])) * e;
  }
  return sum;
}

// The quantization of a trained scale, for both trainers; the weight codebooks sized by rate when asked.
QuantizationOptions quantizationFor(const DeepCompressionOptions& d, const TrainingSet& set, const MlpShape& shape,
                                    const ScaleModel& trained) {
  QuantizationOptions q;
  q.bits = d.bits;
  q.local = d.local;
  q.latentBits = d.latentBits;
  q.valuesPerEntry = d.valuesPerEntry;
  q.biasBits = d.biasBits;
  if (d.codebookRateSlope > 0)
    q.groupEntries = rateAwareEntries(
        trained, shape, q, [&](const ScaleModel& m) { return spreadLoss(set, shape, m); }, d.codebookRateSlope,
        d.codebookRateGroups);
  return q;
}

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
  int64_t most = *std::max_element(voxelsPerMlp.begin(), voxelsPerMlp.end());
  if (o.epochOfEqualShare) {
    const int64_t n = set.blockCount(), k = set.mlpCount;
    int64_t all = 0;
    for (int64_t v : voxelsPerMlp) all += v;
    most = (((n + k - 1) / k) * all + n - 1) / n;
  }
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

// The schedule of one scale's training: optimizer steps, the pruning rounds (whole epochs, so that each MLP's
// loss of the round before is a full epoch's) and the fine-tuning of the shared values after quantization.
struct Schedule {
  int64_t stepsPerEpoch = 1, trainSteps = 0, fineTuneSteps = 0;
  int64_t quantAwareStep = 0;  ///< first step of quantization-aware training (trainSteps: none)
  std::vector<int64_t> pruneStep;

  Schedule(const TrainingSet& set, const TrainOptions& o) {
    stepsPerEpoch = stepsPerEpochOf(set, o);
    trainSteps = stepsPerEpoch * o.epochs;
    const DeepCompressionOptions& d = o.deep;
    if (d.pruneAt.size() != d.pruneSparsity.size()) throw Error("pruning: one sparsity per round expected");
    for (double at : d.pruneAt)
      pruneStep.push_back(std::clamp<int64_t>(std::llround(at * o.epochs), 0, o.epochs) * stepsPerEpoch);
    fineTuneSteps = d.bits > 0 ? stepsPerEpoch * std::max(0, d.fineTuneEpochs) : 0;
    const int64_t quantAwareEpochs =
        d.bits > 0 ? std::clamp<int64_t>(std::llround(d.quantAwareFraction * o.epochs), 0, o.epochs) : 0;
    quantAwareStep = trainSteps - quantAwareEpochs * stepsPerEpoch;
  }
  int64_t allSteps() const { return trainSteps + fineTuneSteps; }
  float lr(const TrainOptions& o, int64_t step) const {
    return step >= trainSteps ? o.deep.fineTuneLr : float(learningRateAt(o, double(step) / double(std::max<int64_t>(1, trainSteps))));
  }
};

// Steps [begin, end) by `run`; from the quantization-aware step on one epoch at a time, each after `refit` set
// the forward codebooks to those of the parameters so far. False when `run` was stopped.
bool runQuantAware(const Schedule& sc, int64_t begin, int64_t end, const std::function<bool(int64_t, int64_t)>& run,
                   const std::function<void()>& refit) {
  while (begin < end) {
    const bool aware = begin >= sc.quantAwareStep;
    const int64_t to = std::min(end, aware ? begin + sc.stepsPerEpoch : sc.quantAwareStep);
    if (aware) refit();
    if (!run(begin, to)) return false;
    begin = to;
  }
  return true;
}

// The codebooks a scale's parameters so far would get (k-means, sizes by group: refitted every epoch, so the
// rate-aware choice is left to the quantization after training), for the forward pass of quantization-aware training.
kernels::ForwardCodebooks forwardCodebooksOf(ScaleModel s, const MlpShape& shape, const DeepCompressionOptions& d) {
  QuantizationOptions q;
  q.bits = d.bits;
  q.biasBits = d.biasBits;
  q.valuesPerEntry = d.valuesPerEntry;
  s.latents.clear();
  quantizeScale(s, shape, q);
  return {s.codebooks.weights, s.codebooks.biases};
}

void reportEpoch(const TrainOptions& o, const Schedule& sc, int64_t done, double loss, const Progress& progress) {
  std::ostringstream msg;
  if (done <= sc.trainSteps)
    msg << o.label << ": epoch " << done / sc.stepsPerEpoch << "/" << o.epochs << " loss " << loss;
  else
    msg << o.label << ": fine-tuning shared values, epoch " << (done - sc.trainSteps) / sc.stepsPerEpoch << "/"
        << o.deep.fineTuneEpochs << " loss " << loss;
  progress.report(o.progressBegin + (o.progressEnd - o.progressBegin) * double(done) / double(std::max<int64_t>(1, sc.allSteps())),
                  msg.str());
}

ScaleModel parametersOf(const kernels::FusedTrainResult& r, int mlpCount) {
  ScaleModel s;
  s.mlpCount = mlpCount;
  s.weights = r.weights;
  s.biases = r.biases;
  return s;
}

// This rank's part of a scale split over ranks (TrainOptions::comm): a contiguous share of the MLPs (each does
// the same steps, so equal counts are equal work) and their blocks, renumbered from 0; and the gathers that give
// every rank the whole scale back. With one rank it is the scale itself.
class RankSlice {
public:
  RankSlice(const TrainingSet& set, const Comm& comm) : comm_(comm), global_(set) {
    const int R = comm.size();
    blocksOf_.resize(size_t(R));
    std::vector<Share> shares;
    for (int r = 0; r < R; ++r) shares.push_back(shareOf(set.mlpCount, r, R));
    mlps_ = shares[size_t(comm.rank())];
    for (int64_t b = 0; b < set.blockCount(); ++b) {
      const int q = set.mlpOfBlock[size_t(b)];
      int r = 0;
      while (q >= shares[size_t(r)].first + shares[size_t(r)].count) ++r;
      blocksOf_[size_t(r)].push_back(b);
    }
    // Shared codes go with their blocks' MLP (one rank): each rank's codes in increasing order.
    codesOf_.resize(size_t(R));
    for (int r = 0; r < R; ++r) {
      for (int64_t b : blocksOf_[size_t(r)]) codesOf_[size_t(r)].push_back(set.codeOf(b));
      auto& c = codesOf_[size_t(r)];
      std::sort(c.begin(), c.end());
      c.erase(std::unique(c.begin(), c.end()), c.end());
    }
    if (!comm.parallel()) return;
    const int64_t V = set.voxelsPerBlock();
    local_.blockDims = set.blockDims;
    local_.mlpCount = int(mlps_.count);
    for (int64_t b : blocksOf_[size_t(comm.rank())]) {
      local_.validDims.push_back(set.validDims[size_t(b)]);
      if (set.half())
        local_.halfValues.insert(local_.halfValues.end(), set.halfValues.begin() + b * V,
                                 set.halfValues.begin() + (b + 1) * V);
      else
        local_.values.insert(local_.values.end(), set.values.begin() + b * V, set.values.begin() + (b + 1) * V);
      local_.mlpOfBlock.push_back(set.mlpOfBlock[size_t(b)] - int(mlps_.first));
      if (!set.lossWeight.empty()) local_.lossWeight.push_back(set.lossWeight[size_t(b)]);
      if (!set.codeOfBlock.empty()) {
        const auto& mineCodes = codesOf_[size_t(comm.rank())];
        const int64_t c = set.codeOfBlock[size_t(b)];
        local_.codeOfBlock.push_back(int(std::lower_bound(mineCodes.begin(), mineCodes.end(), c) - mineCodes.begin()));
        local_.blockTime.push_back(set.blockTime[size_t(b)]);
      }
    }
    local_.codeCount = int64_t(codesOf_[size_t(comm.rank())].size());
  }

  const TrainingSet& set() const { return comm_.parallel() ? local_ : global_; }
  int firstMlp() const { return int(mlps_.first); }

  /// Per layer (mlp, ...) in MLP order: the ranks' slices concatenated.
  std::vector<std::vector<float>> gatherLayers(std::vector<std::vector<float>> mine) const {
    if (comm_.parallel())
      for (auto& layer : mine) layer = comm_.gather(layer);
    return mine;
  }
  /// Latent codes (perBlock values per code: MlpShape::latentsPerBlock) back in the scale's code order.
  std::vector<float> gatherLatents(std::vector<float> mine, int perBlock) const {
    if (!comm_.parallel()) return mine;
    const std::vector<float> all = comm_.gather(mine);
    std::vector<float> out(size_t(global_.codes()) * size_t(perBlock));
    size_t k = 0;
    for (const auto& codes : codesOf_)
      for (int64_t c : codes)
        for (int i = 0; i < perBlock; ++i) out[size_t(c) * size_t(perBlock) + size_t(i)] = all[k++];
    return out;
  }
  std::vector<double> gatherMlpLoss(const std::vector<double>& mine) const {
    return comm_.parallel() ? comm_.gather(mine) : mine;
  }
  /// This rank's slice of per-layer vectors in the model layout (mlp, ...).
  template <class T>
  std::vector<std::vector<T>> localLayers(const std::vector<std::vector<T>>& all) const {
    if (!comm_.parallel()) return all;
    std::vector<std::vector<T>> mine;
    for (const auto& layer : all) {
      const size_t per = layer.size() / size_t(std::max(1, global_.mlpCount));
      mine.emplace_back(layer.begin() + std::ptrdiff_t(size_t(mlps_.first) * per),
                        layer.begin() + std::ptrdiff_t(size_t(mlps_.first + mlps_.count) * per));
    }
    return mine;
  }
  std::vector<int32_t> localLatentIds(const std::vector<int32_t>& all, int perBlock) const {
    if (!comm_.parallel() || all.empty()) return all;
    std::vector<int32_t> mine;
    for (int64_t c : codesOf_[size_t(comm_.rank())])
      mine.insert(mine.end(), all.begin() + c * perBlock, all.begin() + (c + 1) * perBlock);
    return mine;
  }

private:
  const Comm& comm_;
  const TrainingSet& global_;
  Share mlps_;
  std::vector<std::vector<int64_t>> blocksOf_;  // per rank, global block ids in order
  std::vector<std::vector<int64_t>> codesOf_;   // per rank, global latent code ids in order (= blocks without sharing)
  TrainingSet local_;
};

// The fused CPU trainer (kernels/SirenTrainCpu.h): same sampling distribution, loss, initialisation and Adam as
// the LibTorch path below, its own random streams (one per MLP).
TrainStats trainFused(const TrainingSet& set, const MlpShape& shape, const TrainOptions& o, ScaleModel& out,
                      const Progress& progress) {
  Timer timer;
  TrainStats stats;
  stats.trainer = "fused";
  const Schedule sched(set, o);  // of the whole scale: every rank runs the same steps
  const DeepCompressionOptions& d = o.deep;
  const Comm& comm = o.comm ? *o.comm : aloneComm();
  const RankSlice slice(set, comm);
  const TrainingSet& mine = slice.set();
  std::vector<int> valid;
  for (const auto& v : mine.validDims) valid.insert(valid.end(), {v[0], v[1], v[2]});
  kernels::FusedTrainProblem pr;
  for (int a = 0; a < 3; ++a) pr.blockDims[a] = mine.blockDims[size_t(a)];
  pr.blockCount = mine.blockCount();
  pr.validDims = valid.data();
  pr.values = mine.half() ? nullptr : mine.values.data();
  pr.halfValues = mine.half() ? mine.halfValues.data() : nullptr;
  pr.mlpOfBlock = mine.mlpOfBlock.data();
  pr.lossWeight = mine.lossWeight.empty() ? nullptr : mine.lossWeight.data();
  pr.importance = o.importance;
  pr.mlpCount = mine.mlpCount;
  pr.mlpIdOffset = slice.firstMlp();
  pr.lossMlpCount = set.mlpCount;
  if (comm.parallel()) pr.reduceShared = [&](int64_t* g, size_t n) { comm.sum(g, n); };
  pr.latentDim = shape.latentDim;
  pr.latentGrid = shape.latentGrid;
  if (!mine.codeOfBlock.empty()) {
    pr.codeOfBlock = mine.codeOfBlock.data();
    pr.codeCount = mine.codeCount;
    pr.timeOfBlock = mine.blockTime.data();
  }
  pr.hidden = shape.hidden;
  pr.sineLayers = shape.sineLayers;
  pr.omega0 = shape.omega0;
  pr.steps = sched.trainSteps;
  pr.batchPerMlp = o.batchPerMlp;
  pr.weightDecay = o.weightDecay;
  pr.seed = o.seed;
  pr.threads = o.threads;
  pr.learningRate = [&](int64_t step) { return sched.lr(o, step); };
  pr.stepsPerRound = sched.stepsPerEpoch;
  pr.onRound = [&](int64_t done, double roundLoss) {
    stats.finalLoss = comm.sum(roundLoss) / double(sched.stepsPerEpoch);
    if (done == sched.trainSteps + sched.stepsPerEpoch) stats.lossBeforeFineTune = stats.finalLoss;
    reportEpoch(o, sched, done, stats.finalLoss, progress);
    return !progress.isCancelled();
  };
  try {
    kernels::FusedTrainer tr(pr);
    PruneMasks masks = keepAll(shape, set.mlpCount);
    // The whole scale's parameters on every rank (pruning ranks them all together).
    auto gathered = [&](kernels::FusedTrainResult r) {
      r.weights = slice.gatherLayers(std::move(r.weights));
      r.biases = slice.gatherLayers(std::move(r.biases));
      return r;
    };
    auto run = [&](int64_t a, int64_t b) { return tr.run(a, b); };
    auto refit = [&] {
      ScaleModel cur = parametersOf(gathered(tr.result()), set.mlpCount);
      cur.precision = out.precision;
      tr.setForwardCodebooks(forwardCodebooksOf(std::move(cur), shape, d));
    };
    int64_t begin = 0;
    for (size_t i = 0; i < sched.pruneStep.size(); ++i) {
      const int64_t at = std::max(begin, sched.pruneStep[i]);
      if (!runQuantAware(sched, begin, at, run, refit)) break;
      masks = blockGuidedPrune(parametersOf(gathered(tr.result()), set.mlpCount), shape,
                               slice.gatherMlpLoss(tr.mlpLoss()), d.pruneSparsity[i], d.lambda, masks);
      tr.setMasks(slice.localLayers(masks.weights), slice.localLayers(masks.biases));
      begin = at;
    }
    progress.checkCancel();
    runQuantAware(sched, begin, sched.trainSteps, run, refit);
    progress.checkCancel();
    tr.setForwardCodebooks({});  // the fine-tuning below trains the codebooks themselves
    kernels::FusedTrainResult r = gathered(tr.result());
    stats.steps = r.stepsDone;
    out.weights = std::move(r.weights);
    out.biases = std::move(r.biases);
    out.latents = slice.gatherLatents(std::move(r.latents), shape.latentsPerBlock());
    stats.sparsity = candidateSparsity(masks, shape);
    if (d.bits > 0) {
      // The codebooks of the whole scale, computed alike on every rank; each fine-tunes through its own MLPs
      // and the gradient of the shared values is summed over the ranks every step.
      const SharedTable table = quantizeScale(out, shape, quantizationFor(d, set, shape, out));
      if (sched.fineTuneSteps > 0) {
        tr.shareParameters({table.values, slice.localLayers(table.weightId), slice.localLayers(table.biasId),
                            slice.localLatentIds(table.latentId, shape.latentsPerBlock())});
        tr.run(sched.trainSteps, sched.allSteps());
        progress.checkCancel();
        applySharedValues(out, shape, table, tr.sharedValues());
        if (table.latentId.empty()) out.latents = slice.gatherLatents(tr.result().latents, shape.latentsPerBlock());
        stats.lossAfterFineTune = stats.finalLoss;
        stats.steps = sched.allSteps();
      }
    }
  } catch (const std::invalid_argument& e) {
    throw Error(e.what());
  }
  stats.samples = stats.steps * set.mlpCount * o.batchPerMlp;
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

namespace {

// The LibTorch trainer (the reference, and the CUDA path), with the same deep-compression stages as the fused one:
// masks multiplied in after every step while pruning; after quantization the layers are gathered from one shared
// table (plus a zero slot for pruned parameters) so autograd sums each shared value's gradient over its uses.
class TorchTrainer {
public:
  TorchTrainer(const TrainingSet& set, const MlpShape& shape, const TrainOptions& o, torch::Device dev)
      : shape_(shape), o_(o), dev_(dev), m_(set.mlpCount), net_(shape, set.mlpCount, dev), sampler_(set, o.batchPerMlp, o.importance),
        sched_(set, o) {
    // A latent grid starts as one code per block, copied to each corner (as the fused trainer).
    const int64_t codes = set.codes();
    latents_ = torch::randn({codes, 1, int64_t(shape.latentDim)})
                   .expand({codes, int64_t(shape.latentCorners()), int64_t(shape.latentDim)})
                   .reshape({codes, int64_t(shape.latentsPerBlock())})
                   .to(dev)
                   .set_requires_grad(true);
    if (!set.codeOfBlock.empty()) {
      codeOf_ = torch::tensor(std::vector<int64_t>(set.codeOfBlock.begin(), set.codeOfBlock.end()), torch::kLong).to(dev);
      timeOf_ = torch::tensor(set.blockTime).to(dev);
    }
    std::vector<torch::Tensor> params = net_.W;
    params.insert(params.end(), net_.b.begin(), net_.b.end());
    params.push_back(latents_);
    adam_ = std::make_unique<torch::optim::Adam>(params, adamOptions(o.learningRate));
    mlpLoss_.assign(size_t(m_), 0.0);
  }

  const Schedule& schedule() const { return sched_; }
  const std::vector<double>& mlpLoss() const { return mlpLoss_; }

  // Steps [begin, end); reports once per epoch. Returns the last epoch's loss.
  double run(int64_t begin, int64_t end, const Progress& progress) {
    double epochLoss = 0, last = 0;
    torch::Tensor perMlp = torch::zeros({m_}, torch::kDouble);
    for (int64_t step = begin; step < end; ++step) {
      progress.checkCancel();
      for (auto& g : adam_->param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(sched_.lr(o_, step));
      if (shared_.defined()) gatherShared();
      auto [blk, coords, target] = sampler_.draw();
      auto x = coords.to(dev_), b = blk.to(dev_);
      std::vector<torch::Tensor> in{x, codesAt(b, x)};
      if (timeOf_.defined()) in.push_back(timeOf_.index_select(0, b).view({m_, o_.batchPerMlp, 1}));
      auto y = net_.forward(torch::cat(in, 2)).squeeze(2);
      auto w = sampler_.sampleWeights(blk);
      auto err = (y - target.to(dev_)).square();
      sampler_.observe(blk, err);
      if (w.defined()) err = err * w.to(dev_);
      auto loss = err.mean();
      adam_->zero_grad();
      loss.backward();
      adam_->step();
      if (!shared_.defined()) applyMasks();
      perMlp += err.detach().mean(1).to(torch::kCPU, torch::kDouble) / double(m_);
      epochLoss += loss.item<double>();
      if ((step + 1) % sched_.stepsPerEpoch == 0) {
        last = epochLoss / double(sched_.stepsPerEpoch);
        epochLoss = 0;
        for (int q = 0; q < m_; ++q) mlpLoss_[size_t(q)] = perMlp[q].item<double>();
        perMlp.zero_();
        reportEpoch(o_, sched_, step + 1, last, progress);
      }
    }
    return last;
  }

  void setMasks(const PruneMasks& masks) {
    wMask_.clear();
    bMask_.clear();
    for (int l = 0; l < shape_.layerCount(); ++l) {
      wMask_.push_back(toTensor(masks.weights[size_t(l)]).view(net_.W[size_t(l)].sizes()));
      bMask_.push_back(toTensor(masks.biases[size_t(l)]).view(net_.b[size_t(l)].sizes()));
    }
    applyMasks();
  }

  void shareParameters(const SharedTable& t) {
    const int64_t zero = int64_t(t.values.size());  // the extra slot that pruned parameters read: always 0
    auto ids = [&](const std::vector<int32_t>& v) {
      std::vector<int64_t> x;
      for (int32_t i : v) x.push_back(i < 0 ? zero : i);
      return torch::tensor(x, torch::kLong).to(dev_);
    };
    wId_.clear();
    bId_.clear();
    for (int l = 0; l < shape_.layerCount(); ++l) {
      wId_.push_back(ids(t.weightId[size_t(l)]));
      bId_.push_back(ids(t.biasId[size_t(l)]));
    }
    if (!t.latentId.empty()) latentId_ = ids(t.latentId);
    shared_ = torch::tensor(t.values).to(dev_).set_requires_grad(true);
    std::vector<torch::Tensor> params{shared_};
    if (!latentId_.defined()) params.push_back(latents_);
    adam_ = std::make_unique<torch::optim::Adam>(params, adamOptions(o_.deep.fineTuneLr));
  }

  std::vector<float> sharedValues() const { return toVector(shared_); }

  void setForwardCodebooks(const kernels::ForwardCodebooks& books) {
    auto tensors = [&](const std::vector<std::vector<float>>& v) {
      std::vector<torch::Tensor> t;
      for (const auto& book : v) t.push_back(book.empty() ? torch::Tensor() : torch::tensor(book).to(dev_));
      return t;
    };
    net_.bookW = tensors(books.weights);
    net_.bookB = tensors(books.biases);
  }

  void copyTo(ScaleModel& out) {
    torch::NoGradGuard g;
    if (shared_.defined()) gatherShared();
    copyOut(net_, latents_, shape_, out);
  }

private:
  torch::optim::AdamOptions adamOptions(double lr) const {
    return torch::optim::AdamOptions(lr).betas({0.9, 0.999}).weight_decay(o_.weightDecay);
  }
  torch::Tensor toTensor(const std::vector<uint8_t>& v) const {
    return torch::tensor(std::vector<float>(v.begin(), v.end())).to(dev_);
  }
  static std::vector<float> toVector(const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  // Each sample's latent code: its block's (or the one it shares), or (a latent grid) its corner codes weighted as
  // kernels/latentCornerWeights does at the sample's local coordinates x (m, batch, 3).
  torch::Tensor codesAt(const torch::Tensor& blk, const torch::Tensor& x) const {
    const int64_t L = shape_.latentDim, corners = shape_.latentCorners();
    auto rows = latents_.index_select(0, codeOf_.defined() ? codeOf_.index_select(0, blk) : blk)
                    .view({m_, o_.batchPerMlp, corners, L});
    if (corners == 1) return rows.squeeze(2);
    const auto hi = (x + 1) * 0.5, lo = 1 - hi;
    std::vector<torch::Tensor> w;
    for (int c = 0; c < corners; ++c) {
      auto f = [&](int a) { return ((c >> a) & 1 ? hi : lo).select(2, a); };
      w.push_back(f(0) * f(1) * f(2));
    }
    return (torch::stack(w, 2).unsqueeze(3) * rows).sum(2);
  }
  void applyMasks() {
    torch::NoGradGuard g;
    for (size_t l = 0; l < wMask_.size(); ++l) {
      net_.W[l].mul_(wMask_[l]);
      net_.b[l].mul_(bMask_[l]);
    }
  }
  // Rebuilds every layer (and the quantized latents) from the shared table: differentiable gathers.
  void gatherShared() {
    auto table = torch::cat({shared_, torch::zeros({1}, shared_.options())});
    for (int l = 0; l < shape_.layerCount(); ++l) {
      net_.W[size_t(l)] = table.index_select(0, wId_[size_t(l)]).view(net_.W[size_t(l)].sizes());
      net_.b[size_t(l)] = table.index_select(0, bId_[size_t(l)]).view(net_.b[size_t(l)].sizes());
    }
    if (latentId_.defined()) latents_ = table.index_select(0, latentId_).view(latents_.sizes());
  }

  MlpShape shape_;
  const TrainOptions& o_;
  torch::Device dev_;
  int64_t m_;
  BatchedSiren net_;
  torch::Tensor latents_;
  torch::Tensor codeOf_, timeOf_;  // shared codes: each block's code and time input (undefined: none)
  Sampler sampler_;
  Schedule sched_;
  std::unique_ptr<torch::optim::Adam> adam_;
  std::vector<torch::Tensor> wMask_, bMask_, wId_, bId_;
  torch::Tensor shared_, latentId_;
  std::vector<double> mlpLoss_;
};

TrainStats trainLibTorch(const TrainingSet& set, const MlpShape& shape, const TrainOptions& o, ScaleModel& out,
                         const Progress& progress, torch::Device dev) {
  Timer timer;
  TrainStats stats;
  stats.trainer = "libtorch";
  const DeepCompressionOptions& d = o.deep;
  TorchTrainer tr(set, shape, o, dev);
  const Schedule& sched = tr.schedule();
  PruneMasks masks = keepAll(shape, set.mlpCount);
  auto run = [&](int64_t a, int64_t b) {
    if (b > a) stats.finalLoss = tr.run(a, b, progress);
    return true;  // a cancel throws
  };
  auto refit = [&] {
    ScaleModel cur;
    tr.copyTo(cur);
    cur.mlpCount = set.mlpCount;
    cur.precision = out.precision;
    tr.setForwardCodebooks(forwardCodebooksOf(std::move(cur), shape, d));
  };
  int64_t begin = 0;
  for (size_t i = 0; i < sched.pruneStep.size(); ++i) {
    const int64_t at = std::max(begin, sched.pruneStep[i]);
    runQuantAware(sched, begin, at, run, refit);
    ScaleModel cur;
    tr.copyTo(cur);
    cur.mlpCount = set.mlpCount;
    masks = blockGuidedPrune(cur, shape, tr.mlpLoss(), d.pruneSparsity[i], d.lambda, masks);
    tr.setMasks(masks);
    begin = at;
  }
  runQuantAware(sched, begin, sched.trainSteps, run, refit);
  tr.setForwardCodebooks({});  // the fine-tuning below trains the codebooks themselves
  tr.copyTo(out);
  stats.sparsity = candidateSparsity(masks, shape);
  stats.steps = sched.trainSteps;
  if (d.bits > 0) {
    const SharedTable table = quantizeScale(out, shape, quantizationFor(d, set, shape, out));
    if (sched.fineTuneSteps > 0) {
      tr.shareParameters(table);
      stats.lossBeforeFineTune = tr.run(sched.trainSteps, sched.trainSteps + sched.stepsPerEpoch, progress);
      stats.finalLoss = stats.lossAfterFineTune =
          sched.fineTuneSteps > sched.stepsPerEpoch ? tr.run(sched.trainSteps + sched.stepsPerEpoch, sched.allSteps(), progress)
                                                    : stats.lossBeforeFineTune;
      ScaleModel tuned;
      tr.copyTo(tuned);
      applySharedValues(out, shape, table, tr.sharedValues());
      if (table.latentId.empty()) out.latents = tuned.latents;
      stats.steps = sched.allSteps();
    }
  }
  stats.samples = stats.steps * set.mlpCount * o.batchPerMlp;
  stats.seconds = timer.seconds();
  return stats;
}

}  // namespace

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
  if (!set.codeOfBlock.empty()) {
    if (set.codeOfBlock.size() != size_t(nb) || set.blockTime.size() != size_t(nb) || shape.timeInputs() != 1)
      throw Error("shared codes: one code and one time per block expected");
  }
  if (useFusedTrainer(shape, o)) return trainFused(set, shape, o, out, progress);
  if (o.comm && o.comm->parallel())
    throw Error("an encode split over MPI ranks needs the fused CPU trainer (--trainer fused, --device cpu)");
  return trainLibTorch(set, shape, o, out, progress, dev);
}

}  // namespace ecnr
