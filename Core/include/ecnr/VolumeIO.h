// VolumeIO: reading and writing fields as raw little-endian float32 (dims given by the user), NumPy .npy
// (float32/float64/int/uint, C order; 3D = (z, y, x), 4D = (t, z, y, x)), and the JSON sidecars of ../shared/data.
#pragma once

#include <string>

#include <memory>

#include "ecnr/Field.h"
#include "ecnr/FieldSource.h"

namespace ecnr {

/// Raw float32 little-endian; the file size must equal dims.count() * 4 exactly.
Field readRaw(const std::string& path, const Dims4& dims);
void writeRaw(const Field& f, const std::string& path);  ///< atomic

/// .npy of dtype <f4, <f8, <i1/2/4/8, <u1/2/4/8 (converted to float32); 1D-4D shapes in C order map to x fastest.
Field readNpy(const std::string& path);
void writeNpy(const Field& f, const std::string& path);  ///< <f4, shape (t, z, y, x), atomic

/// Reads by extension: .npy, or .json (a ../shared/data sidecar: dims, file, arrays; `array` picks one of
/// several arrays, empty = the first), or raw with dims.
Field readField(const std::string& path, const Dims4* dims, const std::string& array = "", GridMeta* meta = nullptr);

/// The same files as sources read one time step at a time through a memory map (the encoder's input: the series
/// is never held whole; each step's file pages are let go once read). All checks are made when the file is opened.
std::unique_ptr<FieldSource> openRaw(const std::string& path, const Dims4& dims);
std::unique_ptr<FieldSource> openNpy(const std::string& path);
std::unique_ptr<FieldSource> openSidecar(const std::string& path, const std::string& array = "",
                                         GridMeta* meta = nullptr);
std::unique_ptr<FieldSource> openField(const std::string& path, const Dims4* dims, const std::string& array = "",
                                       GridMeta* meta = nullptr);

/// Parses "X,Y,Z[,T]" or "XxYxZ[xT]".
Dims4 parseDims(const std::string& s);

}  // namespace ecnr
