#include "SirenTrainCpu.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "BlockImportance.h"
#include "LatentGrid.h"
#include "SirenIsa.h"
#include "ecnr/Comm.h"
#include "ecnr/Half.h"
#include "ecnr/Quantization.h"

namespace ecnr {
namespace kernels {

namespace {

constexpr float kInvPi = 0.318309886183790672f;
constexpr int kSubBatch = 256;  // samples per kernel call: activations stay in L2

/// Parameters of one MLP as one flat array, layer widths padded to a multiple of 8 (padding weights stay 0:
/// their gradients are 0, so Adam leaves them at 0).
struct Layout {
  int D = 0, H = 0, Hp = 0, S = 0;
  std::vector<int> fanIn, fanOut;  // padded
  std::vector<size_t> wOff, bOff;
  size_t total = 0;

  Layout(int latentDim, int hidden, int sineLayers, int timeInputs = 0)
      : D(3 + latentDim + timeInputs), H(hidden), Hp((hidden + 7) / 8 * 8), S(sineLayers) {
    for (int l = 0; l <= S; ++l) {
      fanIn.push_back(l == 0 ? D : Hp);
      fanOut.push_back(l == S ? 1 : Hp);
      wOff.push_back(total);
      total += size_t(fanIn.back()) * size_t(fanOut.back());
      bOff.push_back(total);
      total += size_t(fanOut.back());
    }
  }
  int realIn(int l) const { return l == 0 ? D : H; }
  int realOut(int l) const { return l == S ? 1 : H; }
};

struct Scratch {
  std::vector<float> fw, wt, grad, rounded;
  std::vector<float> x, target, scale, dLatent, train, latGrad, cornerW;
  std::vector<int> local;
};

/// Forward (sine layers scaled by omega0 / pi) and transposed copies of the parameters, and the kernel's view.
void prepare(const Layout& lay, const float* P, float omega0, Scratch& sc, TrainNet& net) {
  sc.fw.resize(lay.total);
  sc.wt.resize(lay.total);
  sc.grad.assign(lay.total, 0.0f);
  net.inDim = lay.D;
  net.hidden = lay.Hp;
  net.sineLayers = lay.S;
  net.omega0 = omega0;
  for (int l = 0; l <= lay.S; ++l) {
    const int fi = lay.fanIn[size_t(l)], fo = lay.fanOut[size_t(l)];
    const size_t wo = lay.wOff[size_t(l)], bo = lay.bOff[size_t(l)];
    const float s = l < lay.S ? omega0 * kInvPi : 1.0f;
    for (int i = 0; i < fi; ++i)
      for (int j = 0; j < fo; ++j) {
        const float w = P[wo + size_t(i * fo + j)];
        sc.fw[wo + size_t(i * fo + j)] = s * w;
        sc.wt[wo + size_t(j * fi + i)] = w;
      }
    for (int j = 0; j < fo; ++j) sc.fw[bo + size_t(j)] = s * P[bo + size_t(j)];
    net.w[l] = sc.fw.data() + wo;
    net.b[l] = sc.fw.data() + bo;
    net.wt[l] = sc.wt.data() + wo;
    net.gw[l] = sc.grad.data() + wo;
    net.gb[l] = sc.grad.data() + bo;
  }
}

/// Runs the kernel on n samples already in sc.x / target / scale (stride np, padded); returns the loss.
double runBatch(const IsaKernels& k, const TrainNet& net, int np, Scratch& sc) {
  sc.train.resize(trainScratchFloats(net, np));
  return k.trainBatch(net, np, sc.x.data(), sc.target.data(), sc.scale.data(), sc.dLatent.data(), sc.train.data());
}

void sizeBatch(const Layout& lay, int np, Scratch& sc) {
  sc.x.resize(size_t(lay.D) * size_t(np));
  sc.target.resize(size_t(np));
  sc.scale.resize(size_t(np));
  sc.dLatent.resize(size_t(lay.D - 3) * size_t(np));
  sc.local.resize(size_t(np));
}

/// Copies sample 0 into the padding samples (finite inputs) and gives them no weight.
void padBatch(const Layout& lay, int n, int np, Scratch& sc) {
  for (int s = n; s < np; ++s) {
    for (int i = 0; i < lay.D; ++i) sc.x[size_t(i * np + s)] = sc.x[size_t(i * np)];
    sc.target[size_t(s)] = 0;
    sc.scale[size_t(s)] = 0;
  }
}

// torch.optim.Adam (betas 0.9 / 0.999, eps 1e-8, L2 weight decay added to the gradient), in float as torch does.
void adam(float* p, const float* g, float* m, float* v, size_t n, float lr, float wd, int64_t t) {
  const double bc1 = 1.0 - std::pow(0.9, double(t)), bc2 = 1.0 - std::pow(0.999, double(t));
  const float stepSize = float(double(lr) / bc1), bc2Sqrt = float(std::sqrt(bc2));
  for (size_t i = 0; i < n; ++i) {
    const float gi = g[i] + wd * p[i];
    m[i] = m[i] * 0.9f + gi * 0.1f;
    v[i] = v[i] * 0.999f + gi * gi * 0.001f;
    const float denom = std::sqrt(v[i]) / bc2Sqrt + 1e-8f;
    p[i] -= stepSize * (m[i] / denom);
  }
}

// splitmix64: a small, fast generator; one independent stream per MLP.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }
  float normal() {
    const float u1 = std::max(uniform(), 1e-7f), u2 = uniform();
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
  }
};

struct MlpState {
  std::vector<int64_t> blocks;  // global block ids
  std::vector<int64_t> codes;   // global latent code ids, in order of first use
  std::vector<int> codeOf;      // per block: its code's position in `codes`
  std::vector<float> p, m, v;   // parameters (padded layout) and Adam moments
  std::vector<float> lat, latM, latV;
  std::vector<uint8_t> mask;    // padded layout, 0 = pruned; empty = nothing pruned
  std::vector<int32_t> pid;     // shared mode: id of each parameter in the shared table (-1: stays 0)
  std::vector<int32_t> lid;     // shared mode: id of each latent value (empty: latents stay free)
  std::vector<float> grad, latGrad;  // shared mode: this step's gradients, summed after the step
  BlockImportance importance;        // used when FusedTrainProblem::importance > 0 and the MLP has several blocks
  Rng rng{0};
};

}  // namespace

bool fusedTrainSupported(int hidden, int sineLayers, int latentDim) {
  return hidden >= 1 && hidden <= 256 && sineLayers >= 1 && sineLayers <= kMaxSineLayers && latentDim >= 1;
}

double fusedLossGradients(const std::vector<std::vector<float>>& W, const std::vector<std::vector<float>>& b,
                          int latentDim, int hidden, int sineLayers, float omega0, const std::vector<float>& inputs,
                          const std::vector<float>& targets, const std::vector<float>& scale,
                          std::vector<std::vector<float>>& gradW, std::vector<std::vector<float>>& gradB,
                          std::vector<float>& gradLatent) {
  const Layout lay(latentDim, hidden, sineLayers);
  const IsaKernels& k = activeKernels();
  std::vector<float> P(lay.total, 0.0f);
  for (int l = 0; l <= lay.S; ++l)
    for (int i = 0; i < lay.realIn(l); ++i) {
      for (int j = 0; j < lay.realOut(l); ++j)
        P[lay.wOff[size_t(l)] + size_t(i * lay.fanOut[size_t(l)] + j)] = W[size_t(l)][size_t(i * lay.realOut(l) + j)];
      if (i == 0)
        for (int j = 0; j < lay.realOut(l); ++j) P[lay.bOff[size_t(l)] + size_t(j)] = b[size_t(l)][size_t(j)];
    }
  Scratch sc;
  TrainNet net;
  prepare(lay, P.data(), omega0, sc, net);
  const int total = int(targets.size());
  gradLatent.assign(size_t(total) * size_t(latentDim), 0.0f);
  double loss = 0;
  for (int s0 = 0; s0 < total; s0 += kSubBatch) {
    const int n = std::min(kSubBatch, total - s0), np = (n + k.lanes - 1) / k.lanes * k.lanes;
    sizeBatch(lay, np, sc);
    for (int s = 0; s < n; ++s) {
      for (int i = 0; i < lay.D; ++i) sc.x[size_t(i * np + s)] = inputs[size_t((s0 + s) * lay.D + i)];
      sc.target[size_t(s)] = targets[size_t(s0 + s)];
      sc.scale[size_t(s)] = scale[size_t(s0 + s)];
    }
    padBatch(lay, n, np, sc);
    loss += runBatch(k, net, np, sc);
    for (int s = 0; s < n; ++s)
      for (int q = 0; q < latentDim; ++q) gradLatent[size_t((s0 + s) * latentDim + q)] = sc.dLatent[size_t(q * np + s)];
  }
  gradW.assign(size_t(lay.S + 1), {});
  gradB.assign(size_t(lay.S + 1), {});
  for (int l = 0; l <= lay.S; ++l) {
    for (int i = 0; i < lay.realIn(l); ++i)
      for (int j = 0; j < lay.realOut(l); ++j)
        gradW[size_t(l)].push_back(sc.grad[lay.wOff[size_t(l)] + size_t(i * lay.fanOut[size_t(l)] + j)]);
    for (int j = 0; j < lay.realOut(l); ++j) gradB[size_t(l)].push_back(sc.grad[lay.bOff[size_t(l)] + size_t(j)]);
  }
  return loss;
}

struct FusedTrainer::Impl {
  FusedTrainProblem pr;
  Layout lay;
  const IsaKernels& k;
  int m, Ld;
  int corners, LB;  // latent codes per block (LatentGrid.h) and latent values per block
  int64_t codeCount;  // latent codes of the problem (blocks, or shared codes)
  int64_t V;
  float sampleScale;
  int threads;
  std::vector<MlpState> mlps;
  std::vector<Scratch> scratch;
  std::vector<double> mlpLoss;
  bool shared = false;
  std::vector<float> sv, svM, svV, svGrad;  // shared values, their Adam moments and gradient
  std::vector<int64_t> svFixed;             // the gradient's sum in fixed point (order-independent)
  int64_t sharedSteps = 0;
  bool sharedLatents = false;
  int64_t stepsDone = 0;
  ForwardCodebooks books;  // quantization-aware training: the codebooks of the forward pass (empty: float)

