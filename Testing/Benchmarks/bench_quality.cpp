// bench_quality: compresses each dataset of a config file with one preset, decodes it, and writes a markdown
// table (ratio, PSNR, max error, times, peak memory) for BENCHMARKS.md. Rows are appended to out.md (the header
// is written when it is empty); run one process per dataset so peak memory is per dataset (scripts/bench.sh).
//   ecnr_bench_quality <datasets.conf> <preset> <out.md> [only-this-dataset ...]
#include <sys/resource.h>
#include <sys/utsname.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Encoder.h"
#include "ecnr/Generator.h"
#include "ecnr/Metrics.h"
#include "ecnr/VolumeIO.h"

using namespace ecnr;

namespace {

struct Dataset {
  std::string name, input, options;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<Dataset> readConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + path);
  std::vector<Dataset> out;
  std::string line;
  while (std::getline(in, line)) {
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    std::stringstream ss(line);
    Dataset d;
    std::getline(ss, d.name, '|');
    std::getline(ss, d.input, '|');
    std::getline(ss, d.options);
    out.push_back({trim(d.name), trim(d.input), trim(d.options)});
  }
  return out;
}

Field load(const Dataset& d, GridMeta* meta) {
  if (d.input.rfind("generate:", 0) == 0) {
    const Dims4 dims = parseDims(d.input.substr(9));
    GrayScottParams p;
    p.nx = dims.x;
    p.ny = dims.y;
    p.nz = dims.z;
    p.steps = dims.t;
    return generateGrayScott(p);
  }
  const auto hash = d.input.find('#');
  return readField(d.input.substr(0, hash), nullptr, hash == std::string::npos ? "" : d.input.substr(hash + 1), meta);
}

// Applies "--key value" pairs of the config line (the subset of the CLI's options the bench needs).
void applyOptions(const std::string& options, EncoderSettings& s) {
  std::stringstream ss(options);
  std::string key, value;
  while (ss >> key >> value) {
    if (key == "--target-ratio") s.targetRatio = std::stod(value);
    else if (key == "--scales") s.scales = std::stoi(value);
    else if (key == "--threshold") s.threshold = std::stof(value);
    else throw Error("bench config: unsupported option " + key);
  }
}

double peakRssMiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

std::string machine() {
  utsname u{};
  uname(&u);
  std::ifstream cpu("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpu, line))
    if (line.rfind("model name", 0) == 0) {
      model = trim(line.substr(line.find(':') + 1));
      break;
    }
  std::ostringstream s;
  s << model << ", " << std::thread::hardware_concurrency() << " threads, " << u.sysname << " " << u.release;
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: ecnr_bench_quality <datasets.conf> <preset> <out.md> [dataset ...]\n";
    return 2;
  }
  try {
    const std::string preset = argv[2];
    std::vector<std::string> only(argv + 4, argv + argc);
    const bool fresh = !std::ifstream(argv[3]) || std::ifstream(argv[3], std::ios::ate).tellg() == 0;
    std::ofstream md(argv[3], std::ios::app);
    if (fresh)
      md << "Preset `" << preset << "`, measured on " << machine() << ".\n\n"
       << "| dataset | dims | block | CR | PSNR (dB) | mean step PSNR | max abs err / range | encode (s) | decode (s) | "
          "peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Dataset& d : readConfig(argv[1])) {
      if (!only.empty() && std::find(only.begin(), only.end(), d.name) == only.end()) continue;
      GridMeta meta;
      Field f;
      try {
        f = load(d, &meta);
      } catch (const Error& e) {
        std::cerr << d.name << ": skipped (" << e.what() << ")\n";
        continue;
      }
      EncoderSettings s = presetSettings(preset);
      applyOptions(d.options, s);
      s.verbose = false;
      EncodeReport rep;
      Timer te;
      const Model m = encode(f, meta, s, Progress(), &rep);
      const std::vector<uint8_t> bytes = serializeArchive({m});
      const double encodeSeconds = te.seconds();
      Timer td;
      const std::vector<Model> back = parseArchive(bytes.data(), bytes.size());
      const Field dec = Decoder(back[0]).decodeAll();
      const double decodeSeconds = td.seconds();
      const ErrorStats e = compareFields(f, dec);
      md << std::fixed << "| " << d.name << " | " << f.dims.str() << " | " << rep.blockDims[0] << "x" << rep.blockDims[1]
         << "x" << rep.blockDims[2] << " | " << std::setprecision(1) << double(f.dims.count()) * 4.0 / double(bytes.size())
         << " | " << std::setprecision(2) << e.psnr << " | " << e.meanStepPsnr << " | " << std::setprecision(5)
         << e.maxAbs / e.range << " | " << std::setprecision(1) << encodeSeconds << " | " << std::setprecision(2)
         << decodeSeconds << " | " << std::setprecision(0) << peakRssMiB() << " |\n";
      md.flush();
      std::cerr << d.name << ": CR " << double(f.dims.count()) * 4.0 / double(bytes.size()) << ", PSNR " << e.psnr
                << " dB, encode " << encodeSeconds << " s\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "ecnr_bench_quality: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
