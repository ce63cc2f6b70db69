// The decode side of the boundary CNN: shape checks, quantization, the byte format and the CPU apply.
#include "ecnr/BoundaryCNN.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "Conv3dCpu.h"

namespace ecnr {

namespace {

constexpr uint8_t kMagic[4] = {'E', 'C', 'N', 'N'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagResidual = 1;
constexpr size_t kHeaderBytes = 12;

bool validKernel(int k) { return k == 1 || k == 3 || k == 5; }

int64_t countParameters(int layers, int channels, int kernel) {
  int64_t n = 0;
  const int64_t k3 = int64_t(kernel) * kernel * kernel;
  for (int l = 0; l < layers; ++l) {
    const int64_t in = l == 0 ? 1 : channels, out = l + 1 == layers ? 1 : channels;
    n += out * in * k3 + out;
  }
  return n;
}

int qMax(int bits) { return (1 << (bits - 1)) - 1; }

// Symmetric uniform quantization of v in place; returns the scale (0 when v is all zero).
float quantizeValues(std::vector<float>& v, int bits) {
  float m = 0;
  for (float x : v) {
    if (!std::isfinite(x)) throw Error("boundary CNN: non-finite weight");
    m = std::max(m, std::fabs(x));
  }
  const int qm = qMax(bits);
  const float scale = m / float(qm);
  for (float& x : v) {
    if (scale == 0) {
      x = 0;
      continue;
    }
    const float q = std::min(std::max(std::nearbyint(x / scale), float(-qm)), float(qm));
    x = q * scale;
  }
  return scale;
}

// The integer q of a value already quantized with `scale`; Error when it is not of that form.
int32_t quantumOf(float v, float scale, int bits) {
  if (scale == 0) {
    if (v != 0) throw Error("serializeBoundaryCnn: network is not quantized (quantizeBoundaryCnn first)");
    return 0;
  }
  const float q = std::nearbyint(v / scale);
  if (!(std::fabs(q) <= float(qMax(bits))) || q * scale != v)
    throw Error("serializeBoundaryCnn: network is not quantized (quantizeBoundaryCnn first)");
  return int32_t(q);
}

struct BitWriter {
  std::vector<uint8_t>& out;
  uint64_t acc = 0;
  int n = 0;
  void put(uint32_t v, int bits) {
    acc |= uint64_t(v & ((1u << bits) - 1)) << n;
    n += bits;
    while (n >= 8) {
      out.push_back(uint8_t(acc & 0xFF));
      acc >>= 8;
      n -= 8;
    }
  }
  void flush() {
    if (n > 0) out.push_back(uint8_t(acc & 0xFF));
    acc = 0;
    n = 0;
  }
};

struct BitReader {
  const uint8_t* p;
  const uint8_t* end;
  uint64_t acc = 0;
  int n = 0;
  uint32_t get(int bits) {
    while (n < bits) {
      if (p == end) throw Error("boundary CNN: truncated values");
      acc |= uint64_t(*p++) << n;
      n += 8;
    }
    const uint32_t v = uint32_t(acc & ((uint64_t(1) << bits) - 1));
    acc >>= bits;
    n -= bits;
    return v;
  }
};

void putF32(std::vector<uint8_t>& out, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(u >> (8 * i)));
}

float getF32(const uint8_t* p) {
  const uint32_t u = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

}  // namespace

int64_t BoundaryCnn::parameterCount() const { return countParameters(layers, channels, kernel); }

bool BoundaryCnn::isIdentity() const {
  if (!residual) return false;
  for (const auto* group : {&weights, &biases})
    for (const auto& layer : *group)
      for (float v : layer)
        if (v != 0) return false;
  return true;
}

void BoundaryCnn::validate() const {
  if (layers < 1 || layers > kernels::kMaxConvLayers)
    throw Error("boundary CNN: layers must be 1.." + std::to_string(kernels::kMaxConvLayers));
  if (channels < 1 || channels > kernels::kMaxConvChannels)
    throw Error("boundary CNN: channels must be 1.." + std::to_string(kernels::kMaxConvChannels));
  if (!validKernel(kernel)) throw Error("boundary CNN: kernel must be 1, 3 or 5");
  if (bits != 0 && (bits < 2 || bits > 16)) throw Error("boundary CNN: bits must be 0 or 2..16");
  if (int(weights.size()) != layers || int(biases.size()) != layers)
    throw Error("boundary CNN: expected " + std::to_string(layers) + " layers of weights and biases");
  const size_t k3 = size_t(kernel) * size_t(kernel) * size_t(kernel);
  for (int l = 0; l < layers; ++l) {
    if (weights[size_t(l)].size() != size_t(outChannels(l)) * size_t(inChannels(l)) * k3 ||
        biases[size_t(l)].size() != size_t(outChannels(l)))
      throw Error("boundary CNN: layer " + std::to_string(l) + " has the wrong number of parameters");
  }
  if (bits > 0 && (int(weightScale.size()) != layers || int(biasScale.size()) != layers))
    throw Error("boundary CNN: quantized network without its scales");
}

BoundaryCnn makeBoundaryCnn(int layers, int channels, int kernel, bool residual) {
  BoundaryCnn c;
  c.layers = layers;
  c.channels = channels;
  c.kernel = kernel;
  c.residual = residual;
  if (layers < 1 || layers > kernels::kMaxConvLayers || channels < 1 || channels > kernels::kMaxConvChannels ||
      !validKernel(kernel))
    c.validate();  // throws with the reason
  const size_t k3 = size_t(kernel) * size_t(kernel) * size_t(kernel);
  for (int l = 0; l < layers; ++l) {
    c.weights.emplace_back(size_t(c.outChannels(l)) * size_t(c.inChannels(l)) * k3, 0.0f);
    c.biases.emplace_back(size_t(c.outChannels(l)), 0.0f);
  }
  return c;
}

void quantizeBoundaryCnn(BoundaryCnn& cnn, int bits) {
  if (bits < 2 || bits > 16) throw Error("quantizeBoundaryCnn: bits must be 2..16");
  cnn.bits = 0;
  cnn.validate();
  cnn.weightScale.assign(size_t(cnn.layers), 0.0f);
  cnn.biasScale.assign(size_t(cnn.layers), 0.0f);
  for (size_t l = 0; l < size_t(cnn.layers); ++l) {
    cnn.weightScale[l] = quantizeValues(cnn.weights[l], bits);
    cnn.biasScale[l] = quantizeValues(cnn.biases[l], bits);
  }
  cnn.bits = bits;
}

std::vector<uint8_t> serializeBoundaryCnn(const BoundaryCnn& cnn) {
  cnn.validate();
  if (cnn.bits == 0) throw Error("serializeBoundaryCnn: network is not quantized (quantizeBoundaryCnn first)");
  std::vector<uint8_t> out(kMagic, kMagic + 4);
  out.push_back(kVersion);
  out.push_back(cnn.residual ? kFlagResidual : 0);
  out.push_back(uint8_t(cnn.layers));
  out.push_back(uint8_t(cnn.kernel));
  out.push_back(uint8_t(cnn.channels & 0xFF));
  out.push_back(uint8_t(cnn.channels >> 8));
  out.push_back(uint8_t(cnn.bits));
  out.push_back(0);  // reserved
  for (size_t l = 0; l < size_t(cnn.layers); ++l) {
    putF32(out, cnn.weightScale[l]);
    putF32(out, cnn.biasScale[l]);
  }
  BitWriter bw{out};
  for (size_t l = 0; l < size_t(cnn.layers); ++l) {
    for (float v : cnn.weights[l]) bw.put(uint32_t(quantumOf(v, cnn.weightScale[l], cnn.bits)), cnn.bits);
    for (float v : cnn.biases[l]) bw.put(uint32_t(quantumOf(v, cnn.biasScale[l], cnn.bits)), cnn.bits);
  }
  bw.flush();
  return out;
}

BoundaryCnn parseBoundaryCnn(const uint8_t* data, size_t size) {
  if (size < kHeaderBytes || !data) throw Error("boundary CNN: truncated header");
  if (std::memcmp(data, kMagic, 4) != 0) throw Error("boundary CNN: bad magic");
  if (data[4] != kVersion) throw Error("boundary CNN: unsupported version " + std::to_string(data[4]));
  if (data[5] & ~kFlagResidual) throw Error("boundary CNN: unknown flags");
  const int layers = data[6], kernel = data[7], channels = data[8] | data[9] << 8, bits = data[10];
  if (data[11] != 0) throw Error("boundary CNN: reserved byte is not zero");
  if (layers < 1 || layers > kernels::kMaxConvLayers) throw Error("boundary CNN: bad layer count");
  if (!validKernel(kernel)) throw Error("boundary CNN: bad kernel size");
  if (channels < 1 || channels > kernels::kMaxConvChannels) throw Error("boundary CNN: bad channel count");
  if (bits < 2 || bits > 16) throw Error("boundary CNN: bad bit count");
  const int64_t count = countParameters(layers, channels, kernel);
  const uint64_t expected = kHeaderBytes + 8 * uint64_t(layers) + (uint64_t(count) * uint64_t(bits) + 7) / 8;
  if (uint64_t(size) != expected)
    throw Error("boundary CNN: " + std::to_string(size) + " bytes, expected " + std::to_string(expected));

  BoundaryCnn cnn = makeBoundaryCnn(layers, channels, kernel, (data[5] & kFlagResidual) != 0);
  cnn.bits = bits;
  const uint8_t* p = data + kHeaderBytes;
  for (int l = 0; l < layers; ++l, p += 8) {
    const float ws = getF32(p), bs = getF32(p + 4);
    if (!std::isfinite(ws) || !std::isfinite(bs) || ws < 0 || bs < 0) throw Error("boundary CNN: bad scale");
    cnn.weightScale.push_back(ws);
    cnn.biasScale.push_back(bs);
  }
  BitReader br{p, data + size};
  const int qm = qMax(bits);
  auto read = [&](std::vector<float>& v, float scale) {
    for (float& x : v) {
      const uint32_t u = br.get(bits);
      const int32_t q = (u >> (bits - 1)) ? int32_t(u) - (int32_t(1) << bits) : int32_t(u);
      if (q < -qm) throw Error("boundary CNN: value out of range");
      x = float(q) * scale;
    }
  };
  for (size_t l = 0; l < size_t(layers); ++l) {
    read(cnn.weights[l], cnn.weightScale[l]);
    read(cnn.biases[l], cnn.biasScale[l]);
  }
  if (br.acc != 0 || br.p != br.end) throw Error("boundary CNN: nonzero padding bits");
  return cnn;
}

void applyBoundaryCnn(const BoundaryCnn& cnn, Field& field) {
  cnn.validate();
  if (field.values.size() != size_t(field.dims.count())) throw Error("applyBoundaryCnn: field size does not match its dims");
  kernels::ConvStackView v;
  v.layers = cnn.layers;
  v.kernel = cnn.kernel;
  v.negativeSlope = kBoundaryCnnSlope;
  v.residual = cnn.residual;
  for (int l = 0; l < cnn.layers; ++l) {
    v.channels[l] = cnn.inChannels(l);
    v.channels[l + 1] = cnn.outChannels(l);
    v.W[l] = cnn.weights[size_t(l)].data();
    v.b[l] = cnn.biases[size_t(l)].data();
  }
  const Dims4& d = field.dims;
  try {
    for (int64_t t = 0; t < d.t; ++t) kernels::conv3dStack(v, field.step(t), field.step(t), d.x, d.y, d.z);
  } catch (const std::invalid_argument& e) {
    throw Error(std::string("applyBoundaryCnn: ") + e.what());
  }
}

}  // namespace ecnr
