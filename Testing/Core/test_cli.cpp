// The `ecnr` program on bad input (issue 7): every failure is a clear message and exit status 1, never a crash, and
// the output path keeps its previous file or stays absent. Runs the built binary (ECNR_CLI) on tiny fields with
// 2 epochs per scale.
#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "ecnr/Archive.h"
#include "ecnr/Encoder.h"
#include "ecnr/MemoryEstimate.h"
#include "ecnr/VolumeIO.h"

using namespace ecnr;

namespace {

struct CliRun {
  int status = -1;     ///< exit status; 128 + signal when killed
  std::string output;  ///< stdout and stderr together
  long maxRssKb = 0;   ///< peak resident set size of the child
};

/// Runs `ecnr args...`; `beforeExec` runs in the child (limits, signal dispositions).
CliRun runCli(const std::vector<std::string>& args, const std::function<void()>& beforeExec = {}) {
  char outName[] = "/tmp/ecnr_cli_out_XXXXXX";
  const int outFd = ::mkstemp(outName);
  EXPECT_GE(outFd, 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(outFd, 1);
    ::dup2(outFd, 2);
    if (beforeExec) beforeExec();
    std::vector<char*> argv{const_cast<char*>(ECNR_CLI)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(ECNR_CLI, argv.data());
    ::_exit(127);
  }
  CliRun r;
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.maxRssKb = usage.ru_maxrss;
  ::close(outFd);
  std::ifstream in(outName);
  r.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  ::unlink(outName);
  return r;
}

struct TempDir {
  std::string path;
  TempDir() {
    path = ::testing::TempDir() + "ecnr_cli_XXXXXX";
    EXPECT_NE(::mkdtemp(&path[0]), nullptr);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void writeText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Field smoothField(const Dims4& d, float phase = 0.0f) {
  Field f(d);
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t z = 0; z < d.z; ++z)
      for (int64_t y = 0; y < d.y; ++y)
        for (int64_t x = 0; x < d.x; ++x)
          f.at(x, y, z, t) = std::sin(0.6f * float(x) + phase + 0.2f * float(t)) * std::cos(0.4f * float(y));
  return f;
}

/// A .npy of any dtype: `shape` is the Python tuple text, `data` the little-endian elements.
void writeNpyBytes(const std::string& path, const std::string& descr, const std::string& shape,
                   const std::vector<uint8_t>& data) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  dict.append(64 - (10 + dict.size() + 1) % 64, ' ');
  dict.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(char(dict.size() & 0xFF));
  out.push_back(char(dict.size() >> 8));
  out += dict;
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  std::ofstream(path, std::ios::binary) << out;
}

template <typename T>
std::vector<uint8_t> bytesOf(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

/// Fast settings for every compress: 2 scales, 2 epochs each.
std::vector<std::string> compressArgs(const std::string& in, const std::string& out) {
  return {"compress", in, out, "--preset", "fast", "--scales", "2", "--epochs", "2,2", "--threads", "2", "--quiet"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

TEST(Cli, NonFiniteInputIsRefusedAndTheOutputKeepsItsPreviousFile) {
  TempDir dir;
  Field f = smoothField(Dims4{8, 8, 8, 2});
  f.at(2, 3, 4, 1) = std::nanf("");
  writeNpy(f, dir / "nan.npy");
  writeText(dir / "out.ecnr", "previous");
  const CliRun r = runCli(compressArgs(dir / "nan.npy", dir / "out.ecnr"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "non-finite value (nan) at x=2 y=3 z=4 t=1")) << r.output;
  EXPECT_EQ(readText(dir / "out.ecnr"), "previous");
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"nan.npy", "out.ecnr"}));
}

TEST(Cli, ReplaceNonFiniteEncodesTheRestOfTheField) {
  TempDir dir;
  Field f = smoothField(Dims4{8, 8, 8, 2});
  f.at(0, 0, 0, 0) = INFINITY;
  f.at(7, 7, 7, 1) = -INFINITY;
  f.at(1, 1, 1, 1) = std::nanf("");
  writeNpy(f, dir / "inf.npy");
  const CliRun r = runCli(with(compressArgs(dir / "inf.npy", dir / "out.ecnr"), {"--replace-nonfinite", "0"}));
  ASSERT_EQ(r.status, 0) << r.output;
  const CliRun d = runCli({"decompress", dir / "out.ecnr", dir / "back.npy", "--quiet"});
  ASSERT_EQ(d.status, 0) << d.output;
  const Field back = readNpy(dir / "back.npy");
  EXPECT_EQ(back.dims, f.dims);
  EXPECT_TRUE(std::all_of(back.values.begin(), back.values.end(), [](float v) { return std::isfinite(v); }));
  EXPECT_EQ(runCli(with(compressArgs(dir / "inf.npy", dir / "x.ecnr"), {"--replace-nonfinite", "nan"})).status, 1);
}

TEST(Cli, ConstantFieldRoundTripsExactly) {
  TempDir dir;
  writeNpy(Field(Dims4{8, 8, 8, 2}, 42.5f), dir / "c.npy");
  ASSERT_EQ(runCli(compressArgs(dir / "c.npy", dir / "c.ecnr")).status, 0);
  ASSERT_EQ(runCli({"decompress", dir / "c.ecnr", dir / "c2.npy", "--quiet"}).status, 0);
  const Field back = readNpy(dir / "c2.npy");
  EXPECT_EQ(back.dims, (Dims4{8, 8, 8, 2}));
  for (float v : back.values) ASSERT_EQ(v, 42.5f);
}

TEST(Cli, IntegerAndDoubleNpyInputsCompress) {
  TempDir dir;
  std::vector<int16_t> ints(8 * 8 * 8 * 2);
  std::vector<double> doubles(ints.size());
  for (size_t i = 0; i < ints.size(); ++i) {
    ints[i] = int16_t(int(i % 97) * 300 - 15000);
    doubles[i] = 1e5 + std::sin(double(i)) * 1e-3;  // a large offset with small detail: needs float64 to read
  }
  writeNpyBytes(dir / "i16.npy", "<i2", "(2, 8, 8, 8)", bytesOf(ints));
  writeNpyBytes(dir / "f64.npy", "<f8", "(2, 8, 8, 8)", bytesOf(doubles));
  for (const char* name : {"i16", "f64"}) {
    SCOPED_TRACE(name);
    const std::string in = dir / (std::string(name) + ".npy"), out = dir / (std::string(name) + ".ecnr");
    const CliRun r = runCli(compressArgs(in, out));
    ASSERT_EQ(r.status, 0) << r.output;
    const CliRun info = runCli({"info", out});
    EXPECT_EQ(info.status, 0);
    EXPECT_TRUE(contains(info.output, "dims 8 x 8 x 8 x 2")) << info.output;
  }
  EXPECT_TRUE(contains(runCli({"info", dir / "i16.ecnr"}).output, "range [-15000, 13800]"));
}

TEST(Cli, TwoDimensionalImageAndSingleStepRoundTrip) {
  TempDir dir;
  std::vector<float> image(12 * 10);
  for (size_t i = 0; i < image.size(); ++i) image[i] = float(i % 12) * 0.5f - float(i / 12);
  writeNpyBytes(dir / "image.npy", "<f4", "(10, 12)", bytesOf(image));
  writeNpy(smoothField(Dims4{8, 8, 8, 1}), dir / "step.npy");
  for (const auto& [name, dims] : {std::make_pair("image", Dims4{12, 10, 1, 1}), std::make_pair("step", Dims4{8, 8, 8, 1})}) {
    SCOPED_TRACE(name);
    const CliRun r = runCli(compressArgs(dir / (std::string(name) + ".npy"), dir / "o.ecnr"));
    ASSERT_EQ(r.status, 0) << r.output;
    ASSERT_EQ(runCli({"decompress", dir / "o.ecnr", dir / "o.npy", "--quiet"}).status, 0);
    EXPECT_EQ(readNpy(dir / "o.npy").dims, dims);
  }
}

TEST(Cli, SameInputSeedAndThreadsGiveByteIdenticalArchives) {
  TempDir dir;
  writeNpy(smoothField(Dims4{8, 8, 8, 2}), dir / "in.npy");
  for (const char* threads : {"1", "2"}) {
    SCOPED_TRACE(threads);
    const std::vector<std::string> opts{"--seed", "1234", "--threads", threads};
    ASSERT_EQ(runCli(with(compressArgs(dir / "in.npy", dir / "a.ecnr"), opts)).status, 0);
    ASSERT_EQ(runCli(with(compressArgs(dir / "in.npy", dir / "b.ecnr"), opts)).status, 0);
    const std::string a = readText(dir / "a.ecnr");
    EXPECT_GT(a.size(), 100u);
    EXPECT_EQ(a, readText(dir / "b.ecnr"));
  }
}

TEST(Cli, SeveralArraysNeedAChoiceAndAnUnknownNameIsRefused) {
  TempDir dir;
  GridMeta p, t;
  p.arrayName = "pressure";
  t.arrayName = "temperature";
  EncoderSettings s = presetSettings("fast");
  s.scales = 1;
  s.epochs = {2};
  s.verbose = false;
  const Dims4 dims{8, 8, 4, 2};
  writeArchive({encode(smoothField(dims), p, s, Progress()), encode(Field(dims, 7.0f), t, s, Progress())},
               dir / "two.ecnr");
  const CliRun none = runCli({"decompress", dir / "two.ecnr", dir / "o.npy"});
  EXPECT_EQ(none.status, 1);
  EXPECT_TRUE(contains(none.output, "holds 2 arrays ('pressure', 'temperature'); choose one with --array"))
      << none.output;
  const CliRun unknown = runCli({"decompress", dir / "two.ecnr", dir / "o.npy", "--array", "salinity"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_TRUE(contains(unknown.output, "array 'salinity' is not in")) << unknown.output;
  EXPECT_FALSE(exists(dir / "o.npy"));
  const CliRun chosen = runCli({"decompress", dir / "two.ecnr", dir / "o.npy", "--array", "temperature", "--quiet"});
  ASSERT_EQ(chosen.status, 0) << chosen.output;
  for (float v : readNpy(dir / "o.npy").values) ASSERT_EQ(v, 7.0f);
  EXPECT_TRUE(contains(runCli({"info", dir / "two.ecnr"}).output, "2 array(s)"));
}

TEST(Cli, UnwritableOutputFailsBeforeEncoding) {
  TempDir dir;
  writeNpy(smoothField(Dims4{8, 8, 8, 2}), dir / "in.npy");
  writeText(dir / "file", "x");
  ASSERT_EQ(::mkdir((dir / "folder").c_str(), 0755), 0);
  const std::vector<std::pair<std::string, std::string>> cases{
      {dir / "missing/out.ecnr", "No such file or directory"},
      {dir / "file/out.ecnr", "Not a directory"},
      {dir / "folder", "it is a directory"}};
  for (const auto& [out, why] : cases) {
    // A long encode would make this slow: the check has to come first.
    const CliRun r = runCli(with(compressArgs(dir / "in.npy", out), {"--epochs", "100000"}));
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_TRUE(contains(r.output, "cannot write " + out + ": " + why)) << r.output;
  }
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"file", "folder", "in.npy"}));
  EXPECT_EQ(readText(dir / "file"), "x");
}

TEST(Cli, FullDiskLeavesThePreviousArchive) {
  TempDir dir;
  writeNpy(smoothField(Dims4{8, 8, 8, 2}), dir / "in.npy");
  ASSERT_EQ(runCli(compressArgs(dir / "in.npy", dir / "out.ecnr")).status, 0);
  const std::string previous = readText(dir / "out.ecnr");
  ASSERT_GT(previous.size(), 1500u);
  // The file size limit makes the archive's write() fail with EFBIG part-way, as a full disk would.
  const CliRun r = runCli(with(compressArgs(dir / "in.npy", dir / "out.ecnr"), {"--seed", "99"}), [] {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{1024, 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
  });
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "cannot write " + (dir / "out.ecnr") + ": File too large")) << r.output;
  EXPECT_EQ(readText(dir / "out.ecnr"), previous);
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"in.npy", "out.ecnr"}));
}