  explicit Impl(const FusedTrainProblem& p)
      : pr(p), lay(p.latentDim, p.hidden, p.sineLayers, p.timeOfBlock ? 1 : 0), k(activeKernels()), m(p.mlpCount),
        Ld(p.latentDim), corners(latentCorners(p.latentGrid)), LB(corners * p.latentDim),
        codeCount(p.codeOfBlock ? p.codeCount : p.blockCount),
        V(int64_t(p.blockDims[0]) * p.blockDims[1] * p.blockDims[2]),
        sampleScale(1.0f / (float(p.lossMlpCount > 0 ? p.lossMlpCount : p.mlpCount) * float(p.batchPerMlp))),
        // No more threads than MLPs: an idle thread would only spin at the end of each round.
        threads(std::max(1, std::min(p.mlpCount, p.threads > 0 ? p.threads : omp_get_max_threads()))) {
    initialise();
    scratch.resize(size_t(threads));
    mlpLoss.assign(size_t(m), 0.0);
  }

  size_t padded(int l, int i, int j) const { return lay.wOff[size_t(l)] + size_t(i * lay.fanOut[size_t(l)] + j); }

  // Per MLP: its blocks, SIREN initialisation (as the LibTorch trainer: first layer +-1/in, later layers
  // +-sqrt(6/in)/omega0, biases +-1/sqrt(in)), latents ~ N(0, 1), each from the MLP's own random stream.
  void initialise() {
    mlps.resize(size_t(m));
    for (int64_t bI = 0; bI < pr.blockCount; ++bI) mlps[size_t(pr.mlpOfBlock[bI])].blocks.push_back(bI);
    assignCodes();
    for (int q = 0; q < m; ++q) {
      MlpState& st = mlps[size_t(q)];
      if (st.blocks.empty()) throw std::invalid_argument("fused trainer: an MLP has no block");
      st.rng.s = pr.seed * 0x9e3779b97f4a7c15ull + uint64_t(pr.mlpIdOffset + q) * 0xd1b54a32d192ed03ull + 1;
      st.p.assign(lay.total, 0.0f);
      for (int l = 0; l <= lay.S; ++l) {
        const int in = lay.realIn(l);
        const float wb = l == 0 ? 1.0f / float(in) : std::sqrt(6.0f / float(in)) / pr.omega0;
        const float bb = 1.0f / std::sqrt(float(in));
        for (int i = 0; i < in; ++i)
          for (int j = 0; j < lay.realOut(l); ++j) st.p[padded(l, i, j)] = (2 * st.rng.uniform() - 1) * wb;
        for (int j = 0; j < lay.realOut(l); ++j) st.p[lay.bOff[size_t(l)] + size_t(j)] = (2 * st.rng.uniform() - 1) * bb;
      }
      st.m.assign(lay.total, 0.0f);
      st.v.assign(lay.total, 0.0f);
      // A latent grid starts as one code per block (each corner a copy): the grid then learns only the variation
      // that pays, from the network one code would have (random corners trained 1.3-2.4 dB worse on the Gray-Scott race).
      st.lat.resize(st.codes.size() * size_t(LB));
      for (size_t b = 0; b < st.codes.size(); ++b) {
        float* code = st.lat.data() + b * size_t(LB);
        for (int i = 0; i < Ld; ++i) code[i] = st.rng.normal();
        for (int c = 1; c < corners; ++c) std::copy(code, code + Ld, code + c * Ld);
      }
      st.latM.assign(st.lat.size(), 0.0f);
      st.latV.assign(st.lat.size(), 0.0f);
      if (pr.importance > 0) st.importance.reset(st.blocks.size(), std::min(pr.importance, 0.9f));
    }
  }

