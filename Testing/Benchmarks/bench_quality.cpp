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
#include "BenchCommon.h"

using namespace ecnr;
using namespace ecnr::bench;

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
      GridMeta meta;
      Field f;
      if (!loadSelected(d, only, f, meta)) continue;
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
