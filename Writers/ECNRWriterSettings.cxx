#include "ECNRWriterSettings.h"

#include <sstream>

namespace ecnr {

std::string presetName(int preset) {
  static const char* names[] = {"fast", "default", "quality"};
  if (preset < 0 || preset > 2) throw Error("Preset must be 0 (fast), 1 (default) or 2 (quality)");
  return names[preset];
}

namespace {
std::vector<int> parseList(const std::string& text, const char* knob) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" \t", used) != std::string::npos || v <= 0)
      throw Error(std::string(knob) + ": '" + text + "' is not a comma-separated list of positive integers");
    out.push_back(v);
  }
  return out;
}
}  // namespace

EncoderSettings settingsFromKnobs(const WriterKnobs& k) {
  EncoderSettings s = presetSettings(presetName(k.preset));
  if (k.scales > 0) s.scales = k.scales;
  for (int a = 0; a < 3; ++a) {
    if (k.blockSize[a] < 0) throw Error("BlockSize must be >= 0 (0 = chosen from the data)");
  }
  if (k.blockSize[0] > 0 || k.blockSize[1] > 0 || k.blockSize[2] > 0) {
    if (k.blockSize[0] == 0 || k.blockSize[1] == 0 || k.blockSize[2] == 0)
      throw Error("BlockSize: give all three sizes, or 0 0 0 to choose them from the data");
    s.blockDims = k.blockSize;
  }
  if (!k.blocksPerMlp.empty()) s.blocksPerMlp = parseList(k.blocksPerMlp, "BlocksPerMLP");
  if (!k.epochs.empty()) s.epochs = parseList(k.epochs, "Epochs");
  if (k.latentSize > 0) s.latentDim = k.latentSize;
  if (k.hiddenWidth > 0) s.hidden = k.hiddenWidth;
  if (k.threshold >= 0) s.threshold = float(k.threshold);
  if (k.targetRatio > 0) s.targetRatio = k.targetRatio;
  if (!k.device.empty()) s.device = k.device;
  s.seed = uint64_t(k.seed < 0 ? 0 : k.seed);
  if (k.threads > 0) s.threads = k.threads;
  if (k.quantizationBits < 0 || k.quantizationBits > 16) throw Error("QuantizationBits must be in [0, 16]");
  s.pruning = k.pruning != 0;
  s.quantBits = k.quantizationBits;
  s.boundaryCnn = k.boundaryCnn != 0;
  switch (k.mode) {
    case 0: break;
    case 1:
      if (!(k.modeValue > 1)) throw Error("Mode Ratio: ModeValue is the compression ratio and must be above 1");
      s.mode = QualityMode::Ratio;
      s.targetRatio = k.modeValue;
      break;
    case 2:
      if (!(k.modeValue > 0 && k.modeValue <= 300)) throw Error("Mode PSNR: ModeValue must be in (0, 300] dB");
      s.mode = QualityMode::Psnr;
      s.targetPsnr = k.modeValue;
      break;
    case 3:
    case 4:
      if (!(k.modeValue > 0)) throw Error("Mode Max error: ModeValue is the error bound and must be positive");
      s.mode = QualityMode::MaxError;
      (k.mode == 3 ? s.maxError : s.relativeError) = k.modeValue;
      break;
    default: throw Error("Mode must be 0 (expert), 1 (ratio), 2 (PSNR), 3 (max error) or 4 (max relative error)");
  }
  s.verbose = false;
  return s;
}

}  // namespace ecnr