  // Each MLP's latent codes: its blocks' own, or the shared ones they use (each code belongs to one MLP).
  void assignCodes() {
    std::vector<int> owner(size_t(codeCount), -1), local(size_t(codeCount), 0);
    for (int q = 0; q < m; ++q) {
      MlpState& st = mlps[size_t(q)];
      for (int64_t b : st.blocks) {
        const int64_t c = pr.codeOfBlock ? pr.codeOfBlock[b] : b;
        if (c < 0 || c >= codeCount) throw std::invalid_argument("fused trainer: latent code id out of range");
        if (owner[size_t(c)] < 0) {
          owner[size_t(c)] = q;
          local[size_t(c)] = int(st.codes.size());
          st.codes.push_back(c);
        } else if (owner[size_t(c)] != q) {
          throw std::invalid_argument("fused trainer: blocks that share a latent code must share an MLP");
        }
        st.codeOf.push_back(local[size_t(c)]);
      }
    }
  }

  // The parameters with each weight and bias rounded to its layer's forward codebook (padding and zeros stay 0).
  const float* rounded(const std::vector<float>& p, Scratch& sc) const {
    sc.rounded = p;
    auto round = [&](const std::vector<float>& book, size_t i) {
      if (!book.empty() && p[i] != 0.0f) sc.rounded[i] = book[size_t(nearestIndex(book, p[i]))];
    };
    for (int l = 0; l <= lay.S; ++l) {
      const std::vector<float>& wb = books.weights[size_t(l)];
      const std::vector<float>& bb = books.biases[size_t(l)];
      for (int i = 0; i < lay.realIn(l); ++i)
        for (int j = 0; j < lay.realOut(l); ++j) round(wb, padded(l, i, j));
      for (int j = 0; j < lay.realOut(l); ++j) round(bb, lay.bOff[size_t(l)] + size_t(j));
    }
    return sc.rounded.data();
  }

