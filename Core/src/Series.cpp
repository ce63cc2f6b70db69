#include "ecnr/Series.h"

#include <algorithm>


namespace ecnr {

int64_t SeriesView::steps() const {
  return windows.empty() ? 0 : windows.back()->firstStep + windows.back()->dims.t;
}

Dims4 SeriesView::dims() const {
  Dims4 d = windows.front()->dims;
  d.t = steps();
  return d;
}

std::vector<double> SeriesView::times() const {
  std::vector<double> out;
  for (const Model* w : windows)
    for (int64_t t = 0; t < w->dims.t; ++t)
      out.push_back(w->meta.times.size() == size_t(w->dims.t) ? w->meta.times[size_t(t)] : double(w->firstStep + t));
  return out;
}

std::pair<const Model*, int64_t> SeriesView::locate(int64_t t) const {
  for (const Model* w : windows)
    if (t >= w->firstStep && t < w->firstStep + w->dims.t) return {w, t - w->firstStep};
  throw Error("time step " + std::to_string(t) + " out of range [0, " + std::to_string(steps()) + ") of array '" +
              name + "'");
}

std::vector<SeriesView> seriesOf(const std::vector<Model>& parts) {
  std::vector<SeriesView> out;
  for (const Model& m : parts) {
    auto it = std::find_if(out.begin(), out.end(), [&](const SeriesView& s) { return s.name == m.meta.arrayName; });
    if (it == out.end()) {
      out.push_back({m.meta.arrayName, {}});
      it = out.end() - 1;
    }
    it->windows.push_back(&m);
  }
  for (SeriesView& s : out) {
    std::stable_sort(s.windows.begin(), s.windows.end(),
                     [](const Model* a, const Model* b) { return a->firstStep < b->firstStep; });
    int64_t next = 0;
    const Model* previous = nullptr;
    for (const Model* w : s.windows) {
      const std::string where = "array '" + s.name + "': the window at step " + std::to_string(w->firstStep);
      if (w->firstStep != next)
        throw Error(where + (w->firstStep < next ? " overlaps the one before it" : " leaves a gap after step " +
                                                                                     std::to_string(next - 1)));
      const Dims4& a = w->dims, &b = s.windows.front()->dims;
      if (a.x != b.x || a.y != b.y || a.z != b.z) throw Error(where + " has grid " + a.str() + ", the first " + b.str());
      // Readers look a time value up in the series' times: a window's must come after the one before it.
      if (previous && !previous->meta.times.empty() && !w->meta.times.empty() &&
          !(w->meta.times.front() > previous->meta.times.back()))
        throw Error(where + " starts at time " + std::to_string(w->meta.times.front()) +
                    ", not after the previous window's last time " + std::to_string(previous->meta.times.back()));
      previous = w;
      next += w->dims.t;
    }
  }
  for (const SeriesView& s : out) {
    const Dims4 a = s.dims(), b = out.front().dims();
    if (a != b)
      throw Error("array '" + s.name + "' has dims " + a.str() + " but array '" + out.front().name + "' has " + b.str());
  }
  return out;
}

SeriesView seriesNamed(const std::vector<Model>& parts, const std::string& name) {
  std::vector<SeriesView> all = seriesOf(parts);
  std::string names;
  for (const SeriesView& s : all) names += (names.empty() ? "'" : ", '") + s.name + "'";
  if (name.empty()) {
    if (all.size() == 1) return all.front();
    throw Error("the archive holds " + std::to_string(all.size()) + " arrays (" + names + "); choose one");
  }
  for (const SeriesView& s : all)
    if (s.name == name) return s;
  throw Error("array '" + name + "' is not in the archive (it holds " + names + ")");
}

std::pair<Field, GridMeta> sliceWindow(const Field& field, const GridMeta& meta, int64_t first, int64_t count) {
  if (first < 0 || count < 1 || first + count > field.dims.t)
    throw Error("window [" + std::to_string(first) + ", " + std::to_string(first + count) + ") outside the " +
                std::to_string(field.dims.t) + " steps");
  Dims4 d = field.dims;
  d.t = count;
  Field f(d);
  std::copy(field.step(first), field.step(first) + count * d.voxelsPerStep(), f.values.begin());
  GridMeta m = meta;
  if (!meta.times.empty()) m.times.assign(meta.times.begin() + first, meta.times.begin() + first + count);
  return {std::move(f), std::move(m)};
}

}  // namespace ecnr
