// MemoryEstimate: how much memory an encode or a decode will need, from the dims and settings alone, so that a job
// that cannot fit is refused with a clear message before anything large is allocated (instead of being killed by
// the kernel half-way, or failing with std::bad_alloc). Callers: the CLI's `compress` / `decompress`; the encoder
// and the ParaView writer/reader can call checkMemory() the same way.
#pragma once

#include <cstdint>
#include <string>

#include "ecnr/Field.h"
#include "ecnr/Model.h"
#include "ecnr/Settings.h"

namespace ecnr {

/// Peak resident bytes of encode() on a field of `dims` with these settings: the input field itself included
/// when `inputHeld` (a Field in memory), not when it is read step by step from a mapped file (FieldSource.h;
/// the quality modes hold it either way). Deliberately on the high side (every block of every scale counted as
/// effective, vectors at worst-case capacity, the LibTorch runtime); saturates at UINT64_MAX instead of
/// overflowing, so absurd dims give an absurd answer.
uint64_t estimateEncoderPeakBytes(const Dims4& dims, const ResolvedSettings& settings, bool inputHeld = true);

/// Peak bytes of Decoder::decodeAll(scales, fullResolution) on this model (the model's own arrays included).
/// A 1 KB archive may legitimately claim a huge constant grid; this is what lets a reader refuse it up front.
uint64_t estimateDecoderPeakBytes(const Model& model, int scales = -1, bool fullResolution = true);

/// Bytes of a parsed model's arrays in memory (block table, latents, weights and biases as float32): what a
/// decoder holds besides the voxels it produces.
uint64_t modelMemoryBytes(const Model& model);

/// MemAvailable from /proc/meminfo, in bytes; 0 when it cannot be read (then no check against it is made).
uint64_t availableMemoryBytes();

/// "1048576", "512K", "300M", "1.5G", "2T" (binary multiples; an optional trailing "B" or "iB"). Throws Error.
uint64_t parseByteSize(const std::string& text);

/// "1.5 GiB", "300.0 MiB", "512 bytes".
std::string formatBytes(uint64_t bytes);

/// Throws Error("<what> needs about X of memory, more than <limitName> (Y)...") when need > limit; limit 0 = none.
void checkMemory(uint64_t need, uint64_t limit, const std::string& what, const std::string& limitName);

}  // namespace ecnr