  // Each sample's squared error (times its block's loss weight) from the kernel's output gradient 2 scale e.
  void observeErrors(MlpState& st, const TrainNet& net, int n, int np, const Scratch& sc) const {
    const float* dy = trainOutputGradient(net, np, sc.train.data());
    for (int s = 0; s < n; ++s) {
      const float scale = sc.scale[size_t(s)];
      if (scale <= 0) continue;
      const int li = sc.local[size_t(s)];
      const float e = dy[s] / (2.0f * scale);
      const float lw = pr.lossWeight ? pr.lossWeight[st.blocks[size_t(li)]] : 1.0f;
      st.importance.observe(size_t(li), lw * e * e);
    }
  }

  // One optimizer step of MLP q: sample, forward + backward, then Adam (or, shared, keep the gradients for the
  // reduction). Returns its share of the loss.
  double step(int q, int64_t t, Scratch& sc) {
    MlpState& st = mlps[size_t(q)];
    TrainNet net;
    prepare(lay, books.any() ? rounded(st.p, sc) : st.p.data(), pr.omega0, sc, net);
    const size_t nbk = st.blocks.size();
    const bool byImportance = pr.importance > 0 && nbk > 1;
    sc.latGrad.assign(st.codes.size() * size_t(LB), 0.0f);
    double loss = 0;
    for (int s0 = 0; s0 < pr.batchPerMlp; s0 += kSubBatch) {
      const int n = std::min(kSubBatch, pr.batchPerMlp - s0), np = (n + k.lanes - 1) / k.lanes * k.lanes;
      sizeBatch(lay, np, sc);
      if (corners > 1) sc.cornerW.resize(size_t(np) * size_t(corners));
      // Uniform block among the MLP's blocks (or by importance), then a uniform valid voxel (as the LibTorch sampler).
      for (int s = 0; s < n; ++s) {
        const uint64_t r0 = st.rng.next(), r1 = st.rng.next();
        float isWeight = 1.0f;
        const int li = byImportance ? int(st.importance.draw(r0, &isWeight)) : int(((r0 >> 32) * uint64_t(nbk)) >> 32);
        const int64_t blk = st.blocks[size_t(li)];
        const int* vd = pr.validDims + 3 * blk;
        int c[3];
        for (int a = 0; a < 3; ++a) {
          c[a] = int((((r1 >> (21 * a)) & 0x1FFFFFu) * uint64_t(vd[a])) >> 21);
          const int len = pr.blockDims[a];
          sc.x[size_t(a * np + s)] = len > 1 ? float(c[a]) * (2.0f / float(len - 1)) - 1.0f : 0.0f;
        }
        if (pr.timeOfBlock) sc.x[size_t((3 + Ld) * np + s)] = pr.timeOfBlock[blk];
        const float* lat = st.lat.data() + size_t(st.codeOf[size_t(li)]) * size_t(LB);
        if (corners == 1) {
          for (int i = 0; i < Ld; ++i) sc.x[size_t((3 + i) * np + s)] = lat[i];
        } else {  // the code at this voxel: its corners' codes, interpolated
          const float u[3] = {sc.x[size_t(s)], sc.x[size_t(np + s)], sc.x[size_t(2 * np + s)]};
          float* w = sc.cornerW.data() + size_t(s) * size_t(corners);
          latentCornerWeights(pr.latentGrid, u, w);
          for (int i = 0; i < Ld; ++i) {
            float v = 0;
            for (int c = 0; c < corners; ++c) v += w[c] * lat[c * Ld + i];
            sc.x[size_t((3 + i) * np + s)] = v;
          }
        }
        const int64_t at = blk * V + c[0] + int64_t(pr.blockDims[0]) * (c[1] + int64_t(pr.blockDims[1]) * c[2]);
        sc.target[size_t(s)] = pr.values ? pr.values[at] : halfToFloat(pr.halfValues[at]);
        sc.scale[size_t(s)] = (pr.lossWeight ? pr.lossWeight[blk] * sampleScale : sampleScale) * isWeight;
        sc.local[size_t(s)] = li;
      }
      padBatch(lay, n, np, sc);
      loss += runBatch(k, net, np, sc);
      if (byImportance) observeErrors(st, net, n, np, sc);
      for (int s = 0; s < n; ++s) {
        float* g = sc.latGrad.data() + size_t(st.codeOf[size_t(sc.local[size_t(s)])]) * size_t(LB);
        if (corners == 1) {
          for (int i = 0; i < Ld; ++i) g[i] += sc.dLatent[size_t(i * np + s)];
          continue;
        }
        const float* w = sc.cornerW.data() + size_t(s) * size_t(corners);
        for (int c = 0; c < corners; ++c)
          for (int i = 0; i < Ld; ++i) g[c * Ld + i] += w[c] * sc.dLatent[size_t(i * np + s)];
      }
    }
    if (byImportance) st.importance.endStep();
    const float lr = pr.learningRate ? pr.learningRate(t) : 1e-3f;
    if (shared) {
      std::swap(st.grad, sc.grad);  // prepare() re-zeroes the buffer it gets back
      if (sharedLatents) std::swap(st.latGrad, sc.latGrad);
    } else {
      adam(st.p.data(), sc.grad.data(), st.m.data(), st.v.data(), lay.total, lr, pr.weightDecay, t + 1);
      if (!st.mask.empty())
        for (size_t i = 0; i < lay.total; ++i)
          if (!st.mask[i]) st.p[i] = st.m[i] = st.v[i] = 0.0f;
    }
    if (!sharedLatents)
      adam(st.lat.data(), sc.latGrad.data(), st.latM.data(), st.latV.data(), st.lat.size(), lr, pr.weightDecay, t + 1);
    return loss;
  }