TEST(Cli, InterruptCancelsTheEncodeAndWritesNothing) {
  TempDir dir;
  writeNpy(smoothField(Dims4{16, 16, 16, 2}), dir / "in.npy");
  writeText(dir / "out.ecnr", "previous");
  const std::string log = dir / "log.txt";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const std::string in = dir / "in.npy", out = dir / "out.ecnr";
    ::execl(ECNR_CLI, ECNR_CLI, "compress", in.c_str(), out.c_str(), "--preset", "fast", "--scales", "2",
            "--epochs", "100000,100000", "--threads", "1", nullptr);
    ::_exit(127);
  }
  // Wait until training reports its first epoch, then press Ctrl-C.
  for (int i = 0; i < 600 && !contains(readText(log), "epoch 1/"); ++i) ::usleep(50000);
  ASSERT_TRUE(contains(readText(log), "epoch 1/")) << readText(log);
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_TRUE(contains(readText(log), "ecnr: cancelled")) << readText(log);
  EXPECT_EQ(readText(dir / "out.ecnr"), "previous");
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"in.npy", "log.txt", "out.ecnr"}));
}

TEST(Cli, MemoryLimitRefusesBeforeAllocating) {
  TempDir dir;
  writeNpy(smoothField(Dims4{8, 8, 8, 2}), dir / "in.npy");
  const CliRun r = runCli(with(compressArgs(dir / "in.npy", dir / "o.ecnr"), {"--memory-limit", "64M"}));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.output, "compressing 8 x 8 x 8 x 2 needs about")) << r.output;
  EXPECT_TRUE(contains(r.output, "more than --memory-limit (64.0 MiB)")) << r.output;
  EXPECT_FALSE(exists(dir / "o.ecnr"));
  const CliRun bad = runCli(with(compressArgs(dir / "in.npy", dir / "o.ecnr"), {"--memory-limit", "12Q"}));
  EXPECT_EQ(bad.status, 1);
  EXPECT_TRUE(contains(bad.output, "invalid byte size '12Q'")) << bad.output;
  EXPECT_EQ(runCli(with(compressArgs(dir / "in.npy", dir / "o.ecnr"), {"--memory-limit", "off"})).status, 0);
}

