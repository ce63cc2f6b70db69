// bench_mpi plan: what N MPI ranks would do with a large series (issue 9), computed from the code's own size model
// (SizeModel: every block effective, an upper bound) and the schedule the trainer runs (Ensemble.cpp): MLPs and
// training values per rank, and the bytes each rank exchanges, per scale and for the whole encode. The timed
// 1-rank / 2-rank run is scripts/bench_mpi.sh.
//   ecnr_bench_mpi plan <X,Y,Z,T> <preset> <target ratio> <ranks,...>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "BenchCommon.h"
#include "ecnr/Blocks.h"
#include "ecnr/Pyramid.h"
#include "ecnr/SizeModel.h"

using namespace ecnr;
using namespace ecnr::bench;

namespace {

std::string bytes(double b) {
  const char* unit[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  std::ostringstream s;
  s << std::fixed << std::setprecision(b < 10 ? 2 : b < 100 ? 1 : 0) << b << " " << unit[u];
  return s.str();
}

struct ScalePlan {
  Dims4 dims;
  int64_t blocks = 0, mlps = 0, epochs = 0, stepsPerEpoch = 0, fineTuneSteps = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6 || std::string(argv[1]) != "plan") {
    std::cerr << "usage: ecnr_bench_mpi plan <X,Y,Z,T> <preset> <target ratio> <ranks,...>\n";
    return 2;
  }
  try {
    const Dims4 dims = parseDims(argv[2]);
    EncoderSettings s = presetSettings(argv[3]);
    s.targetRatio = std::stod(argv[4]);
    const std::vector<int> ranks = parseIntList(argv[5]);
    ResolvedSettings r = resolveSettings(s, dims);
    r.blockDims = chooseBlockDims(dims, r);
    const SizeEstimate size = estimateSize(dims, r, r.blockDims);
    const PyramidPlan plan = planPyramid(dims, r.s.scales, r.s.minAxisLength);
    const int S = int(plan.dims.size());
    MlpShape shape;
    shape.latentDim = r.s.latentDim;
    shape.hidden = r.s.hidden;
    shape.sineLayers = r.s.sineLayers;
    const int64_t params = shape.paramsPerMlp();
    const int64_t voxelsPerBlock = int64_t(r.blockDims[0]) * r.blockDims[1] * r.blockDims[2];
    std::vector<ScalePlan> scales;
    for (int p = 0; p < S; ++p) {  // coarsest first, as the encoder trains them
      ScalePlan sp;
      sp.dims = plan.dims[size_t(S - 1 - p)];
      sp.blocks = makeBlockGrid(sp.dims, r.blockDims).blocksPerStep() * sp.dims.t;
      const int64_t bpm = r.blocksPerMlp[size_t(p)];
      sp.mlps = (sp.blocks + bpm - 1) / bpm;
      sp.epochs = r.epochs[size_t(p)];
      sp.stepsPerEpoch = (bpm * voxelsPerBlock + r.s.batchPerMlp - 1) / r.s.batchPerMlp;
      sp.fineTuneSteps = r.s.quantBits > 0 ? int64_t(std::ceil(r.s.fineTuneFraction * double(sp.epochs))) * sp.stepsPerEpoch : 0;
      scales.push_back(sp);
    }
    // Exchanged per rank (received, the order of MPI's allgather / allreduce payloads):
    //  after each scale's training: every MLP's weights and biases and every block's latent code (float32);
    //  pruning rounds (off by default): the same gather plus one loss per MLP, per round;
    //  fine-tuning: per step one int64 per shared value (2^bits per weight and bias group of each layer + latents);
    //  training: one double per epoch (the loss); the boundary CNN: per step one int64 per CNN parameter.
    const int groups = 2 * shape.layerCount() + 1;
    const int64_t sharedValues = int64_t(groups) << r.s.quantBits;
    const int64_t cnnParams = 27LL * (1 * r.s.cnnChannels + 3 * r.s.cnnChannels * r.s.cnnChannels + r.s.cnnChannels) +
                              4LL * r.s.cnnChannels + 1;
    std::cout << "Series " << dims.str() << " (" << bytes(4.0 * double(dims.count())) << " float32), preset `" << argv[3]
              << "`, target CR " << s.targetRatio << ": block " << r.blockDims[0] << "x" << r.blockDims[1] << "x"
              << r.blockDims[2] << " (SizeModel: " << size.mlps << " MLPs of " << params << " parameters, archive "
              << bytes(double(size.bytes)) << ", CR " << std::setprecision(0) << std::fixed << size.ratio << ").\n\n";
    std::cout << "| scale | dims | blocks | MLPs | epochs × steps | fine-tuning steps | gathered after training | "
                 "fine-tuning exchange |\n|---|---|---|---|---|---|---|---|\n";
    double gatherAll = 0, fineAll = 0, epochsAll = 0;
    for (size_t p = 0; p < scales.size(); ++p) {
      const ScalePlan& sp = scales[p];
      const double gathered = 4.0 * double(sp.mlps * params + sp.blocks * shape.latentDim);
      const double fine = 8.0 * double(sharedValues * sp.fineTuneSteps);
      gatherAll += gathered;
      fineAll += fine;
      epochsAll += double(sp.epochs);
      std::cout << "| " << p + 1 << " | " << sp.dims.str() << " | " << sp.blocks << " | " << sp.mlps << " | "
                << sp.epochs << " × " << sp.stepsPerEpoch << " | " << sp.fineTuneSteps << " | " << bytes(gathered)
                << " | " << bytes(fine) << " |\n";
    }
    const double cnn = 8.0 * double(cnnParams) * r.s.cnnSteps;
    std::cout << "\nPer rank, for N ranks (every rank receives the gathers and takes part in every allreduce; "
                 "the training values are those of its MLPs):\n\n"
              << "| ranks | MLPs per rank (finest scale) | training values per rank | bytes received per rank "
                 "(gathers + fine-tuning + CNN + losses) | decode: steps per rank, output gathered at rank 0 |\n"
              << "|---|---|---|---|---|\n";
    const ScalePlan& finest = scales.back();
    for (int n : ranks) {
      const double values = 4.0 * double(finest.blocks) * double(voxelsPerBlock) / n;
      const double received = gatherAll * (n - 1) / n + fineAll + cnn + 8.0 * epochsAll;
      std::cout << "| " << n << " | " << (finest.mlps + n - 1) / n << " | " << bytes(values) << " | "
                << (n == 1 ? std::string("0 (one process)") : bytes(received)) << " | "
                << (dims.t + n - 1) / n << " steps, " << bytes(4.0 * double(dims.count())) << " |\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "ecnr_bench_mpi: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
