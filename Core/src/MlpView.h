// MlpView: one MLP of a scale as the fused kernels see it (plain pointers into the scale's weight arrays).
// Internal to Core (and its tests): the kernels stay leaves that know nothing of Model.
#pragma once

#include "../kernels/SirenCpu.h"
#include "ecnr/Model.h"

namespace ecnr {

inline kernels::SirenView mlpView(const MlpShape& shape, const ScaleModel& s, uint32_t mlp) {
  kernels::SirenView v;
  v.inDim = shape.inputDim();
  v.hidden = shape.hidden;
  v.sineLayers = shape.sineLayers;
  v.omega0 = shape.omega0;
  v.latentGrid = shape.latentGrid;
  v.timeInputs = shape.timeInputs();
  for (int l = 0; l < shape.layerCount(); ++l) {
    v.W[l] = s.weights[size_t(l)].data() + size_t(mlp) * size_t(shape.fanIn(l) * shape.fanOut(l));
    v.b[l] = s.biases[size_t(l)].data() + size_t(mlp) * size_t(shape.fanOut(l));
  }
  return v;
}

}  // namespace ecnr