TEST(Cli, MemoryEstimateCoversTheMeasuredPeak) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory inflates the measured peak";
#endif
  TempDir dir;
  // Small, so the LibTorch runtime dominates the peak; the estimate must still cover it.
  const Dims4 dims{24, 24, 16, 2};
  writeNpy(smoothField(dims), dir / "in.npy");
  const CliRun r = runCli({"compress", dir / "in.npy", dir / "o.ecnr", "--preset", "fast", "--scales", "2",
                           "--epochs", "1,1", "--block", "8,8,8", "--threads", "2", "--quiet"});
  ASSERT_EQ(r.status, 0) << r.output;
  EncoderSettings s = presetSettings("fast");
  s.scales = 2;
  s.epochs = {1, 1};
  s.blockDims = {8, 8, 8};
  const uint64_t estimate = estimateEncoderPeakBytes(dims, resolveSettings(s, dims), false);  // the input is mapped
  const uint64_t measured = uint64_t(r.maxRssKb) * 1024;
  EXPECT_GE(estimate, measured) << "estimate " << formatBytes(estimate) << ", measured " << formatBytes(measured);
  EXPECT_LE(estimate, measured * 4) << "estimate " << formatBytes(estimate) << ", measured " << formatBytes(measured);
}

// Issue 9: a series whose whole-series estimate exceeds --memory-limit is encoded in the longest time windows
// that fit (a note says so), and decodes to every step; --window given explicitly is checked against the limit.
TEST(Cli, MemoryLimitBelowTheWholeSeriesEncodesInWindowsThatFit) {
  TempDir dir;
  const Dims4 dims{40, 40, 40, 8};
  writeNpy(smoothField(dims), dir / "in.npy");
  EncoderSettings s = presetSettings("fast");
  s.scales = 2;
  s.epochs = {1, 1};
  s.blockDims = {8, 8, 8};
  s.boundaryCnn = false;
  s.threads = 2;
  auto need = [&](int64_t steps) {
    Dims4 d = dims;
    d.t = steps;
    return estimateEncoderPeakBytes(d, resolveSettings(s, d), false);
  };
  ASSERT_LT(need(3), need(4));
  const std::string limit = std::to_string((need(3) + need(4)) / 2);
  const std::vector<std::string> args = {"compress", dir / "in.npy", dir / "o.ecnr", "--preset", "fast", "--scales",
                                         "2", "--epochs", "1,1", "--block", "8,8,8", "--cnn", "off", "--threads", "2",
                                         "--memory-limit", limit};
  const CliRun r = runCli(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "encoding in windows of 3 steps")) << r.output;
  const std::vector<Model> parts = readArchive(dir / "o.ecnr");
  ASSERT_EQ(parts.size(), 3u);  // 3 + 3 + 2 steps
  EXPECT_EQ(parts[2].firstStep, 6);
  EXPECT_EQ(runCli({"decompress", dir / "o.ecnr", dir / "d.npy"}).status, 0);
  EXPECT_EQ(readNpy(dir / "d.npy").dims, dims);
  // An explicit window that does not fit is refused, before anything is written.
  std::vector<std::string> tooLong = args;
  tooLong[2] = dir / "p.ecnr";
  tooLong.insert(tooLong.end(), {"--window", "5"});
  const CliRun refused = runCli(tooLong);
  EXPECT_EQ(refused.status, 1);
  EXPECT_TRUE(contains(refused.output, "in windows of 5 steps needs about")) << refused.output;
  EXPECT_FALSE(exists(dir / "p.ecnr"));
}