  // Rounds of stepsPerRound steps: inside a round every MLP runs its steps on one thread (no barrier per step);
  // between rounds the calling thread reports. Per-MLP results do not depend on which thread ran them.
  bool runIndependent(int64_t begin, int64_t end) {
    const int64_t round = pr.stepsPerRound > 0 ? pr.stepsPerRound : end - begin;
    for (int64_t b = begin; b < end;) {
      const int64_t e = std::min(end, b + round);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (int q = 0; q < m; ++q) {
        Scratch& sc = scratch[size_t(omp_get_thread_num())];
        double loss = 0;
        for (int64_t t = b; t < e; ++t) loss += step(q, t, sc);
        mlpLoss[size_t(q)] = loss;
      }
      b = e;
      if (!reportRound(e)) return false;
    }
    return true;
  }

  // Shared values tie the MLPs together: every step ends with a reduction over all of them (in MLP order, so the
  // sum does not depend on the thread count), one Adam step on the table, and the new values copied back.
  bool runShared(int64_t begin, int64_t end) {
    const int64_t round = pr.stepsPerRound > 0 ? pr.stepsPerRound : end - begin;
    std::fill(mlpLoss.begin(), mlpLoss.end(), 0.0);
    for (int64_t t = begin; t < end; ++t) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
      for (int q = 0; q < m; ++q) mlpLoss[size_t(q)] += step(q, t, scratch[size_t(omp_get_thread_num())]);
      std::fill(svFixed.begin(), svFixed.end(), 0);
      for (const MlpState& st : mlps) {
        for (size_t i = 0; i < lay.total; ++i)
          if (st.pid[i] >= 0) svFixed[size_t(st.pid[i])] += toFixedPoint(st.grad[i]);
        for (size_t i = 0; i < st.lid.size(); ++i) svFixed[size_t(st.lid[i])] += toFixedPoint(st.latGrad[i]);
      }
      if (pr.reduceShared) pr.reduceShared(svFixed.data(), svFixed.size());
      for (size_t i = 0; i < svGrad.size(); ++i) svGrad[i] = float(fromFixedPoint(svFixed[i]));
      const float lr = pr.learningRate ? pr.learningRate(t) : 1e-3f;
      adam(sv.data(), svGrad.data(), svM.data(), svV.data(), sv.size(), lr, pr.weightDecay, ++sharedSteps);
      broadcast();
      if ((t + 1 - begin) % round == 0 || t + 1 == end) {
        if (!reportRound(t + 1)) return false;
        std::fill(mlpLoss.begin(), mlpLoss.end(), 0.0);
      }
    }
    return true;
  }

