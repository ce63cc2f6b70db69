// Progress: the one mechanism by which every long stage reports progress and is cancelled.
// The CLI prints it as a line with ETA; the VTK writer forwards it to UpdateProgress / AbortExecute.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "ecnr/Field.h"

namespace ecnr {

class Cancelled : public Error {
public:
  Cancelled() : Error("operation cancelled") {}
};

class Progress {
public:
  /// fraction in [0, 1] over the whole job; message says what is running.
  using Callback = std::function<void(double fraction, const std::string& message)>;

  Progress() = default;
  explicit Progress(Callback cb) : callback_(std::move(cb)) {}

  void report(double fraction, const std::string& message) const {
    if (callback_) callback_(fraction, message);
  }
  /// Throws Cancelled when cancel() was called; long loops call this between steps.
  void checkCancel() const {
    if (cancelled_.load()) throw Cancelled();
  }
  void cancel() { cancelled_.store(true); }
  bool isCancelled() const { return cancelled_.load(); }

private:
  Callback callback_;
  std::atomic<bool> cancelled_{false};
};

/// Wall-clock stopwatch in seconds.
class Timer {
public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ecnr