TEST(Cli, ArchiveClaimingAHugeGridIsRefusedBeforeDecoding) {
  // 10^15 voxels of a constant: a valid archive of a few hundred bytes whose decode would need 4 PB.
  TempDir dir;
  Model m;
  m.dims = Dims4{100000, 100000, 100000, 1};
  m.dataMin = m.dataMax = 1.0f;
  ScaleModel s;
  s.dims = m.dims;
  s.blockDims = {16, 16, 16};
  s.weights.assign(size_t(m.shape.layerCount()), {});
  s.biases.assign(size_t(m.shape.layerCount()), {});
  m.scales.push_back(s);
  writeArchive({m}, dir / "huge.ecnr");
  const CliRun info = runCli({"info", dir / "huge.ecnr"});
  EXPECT_EQ(info.status, 0) << info.output;
  const CliRun r = runCli({"decompress", dir / "huge.ecnr", dir / "o.npy"});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "decoding 100000 x 100000 x 100000 x 1 needs about")) << r.output;
  EXPECT_TRUE(contains(r.output, "more than the available memory")) << r.output;
  EXPECT_FALSE(exists(dir / "o.npy"));
}

TEST(Cli, CorruptArchiveIsAClearErrorAndWritesNothing) {
  TempDir dir;
  writeNpy(smoothField(Dims4{8, 8, 8, 2}), dir / "in.npy");
  ASSERT_EQ(runCli(compressArgs(dir / "in.npy", dir / "a.ecnr")).status, 0);
  std::string bytes = readText(dir / "a.ecnr");
  writeText(dir / "cut.ecnr", bytes.substr(0, bytes.size() - 7));
  bytes[bytes.size() - 3] ^= 0x20;
  writeText(dir / "flip.ecnr", bytes);
  const std::pair<const char*, const char*> cases[] = {{"cut.ecnr", "runs past the end of the file"},
                                                       {"flip.ecnr", "checksum mismatch in section '"}};
  for (const auto& [name, why] : cases) {
    for (const char* cmd : {"decompress", "info"}) {
      const CliRun r = std::string(cmd) == "info" ? runCli({cmd, dir / name}) : runCli({cmd, dir / name, dir / "o.npy"});
      EXPECT_EQ(r.status, 1) << cmd << " " << name << ": " << r.output;
      EXPECT_TRUE(contains(r.output, why)) << cmd << " " << name << ": " << r.output;
    }
  }
  EXPECT_FALSE(exists(dir / "o.npy"));
}

