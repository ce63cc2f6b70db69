// Shared by the bench executables: the dataset config (datasets.conf, rd.conf), loading a dataset, the machine's
// name, peak memory, and the reference figures of the coders that are not run here.
#pragma once

#include <malloc.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
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

/// "a,b,c" as integers.
inline std::vector<int> parseIntList(const std::string& list) {
  std::vector<int> out;
  std::stringstream items(list);
  std::string item;
  while (std::getline(items, item, ',')) out.push_back(std::stoi(item));
  return out;
}

/// Removes "--key value" from a config line's options and returns the value (`fallback` when the key is absent):
/// the bench's own keys, taken out before applyOptions sees the encoder settings.
inline std::string takeOption(std::string& options, const std::string& key, const std::string& fallback = "") {
  std::stringstream ss(options);
  std::string k, v, rest;
  std::string found = fallback;
  while (ss >> k >> v) {
    if (k == key) found = v;
    else rest += k + " " + v + " ";
  }
  options = rest;
  return found;
}

// Applies "--key value" pairs of the config line (the subset of the CLI's options the bench needs).
inline void applyOptions(const std::string& options, EncoderSettings& s) {
  std::stringstream ss(options);
  std::string key, value;
  while (ss >> key >> value) {
    if (key == "--target-ratio") s.targetRatio = std::stod(value);
    else if (key == "--epochs") s.epochs = parseIntList(value);
    else if (key == "--cnn") s.boundaryCnn = value == "on";
    else if (key == "--cnn-steps") s.cnnSteps = std::stoi(value);
    else if (key == "--bits") s.quantBits = std::stoi(value);
    else if (key == "--latent-bits") s.latentBits = std::stoi(value);
    else if (key == "--bias-bits") s.biasBits = std::stoi(value);
    else if (key == "--codebook-rate") s.codebookRateSlope = std::stod(value);
    else if (key == "--prune") s.pruning = value == "on";
    else if (key == "--rd-edges") continue;  // ecnr_bench_deep's sweep, not an encoder setting
    else if (key == "--scales") s.scales = std::stoi(value);
    else if (key == "--threshold") s.threshold = std::stof(value);
    else if (key == "--importance") s.importance = std::stof(value);
    else throw Error("bench config: unsupported option " + key);
  }
}

inline double peakRssMiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

/// Resident-memory figures of this process from /proc/self/status (MiB; 0 when unreadable).
inline double procStatusMiB(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  return 0;
}

/// Peak memory of one operation: start() hands freed heap back to the system and resets the kernel's high-water
/// mark (VmHWM) to the current resident size; extraMiB() is the peak reached since, above that start (where the
/// kernel refuses the reset, the process's peak so far: an upper bound).
class PeakMemory {
public:
  void start() {
    malloc_trim(0);
    std::ofstream("/proc/self/clear_refs") << "5";
    base_ = procStatusMiB("VmRSS");
  }
  double extraMiB() const { return std::max(0.0, procStatusMiB("VmHWM") - base_); }

private:
  double base_ = 0;
};

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

/// PSNR at `cr` by linear interpolation in log CR between the measured points that bracket it; NaN outside.
inline double psnrAt(std::vector<std::pair<double, double>> pts, double cr) {
  std::sort(pts.begin(), pts.end());
  for (size_t i = 0; i + 1 < pts.size(); ++i) {
    const double a = std::log(pts[i].first), b = std::log(pts[i + 1].first), x = std::log(cr);
    if (x >= a && x <= b && b > a) return pts[i].second + (pts[i + 1].second - pts[i].second) * (x - a) / (b - a);
  }
  return NAN;
}

/// Reference figures of the coders that are not Debian packages (issues 4 and 6): public builds of SPERR 0.8.5,
/// TTHRESH and SZ3 3.3 run on ../shared/data outside this project, PSNR over the data range at CR 300 and 1000
/// (interpolated in log CR on each tool's best settings). Per dataset name: SPERR, TTHRESH, SZ3 at 300, then at 1000.
inline const std::map<std::string, std::array<double, 6>>& referenceFigures() {
  static const std::map<std::string, std::array<double, 6>> figures = {
      {"ct_cranium", {40.3, 34.7, 33.9, 34.5, 29.9, 30.3}},
      {"rm_entropy", {43.0, 35.2, 33.1, 34.2, 28.5, 27.9}},
      {"navy_uwnd", {33.5, 32.3, 27.2, 29.1, 27.7, 24.0}},
  };
  return figures;
}
constexpr std::array<const char*, 3> kReferenceCoders = {"SPERR", "TTHRESH", "SZ3"};

}  // namespace bench
}  // namespace ecnr