  void broadcast() {
#pragma omp parallel for num_threads(threads)
    for (int q = 0; q < m; ++q) {
      MlpState& st = mlps[size_t(q)];
      for (size_t i = 0; i < lay.total; ++i) st.p[i] = st.pid[i] >= 0 ? sv[size_t(st.pid[i])] : 0.0f;
      for (size_t i = 0; i < st.lid.size(); ++i) st.lat[i] = sv[size_t(st.lid[i])];
    }
  }

  bool reportRound(int64_t done) {
    stepsDone = done;
    double total = 0;
    for (double l : mlpLoss) total += l;  // fixed order: the same sum for any thread count
    return !pr.onRound || pr.onRound(done, total);
  }
};

FusedTrainer::FusedTrainer(const FusedTrainProblem& problem) {
  if (!fusedTrainSupported(problem.hidden, problem.sineLayers, problem.latentDim))
    throw std::invalid_argument("fused trainer: unsupported MLP shape");
  if (problem.latentGrid < 1 || problem.latentGrid > kMaxLatentGrid)
    throw std::invalid_argument("fused trainer: latent grid must be 1 or 2");
  impl_ = new Impl(problem);
}

FusedTrainer::~FusedTrainer() { delete impl_; }

bool FusedTrainer::run(int64_t begin, int64_t end) {
  return impl_->shared ? impl_->runShared(begin, end) : impl_->runIndependent(begin, end);
}