TEST(Cli, BadArgumentsAreClearErrors) {
  EXPECT_EQ(runCli({"frobnicate"}).status, 2);
  const CliRun missing = runCli({"compress", "in.npy", "out.ecnr", "--epochs"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(contains(missing.output, "option --epochs needs a value")) << missing.output;
  const CliRun epochs = runCli({"compress", "in.npy", "out.ecnr", "--epochs", "2,x"});
  EXPECT_EQ(epochs.status, 1);
  EXPECT_TRUE(contains(epochs.output, "bad value '2,x' for --epochs")) << epochs.output;
  const CliRun input = runCli({"compress", "/nonexistent/in.npy", "/tmp/ecnr_cli_never.ecnr", "--quiet"});
  EXPECT_EQ(input.status, 1);
  EXPECT_TRUE(contains(input.output, "/nonexistent/in.npy")) << input.output;
  EXPECT_FALSE(exists("/tmp/ecnr_cli_never.ecnr"));
}

TEST(Cli, MaxErrorModeBoundsEveryVoxelAndInfoShowsIt) {
  TempDir dir;
  const Field f = smoothField(Dims4{16, 12, 10, 3});
  writeNpy(f, dir / "f.npy");
  const double bound = 1e-3;
  ASSERT_EQ(runCli(with(compressArgs(dir / "f.npy", dir / "f.ecnr"), {"--max-error", "0.001", "--cnn", "off"})).status, 0);
  const CliRun info = runCli({"info", dir / "f.ecnr"});
  EXPECT_TRUE(contains(info.output, "mode max-error")) << info.output;
  EXPECT_TRUE(contains(info.output, "guaranteed bound 0.001")) << info.output;
  for (const std::string& extra : {std::string(), std::string("--timestep")}) {
    std::vector<std::string> args{"decompress", dir / "f.ecnr", dir / "d.npy", "--quiet"};
    if (!extra.empty()) args.insert(args.end(), {"--timestep", "2"});
    ASSERT_EQ(runCli(args).status, 0);
    const Field d = readNpy(dir / "d.npy");
    const float* ref = f.step(extra.empty() ? 0 : 2);
    for (size_t i = 0; i < d.values.size(); ++i) ASSERT_LE(std::fabs(double(d.values[i]) - ref[i]), bound) << i;
  }
  // Without the correction the network alone is further off, and the CLI says the bound does not hold.
  const CliRun off = runCli({"decompress", dir / "f.ecnr", dir / "n.npy", "--correction", "off"});
  EXPECT_TRUE(contains(off.output, "bound does not hold")) << off.output;
  const Field n = readNpy(dir / "n.npy");
  double worst = 0;
  for (size_t i = 0; i < n.values.size(); ++i) worst = std::max(worst, std::fabs(double(n.values[i]) - f.values[i]));
  EXPECT_GT(worst, bound);
}

TEST(Cli, QualityModeArgumentsAreChecked) {
  TempDir dir;
  writeNpy(smoothField(Dims4{8, 8, 8, 2}), dir / "f.npy");
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--max-error", "0.1", "--rel-error", "0.1"}, {"--mode", "max-error"},
        {"--mode", "psnr"}, {"--mode", "fastest"}, {"--target-psnr", "-4"}, {"--target-ratio", "0.5"},
        {"--max-error", "nan"}}) {
    const CliRun r = runCli(with(compressArgs(dir / "f.npy", dir / "f.ecnr"), bad));
    EXPECT_EQ(r.status, 1) << bad[0] << " " << bad[1] << ": " << r.output;
    EXPECT_FALSE(exists(dir / "f.ecnr"));
  }
}

