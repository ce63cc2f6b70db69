// FieldSource: a 4D series read one time step at a time. The encoder reads its input through it, so a series on
// disk (a memory-mapped .npy or raw file, VolumeIO.h openField) is never held whole: each pass over the finest
// scale reads a step, uses it and lets it go.
#pragma once

#include <cstdint>
#include <memory>

#include "ecnr/Field.h"

namespace ecnr {

class FieldSource {
public:
  virtual ~FieldSource() = default;
  virtual Dims4 dims() const = 0;
  /// Copies time step t (dims().voxelsPerStep() values) into out. Throws Error when t is out of range.
  virtual void readStep(int64_t t, float* out) const = 0;
  /// A Field in memory when there is one (its steps can be read in place), else nullptr.
  virtual const Field* field() const { return nullptr; }
};

/// A Field already in memory (not copied: it must outlive the source).
class MemorySource final : public FieldSource {
public:
  explicit MemorySource(const Field& f);
  Dims4 dims() const override { return field_.dims; }
  void readStep(int64_t t, float* out) const override;
  const Field* field() const override { return &field_; }

private:
  const Field& field_;
};

/// Steps [first, first + count) of another source (it must outlive this one): a time window.
class WindowSource final : public FieldSource {
public:
  WindowSource(const FieldSource& base, int64_t first, int64_t count);
  Dims4 dims() const override { return dims_; }
  void readStep(int64_t t, float* out) const override;

private:
  const FieldSource& base_;
  int64_t first_;
  Dims4 dims_;
};

/// Every step into one Field.
Field readAll(const FieldSource& source);

/// Refuses NaN/Inf with checkFinite's message, and returns the min and max, one step at a time.
std::pair<float, float> finiteRange(const FieldSource& source);

void checkStepIndex(const Dims4& dims, int64_t t);

}  // namespace ecnr