namespace {
void checkLayerSizes(size_t layers, size_t expected, const char* what) {
  if (layers != expected) throw std::invalid_argument(std::string("fused trainer: ") + what + ": wrong layer count");
}
}  // namespace

void FusedTrainer::setMasks(const std::vector<std::vector<uint8_t>>& weightMask,
                            const std::vector<std::vector<uint8_t>>& biasMask) {
  Impl& I = *impl_;
  const Layout& lay = I.lay;
  checkLayerSizes(weightMask.size(), size_t(lay.S + 1), "weight masks");
  checkLayerSizes(biasMask.size(), size_t(lay.S + 1), "bias masks");
  for (int l = 0; l <= lay.S; ++l)
    if (weightMask[size_t(l)].size() != size_t(I.m * lay.realIn(l) * lay.realOut(l)) ||
        biasMask[size_t(l)].size() != size_t(I.m * lay.realOut(l)))
      throw std::invalid_argument("fused trainer: mask size mismatch");
  for (int q = 0; q < I.m; ++q) {
    MlpState& st = I.mlps[size_t(q)];
    st.mask.assign(lay.total, 0);
    for (int l = 0; l <= lay.S; ++l) {
      const int in = lay.realIn(l), out = lay.realOut(l);
      for (int i = 0; i < in; ++i)
        for (int j = 0; j < out; ++j) st.mask[I.padded(l, i, j)] = weightMask[size_t(l)][size_t((q * in + i) * out + j)];
      for (int j = 0; j < out; ++j) st.mask[lay.bOff[size_t(l)] + size_t(j)] = biasMask[size_t(l)][size_t(q * out + j)];
    }
    for (size_t i = 0; i < lay.total; ++i)
      if (!st.mask[i]) st.p[i] = st.m[i] = st.v[i] = 0.0f;
  }
}

