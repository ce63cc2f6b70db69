// Shared by the bench executables: the dataset config (datasets.conf), loading a dataset, the machine's name and
// peak memory.
#pragma once

#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ecnr/Generator.h"
#include "ecnr/Settings.h"
#include "ecnr/VolumeIO.h"

namespace ecnr {
namespace bench {

struct Dataset {
  std::string name, input, options;
};

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

inline std::vector<Dataset> readConfig(const std::string& path) {
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

inline Field load(const Dataset& d, GridMeta* meta) {
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
inline void applyOptions(const std::string& options, EncoderSettings& s) {
  std::stringstream ss(options);
  std::string key, value;
  while (ss >> key >> value) {
    if (key == "--target-ratio") s.targetRatio = std::stod(value);
    else if (key == "--bits") s.quantBits = std::stoi(value);
    else if (key == "--latent-bits") s.latentBits = std::stoi(value);
    else if (key == "--prune") s.pruning = value == "on";
    else if (key == "--rd-edges") continue;  // ecnr_bench_deep's sweep, not an encoder setting
    else if (key == "--scales") s.scales = std::stoi(value);
    else if (key == "--threshold") s.threshold = std::stof(value);
    else throw Error("bench config: unsupported option " + key);
  }
}

inline double peakRssMiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

inline std::string machine() {
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

/// The dataset's field when it is selected (`only` empty or naming it) and its input exists; otherwise false, with
/// a message for a missing input (real data may be absent).
inline bool loadSelected(const Dataset& d, const std::vector<std::string>& only, Field& f, GridMeta& meta) {
  if (!only.empty() && std::find(only.begin(), only.end(), d.name) == only.end()) return false;
  try {
    f = load(d, &meta);
  } catch (const Error& e) {
    std::cerr << d.name << ": skipped (" << e.what() << ")\n";
    return false;
  }
  return true;
}

}  // namespace bench
}  // namespace ecnr
