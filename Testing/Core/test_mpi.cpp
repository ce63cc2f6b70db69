// `mpiexec -n N ecnr compress|decompress` (issue 9): the MLPs of each scale split over ranks, the decode's time steps
// split over ranks. What a user checks: the archive is the same file whatever the rank count (every sum that ties
// the MLPs together is exact: Comm.h), the decoded series too, an error on the ranks ends the job with a message
// instead of a hang, and the commands that do not split run once. Skipped when the tool has no MPI.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Generator.h"
#include "ecnr/Metrics.h"
#include "ecnr/VolumeIO.h"

using namespace ecnr;

#ifdef ECNR_MPIEXEC

namespace {

namespace fs = std::filesystem;

struct MpiRun {
  int status = -1;
  std::string output;
};

/// `mpiexec -n ranks ecnr args` (ranks 0: the tool alone), stdout and stderr captured; a 300 s timeout turns a
/// hang into a failure.
MpiRun ecnr(int ranks, const std::string& args, const fs::path& dir) {
  const fs::path log = dir / "run.log";
  std::string cmd = "timeout 300 ";
  if (ranks > 0) cmd += std::string(ECNR_MPIEXEC) + " --oversubscribe -n " + std::to_string(ranks) + " ";
  cmd += std::string(ECNR_CLI) + " " + args + " > " + log.string() + " 2>&1";
  MpiRun r;
  const int rc = std::system(cmd.c_str());
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  std::ifstream in(log);
  r.output.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

std::string bytesOf(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Mpi : public ::testing::Test {
protected:
  void SetUp() override {
    // OpenMPI refuses root unless told (CI containers run as root).
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    dir_ = fs::temp_directory_path() / ("ecnr_mpi_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    GrayScottParams p;
    p.nx = p.ny = p.nz = 32;
    p.steps = 6;
    original_ = generateGrayScott(p);
    writeNpy(original_, (dir_ / "in.npy").string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string in() const { return (dir_ / "in.npy").string(); }
  std::string at(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
  Field original_;
};

// Pruning, global quantization with fine-tuning and the boundary CNN: every stage that ties MLPs or patches together.
const std::string kEncode =
    " --preset fast --epochs 4,4,6 --block 8,8,8 --prune on --cnn on --cnn-steps 40 --threads 1 --quiet";

TEST_F(Mpi, ArchiveIsTheSameFileForOneTwoAndThreeRanks) {
  ASSERT_EQ(ecnr(0, "compress " + in() + " " + at("r1.ecnr") + kEncode, dir_).status, 0);
  for (int ranks : {2, 3}) {
    const std::string out = at("r" + std::to_string(ranks) + ".ecnr");
    const MpiRun r = ecnr(ranks, "compress " + in() + " " + out + kEncode, dir_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(bytesOf(out), bytesOf(at("r1.ecnr"))) << ranks << " ranks";
  }
  const std::vector<Model> m = readArchive(at("r2.ecnr"));
  EXPECT_GT(compareFields(original_, Decoder(m.front()).decodeAll()).psnr, 22.0);
}

TEST_F(Mpi, TimeWindowsAndAnErrorBoundGiveTheSameFileToo) {
  // Two windows, each with its network and its error-bounded correction (coded alike on every rank).
  const std::string opts = " --preset fast --epochs 3,3,4 --block 8,8,8 --cnn off --window 3 --rel-error 1e-3 --threads 1 --quiet";
  ASSERT_EQ(ecnr(0, "compress " + in() + " " + at("w1.ecnr") + opts, dir_).status, 0);
  const MpiRun r = ecnr(2, "compress " + in() + " " + at("w2.ecnr") + opts, dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(bytesOf(at("w2.ecnr")), bytesOf(at("w1.ecnr")));
  const std::vector<Model> parts = readArchive(at("w2.ecnr"));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(parts[0].residual.hasCorrection());
}

TEST_F(Mpi, SharedCodesAndALatentGridGiveTheSameFileToo) {
  // Codes shared over steps go with their MLP's rank; a latent grid's corner codes with their block's.
  for (const char* extra : {" --code-steps 3", " --latent-grid 2 --latent 4"}) {
    const std::string opts = std::string(" --preset fast --epochs 3,3,4 --block 8,8,8 --cnn off --threads 1 --quiet") + extra;
    ASSERT_EQ(ecnr(0, "compress " + in() + " " + at("s1.ecnr") + opts, dir_).status, 0);
    const MpiRun r = ecnr(3, "compress " + in() + " " + at("s3.ecnr") + opts, dir_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(bytesOf(at("s3.ecnr")), bytesOf(at("s1.ecnr"))) << extra;
  }
}

TEST_F(Mpi, TheLibTorchTrainerIsRefusedClearly) {
  const MpiRun r = ecnr(2, "compress " + in() + " " + at("t.ecnr") + " --preset fast --epochs 1,1,1 --trainer libtorch --quiet", dir_);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("needs the fused CPU trainer"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(at("t.ecnr")));
}

TEST_F(Mpi, DecodedSeriesIsTheSameForAnyRankCount) {
  ASSERT_EQ(ecnr(0, "compress " + in() + " " + at("a.ecnr") + " --preset fast --epochs 3,3,4 --cnn off --quiet", dir_)
                .status,
            0);
  ASSERT_EQ(ecnr(0, "decompress " + at("a.ecnr") + " " + at("d1.npy") + " --quiet", dir_).status, 0);
  for (int ranks : {2, 4}) {  // 4 ranks: fewer steps than ranks on the coarse scales, uneven shares
    const std::string out = at("d" + std::to_string(ranks) + ".npy");
    const MpiRun r = ecnr(ranks, "decompress " + at("a.ecnr") + " " + out + " --quiet", dir_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(bytesOf(out), bytesOf(at("d1.npy"))) << ranks << " ranks";
  }
  const Field d = readField(at("d2.npy"), nullptr);
  EXPECT_EQ(d.dims, original_.dims);
  EXPECT_GT(compareFields(original_, d).psnr, 20.0);
}

TEST_F(Mpi, AnErrorEndsEveryRankWithAMessage) {
  const MpiRun r = ecnr(2, "compress " + at("missing.npy") + " " + at("x.ecnr") + " --quiet", dir_);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.status, 124) << "timed out: a rank kept waiting";
  EXPECT_NE(r.output.find("missing.npy"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(at("x.ecnr")));
}

TEST_F(Mpi, CommandsThatDoNotSplitRunOnce) {
  ASSERT_EQ(ecnr(0, "compress " + in() + " " + at("a.ecnr") + " --preset fast --epochs 2,2,2 --cnn off --quiet", dir_)
                .status,
            0);
  const MpiRun r = ecnr(2, "info " + at("a.ecnr"), dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string head = "ECNR archive";
  const size_t first = r.output.find(head);
  ASSERT_NE(first, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(head, first + 1), std::string::npos) << "printed twice:\n" << r.output;
}

}  // namespace

#else

TEST(Mpi, SkippedWithoutMpi) { GTEST_SKIP() << "the ecnr tool was built without MPI (ECNR_WITH_MPI)"; }

#endif