void FusedTrainer::shareParameters(const SharedParameters& s) {
  Impl& I = *impl_;
  const Layout& lay = I.lay;
  checkLayerSizes(s.weightId.size(), size_t(lay.S + 1), "shared weight ids");
  checkLayerSizes(s.biasId.size(), size_t(lay.S + 1), "shared bias ids");
  const int32_t n = int32_t(s.values.size());
  auto id = [&](int32_t v) {
    if (v < -1 || v >= n) throw std::invalid_argument("fused trainer: shared id out of range");
    return v;
  };
  if (!s.latentId.empty() && s.latentId.size() != size_t(I.codeCount) * size_t(I.LB))
    throw std::invalid_argument("fused trainer: latent id count mismatch");
  for (int l = 0; l <= lay.S; ++l)
    if (s.weightId[size_t(l)].size() != size_t(I.m * lay.realIn(l) * lay.realOut(l)) ||
        s.biasId[size_t(l)].size() != size_t(I.m * lay.realOut(l)))
      throw std::invalid_argument("fused trainer: shared id count mismatch");
  I.sharedLatents = !s.latentId.empty();
  for (int q = 0; q < I.m; ++q) {
    MlpState& st = I.mlps[size_t(q)];
    st.pid.assign(lay.total, -1);
    for (int l = 0; l <= lay.S; ++l) {
      const int in = lay.realIn(l), out = lay.realOut(l);
      for (int i = 0; i < in; ++i)
        for (int j = 0; j < out; ++j) st.pid[I.padded(l, i, j)] = id(s.weightId[size_t(l)][size_t((q * in + i) * out + j)]);
      for (int j = 0; j < out; ++j) st.pid[lay.bOff[size_t(l)] + size_t(j)] = id(s.biasId[size_t(l)][size_t(q * out + j)]);
    }
    st.lid.clear();
    if (I.sharedLatents)
      for (int64_t c : st.codes)
        for (int k = 0; k < I.LB; ++k) {
          const int32_t v = id(s.latentId[size_t(c * I.LB + k)]);
          if (v < 0) throw std::invalid_argument("fused trainer: a shared latent needs an id");
          st.lid.push_back(v);
        }
    st.grad.assign(lay.total, 0.0f);
    st.latGrad.assign(st.lid.size(), 0.0f);
  }
  I.sv = s.values;
  I.svM.assign(I.sv.size(), 0.0f);
  I.svV.assign(I.sv.size(), 0.0f);
  I.svGrad.assign(I.sv.size(), 0.0f);
  I.svFixed.assign(I.sv.size(), 0);
  I.sharedSteps = 0;
  I.shared = true;
  I.broadcast();
}

const std::vector<float>& FusedTrainer::sharedValues() const { return impl_->sv; }

bool ForwardCodebooks::any() const {
  for (const auto& b : weights)
    if (!b.empty()) return true;
  for (const auto& b : biases)
    if (!b.empty()) return true;
  return false;
}

void FusedTrainer::setForwardCodebooks(const ForwardCodebooks& books) {
  const size_t layers = size_t(impl_->lay.S + 1);
  if (books.any()) {
    checkLayerSizes(books.weights.size(), layers, "forward weight codebooks");
    checkLayerSizes(books.biases.size(), layers, "forward bias codebooks");
    for (const auto* group : {&books.weights, &books.biases})
      for (const auto& b : *group)
        if (!std::is_sorted(b.begin(), b.end())) throw std::invalid_argument("fused trainer: a forward codebook is not sorted");
  }
  impl_->books = books;
}

const std::vector<double>& FusedTrainer::mlpLoss() const { return impl_->mlpLoss; }

FusedTrainResult FusedTrainer::result() const {
  const Impl& I = *impl_;
  const Layout& lay = I.lay;
  FusedTrainResult res;
  res.stepsDone = I.stepsDone;
  res.weights.assign(size_t(lay.S + 1), {});
  res.biases.assign(size_t(lay.S + 1), {});
  for (int l = 0; l <= lay.S; ++l)
    for (int q = 0; q < I.m; ++q) {
      const MlpState& st = I.mlps[size_t(q)];
      for (int i = 0; i < lay.realIn(l); ++i)
        for (int j = 0; j < lay.realOut(l); ++j) res.weights[size_t(l)].push_back(st.p[I.padded(l, i, j)]);
      for (int j = 0; j < lay.realOut(l); ++j) res.biases[size_t(l)].push_back(st.p[lay.bOff[size_t(l)] + size_t(j)]);
    }
  const size_t lb = size_t(I.LB);
  res.latents.assign(size_t(I.codeCount) * lb, 0.0f);
  for (const MlpState& st : I.mlps)
    for (size_t i = 0; i < st.codes.size(); ++i)
      std::copy(st.lat.begin() + std::ptrdiff_t(i * lb), st.lat.begin() + std::ptrdiff_t((i + 1) * lb),
                res.latents.begin() + std::ptrdiff_t(size_t(st.codes[i]) * lb));
  return res;
}

FusedTrainResult trainSirenCpu(const FusedTrainProblem& pr) {
  FusedTrainer trainer(pr);
  trainer.run(0, pr.steps);
  return trainer.result();
}

}  // namespace kernels
}  // namespace ecnr