TEST(Cli, TimeWindowsAndAppendGrowTheSeries) {
  TempDir dir;
  const Field f = smoothField(Dims4{12, 10, 8, 5});
  writeNpy(f, dir / "f.npy");
  ASSERT_EQ(runCli(with(compressArgs(dir / "f.npy", dir / "f.ecnr"), {"--window", "2"})).status, 0);
  EXPECT_TRUE(contains(runCli({"info", dir / "f.ecnr"}).output, "in 3 time windows"));
  Field more = smoothField(Dims4{12, 10, 8, 2}, 1.0f);
  writeNpy(more, dir / "more.npy");
  const std::string before = readText(dir / "f.ecnr");
  const CliRun app = runCli(with({"append", dir / "f.ecnr", dir / "more.npy"},
                                 {"--preset", "fast", "--scales", "2", "--epochs", "2,2", "--threads", "2", "--quiet"}));
  ASSERT_EQ(app.status, 0) << app.output;
  EXPECT_TRUE(contains(app.output, "now 7 steps")) << app.output;
  ASSERT_EQ(runCli({"decompress", dir / "f.ecnr", dir / "all.npy", "--quiet"}).status, 0);
  EXPECT_EQ(readNpy(dir / "all.npy").dims, (Dims4{12, 10, 8, 7}));
  ASSERT_EQ(runCli({"decompress", dir / "f.ecnr", dir / "s6.npy", "--timestep", "6", "--quiet"}).status, 0);
  const Field s6 = readNpy(dir / "s6.npy");
  double worst = 0;
  for (size_t i = 0; i < s6.values.size(); ++i) worst = std::max(worst, std::fabs(double(s6.values[i]) - more.step(1)[i]));
  EXPECT_LT(worst, 0.5);  // the appended step, not a copy of an older one (2 epochs: coarse, but close)
  // A different grid is refused and the archive keeps its bytes.
  writeNpy(smoothField(Dims4{6, 6, 6, 2}), dir / "small.npy");
  const std::string grown = readText(dir / "f.ecnr");
  EXPECT_EQ(runCli({"append", dir / "f.ecnr", dir / "small.npy", "--quiet"}).status, 1);
  EXPECT_EQ(readText(dir / "f.ecnr"), grown);
  EXPECT_NE(grown, before);
}
