#include "ecnr/VolumeIO.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "ecnr/Archive.h"  // writeFileAtomic

namespace ecnr {
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Bytes and files

bool hostIsLittleEndian() {
  const uint16_t one = 1;
  uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

/// Reverses each `width`-byte word in place: the only cost of supporting a big-endian host.
void swapWords(uint8_t* data, size_t count, size_t width) {
  for (size_t i = 0; i < count; ++i) std::reverse(data + i * width, data + (i + 1) * width);
}

uint64_t fileSize(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error("cannot read " + path + ": it is a directory");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error("cannot read " + path + ": " + ec.message());
  return uint64_t(size);
}

/// Reads `size` bytes from the start of the file into `out`.
void readBytes(const std::string& path, void* out, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path + " for reading");
  in.read(static_cast<char*>(out), std::streamsize(size));
  if (uint64_t(in.gcount()) != size) throw Error("cannot read " + path + ": short read");
}

/// A file mapped read-only (the .npy reader: the data is converted straight from the page cache).
class MappedFile {
public:
  explicit MappedFile(const std::string& path) : size_(size_t(fileSize(path))) {
    if (size_ == 0) return;
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error("cannot open " + path + " for reading: " + std::strerror(errno));
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(err));
    data_ = static_cast<const uint8_t*>(p);
    ::madvise(p, size_, MADV_SEQUENTIAL);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  /// Drops the pages of [offset, offset + n) from this process (they are read again if touched).
  void release(size_t offset, size_t n) const {
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const size_t begin = (offset + page - 1) / page * page, end = std::min(size_, offset + n) / page * page;
    if (data_ && end > begin) ::madvise(const_cast<uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
  }

private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

bool convertNpyData(const std::string& code, const uint8_t* src, size_t count, float* dst);

/// A mapped file's values, one time step at a time: converted from the page cache, then the step's pages let go,
/// so reading the whole series (or several passes over it) never holds more than a step of the file.
class MappedSource final : public FieldSource {
public:
  MappedSource(std::shared_ptr<const MappedFile> file, size_t offset, std::string code, size_t item, const Dims4& dims)
      : file_(std::move(file)), offset_(offset), code_(std::move(code)), item_(item), dims_(dims) {}
  Dims4 dims() const override { return dims_; }
  void readStep(int64_t t, float* out) const override {
    checkStepIndex(dims_, t);
    const size_t n = size_t(dims_.voxelsPerStep()), at = offset_ + size_t(t) * n * item_;
    // In chunks of about 64 MB, each let go once converted.
    const size_t chunk = std::max<size_t>(1, (size_t(64) << 20) / item_);
    for (size_t i = 0; i < n; i += chunk) {
      const size_t m = std::min(chunk, n - i);
      if (!convertNpyData(code_, file_->data() + at + i * item_, m, out + i))
        throw Error("dtype '" + code_ + "' has no converter");  // npyItemSize and the table disagree
      file_->release(at + i * item_, m * item_);
    }
  }

private:
  std::shared_ptr<const MappedFile> file_;
  size_t offset_;
  std::string code_;
  size_t item_;
  Dims4 dims_;
};

std::vector<uint8_t> readWholeFile(const std::string& path) {
  std::vector<uint8_t> bytes(size_t(fileSize(path)));
  if (!bytes.empty()) readBytes(path, bytes.data(), bytes.size());
  return bytes;
}

/// Float32 little-endian bytes of a field; on a little-endian host the field's own memory is used as is.
void writeFloatsAtomic(const std::string& path, const std::vector<uint8_t>& prefix, const std::vector<float>& v) {
  if (hostIsLittleEndian()) {
    writeFileAtomic(path, {{prefix.data(), prefix.size()}, {reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}});
    return;
  }
  std::vector<uint8_t> bytes(v.size() * 4);
  if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
  swapWords(bytes.data(), v.size(), 4);
  writeFileAtomic(path, {{prefix.data(), prefix.size()}, {bytes.data(), bytes.size()}});
}

void checkFieldSize(const Field& f, const std::string& path) {
  validateDims(f.dims);
  if (f.values.size() != size_t(f.dims.count()))
    throw Error("cannot write " + path + ": field has " + std::to_string(f.values.size()) + " values but dims " +
                f.dims.str() + " need " + std::to_string(f.dims.count()));
}

std::string lowerExtension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext;
}

// ---------------------------------------------------------------------------------------------------------------
// NumPy .npy: magic, version, header length, a Python-literal dict, then the data.

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLength = 6;

struct NpyHeader {
  std::string descr;
  bool fortranOrder = false;
  std::vector<int64_t> shape;
  size_t dataOffset = 0;
};

/// The text after `'key':` in the header dict, with leading blanks skipped; Error if the key is missing.
size_t npyValueStart(const std::string& h, const std::string& key, const std::string& path) {
  size_t pos = h.find("'" + key + "'");
  if (pos == std::string::npos) pos = h.find("\"" + key + "\"");
  if (pos == std::string::npos) throw Error(path + ": .npy header has no '" + key + "' entry");
  pos = h.find(':', pos + key.size() + 2);
  if (pos == std::string::npos) throw Error(path + ": .npy header entry '" + key + "' has no value");
  return h.find_first_not_of(" \t", pos + 1);
}

std::string npyDescr(const std::string& h, const std::string& path) {
  const size_t start = npyValueStart(h, "descr", path);
  if (start == std::string::npos || (h[start] != '\'' && h[start] != '"'))
    throw Error(path + ": .npy 'descr' is not a simple dtype string (structured arrays are not supported)");
  const size_t end = h.find(h[start], start + 1);
  if (end == std::string::npos) throw Error(path + ": .npy 'descr' string is not terminated");
  return h.substr(start + 1, end - start - 1);
}

bool npyFortranOrder(const std::string& h, const std::string& path) {
  const size_t start = npyValueStart(h, "fortran_order", path);
  if (start != std::string::npos && h.compare(start, 4, "True") == 0) return true;
  if (start != std::string::npos && h.compare(start, 5, "False") == 0) return false;
  throw Error(path + ": .npy 'fortran_order' is neither True nor False");
}

std::vector<int64_t> npyShape(const std::string& h, const std::string& path) {
  const size_t start = npyValueStart(h, "shape", path);
  const size_t end = start == std::string::npos ? start : h.find(')', start);
  if (start == std::string::npos || h[start] != '(' || end == std::string::npos)
    throw Error(path + ": .npy 'shape' is not a tuple");
  std::vector<int64_t> shape;
  const char* p = h.c_str() + start + 1;
  const char* stop = h.c_str() + end;
  while (p < stop) {
    while (p < stop && (*p == ' ' || *p == ',')) ++p;
    if (p >= stop) break;
    char* next = nullptr;
    errno = 0;
    const long long n = std::strtoll(p, &next, 10);
    if (next == p || errno == ERANGE || n < 0) throw Error(path + ": .npy 'shape' has a bad entry");
    shape.push_back(int64_t(n));
    p = next;
  }
  return shape;
}

NpyHeader parseNpyHeader(const uint8_t* data, size_t size, const std::string& path) {
  struct View {
    const uint8_t* p;
    size_t n;
    size_t size() const { return n; }
    const uint8_t* data() const { return p; }
    uint8_t operator[](size_t i) const { return p[i]; }
  } file{data, size};
  if (file.size() < kNpyMagicLength + 4 || std::memcmp(file.data(), kNpyMagic, kNpyMagicLength) != 0)
    throw Error(path + ": not a NumPy .npy file (bad magic)");
  const int major = file[6];
  size_t lengthBytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
  if (lengthBytes == 0) throw Error(path + ": unsupported .npy version " + std::to_string(major));
  uint64_t headerLength = 0;
  for (size_t i = 0; i < lengthBytes; ++i) headerLength |= uint64_t(file[8 + i]) << (8 * i);
  const size_t start = 8 + lengthBytes;
  if (file.size() < start || headerLength > file.size() - start)
    throw Error(path + ": .npy header length " + std::to_string(headerLength) + " runs past the end of the file");
  const std::string h(reinterpret_cast<const char*>(file.data()) + start, size_t(headerLength));
  NpyHeader header;
  header.descr = npyDescr(h, path);
  header.fortranOrder = npyFortranOrder(h, path);
  header.shape = npyShape(h, path);
  header.dataOffset = start + size_t(headerLength);
  return header;
}

/// Maps a C-order shape (slowest first) to dims: (x), (y, x), (z, y, x), (t, z, y, x).
Dims4 dimsFromShape(const std::vector<int64_t>& shape, const std::string& path) {
  if (shape.empty() || shape.size() > 4)
    throw Error(path + ": .npy has " + std::to_string(shape.size()) +
                " dimensions; ECNR reads 1 to 4 ((x), (y,x), (z,y,x) or (t,z,y,x))");
  Dims4 d;
  for (size_t i = 0; i < shape.size(); ++i) d[int(i)] = shape[shape.size() - 1 - i];
  for (int64_t n : shape)
    if (n < 1) throw Error(path + ": .npy shape has an empty axis; every axis must be >= 1");
  validateDims(d);
  return d;
}

template <class T>
void convertWords(const uint8_t* src, size_t count, float* dst) {
  const bool swap = !hostIsLittleEndian() && sizeof(T) > 1;
  for (size_t i = 0; i < count; ++i) {
    uint8_t word[sizeof(T)];
    std::memcpy(word, src + i * sizeof(T), sizeof(T));
    if (swap) std::reverse(word, word + sizeof(T));
    T value;
    std::memcpy(&value, word, sizeof(T));
    dst[i] = float(value);
  }
}

/// Converts little-endian elements of the numpy type `code` ("f4", "i2", ...) to float32.
/// Returns false for a type ECNR does not read.
bool convertNpyData(const std::string& code, const uint8_t* src, size_t count, float* dst) {
  using Converter = void (*)(const uint8_t*, size_t, float*);
  static const std::pair<const char*, Converter> table[] = {
      {"f4", convertWords<float>},   {"f8", convertWords<double>},  {"i1", convertWords<int8_t>},
      {"i2", convertWords<int16_t>}, {"i4", convertWords<int32_t>}, {"i8", convertWords<int64_t>},
      {"u1", convertWords<uint8_t>}, {"u2", convertWords<uint16_t>}, {"u4", convertWords<uint32_t>},
      {"u8", convertWords<uint64_t>}};
  for (const auto& [name, convert] : table)
    if (code == name) {
      convert(src, count, dst);
      return true;
    }
  return false;
}

/// Bytes per element of a supported descr; 0 when the descr is refused.
size_t npyItemSize(const std::string& descr) {
  if (descr.size() != 3 || !(descr[0] == '<' || descr[0] == '|')) return 0;
  if (descr[0] == '|' && descr[2] != '1') return 0;  // '|' (no byte order) only makes sense for 1-byte types
  if (!(descr[1] == 'f' || descr[1] == 'i' || descr[1] == 'u')) return 0;
  if (descr[1] == 'f' && descr[2] != '4' && descr[2] != '8') return 0;
  const int bytes = descr[2] - '0';
  return (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8) ? size_t(bytes) : 0;
}

std::vector<uint8_t> npyHeaderBytes(const Dims4& d) {
  std::string shape = d.t == 1 ? "(" : "(" + std::to_string(d.t) + ", ";
  shape += std::to_string(d.z) + ", " + std::to_string(d.y) + ", " + std::to_string(d.x) + ")";
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  // The data starts on a 64-byte boundary; version 1.0 has a 2-byte header length, 2.0 a 4-byte one.
  const auto paddedTotal = [&](size_t prefix) { return (prefix + dict.size() + 1 + 63) / 64 * 64; };
  const bool v1 = paddedTotal(10) - 10 <= 65535;
  const size_t prefix = v1 ? 10 : 12;
  const size_t total = paddedTotal(prefix);
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::vector<uint8_t> out(kNpyMagic, kNpyMagic + kNpyMagicLength);
  out.push_back(v1 ? 1 : 2);
  out.push_back(0);
  for (size_t i = 0; i < prefix - 8; ++i) out.push_back(uint8_t(dict.size() >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// A small permissive JSON reader: enough for the sidecars (objects, arrays, strings, numbers, literals).

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<Json> items;                            ///< Array
  std::vector<std::pair<std::string, Json>> members;  ///< Object, in file order

  const Json* find(const std::string& key) const {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
};

class JsonParser {
public:
  JsonParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  Json parseDocument() {
    Json root = value(0);
    skipBlanks();
    if (pos_ != s_.size()) fail("unexpected text after the top-level value");
    return root;
  }

private:
  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path_ + ": invalid JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void skipBlanks() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skipBlanks();
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  bool acceptWord(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Json value(int depth) {
    if (depth > 64) fail("nesting deeper than 64");
    skipBlanks();
    if (pos_ >= s_.size()) fail("unexpected end of input");
    Json v;
    const char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') {
      v.kind = Json::String;
      v.text = string();
    } else if (acceptWord("true") || acceptWord("false")) {
      v.kind = Json::Bool;
      v.boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';  // "true" ends in "ue", "false" in "se"
    } else if (!acceptWord("null")) {
      v.kind = Json::Number;
      v.number = number();
    }
    return v;
  }

  Json object(int depth) {
    Json v;
    v.kind = Json::Object;
    expect('{');
    if (accept('}')) return v;
    do {
      skipBlanks();
      if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a quoted key");
      std::string key = string();
      expect(':');
      v.members.emplace_back(std::move(key), value(depth + 1));
    } while (accept(','));
    expect('}');
    return v;
  }

  Json array(int depth) {
    Json v;
    v.kind = Json::Array;
    expect('[');
    if (accept(']')) return v;
    do v.items.push_back(value(depth + 1));
    while (accept(','));
    expect(']');
    return v;
  }

  /// Numbers, plus the NaN / Infinity spellings that Python's json module writes.
  double number() {
    if (acceptWord("NaN")) return std::nan("");
    if (acceptWord("Infinity")) return HUGE_VAL;
    if (acceptWord("-Infinity")) return -HUGE_VAL;
    const char* begin = s_.c_str() + pos_;
    char* end = nullptr;
    const double d = std::strtod(begin, &end);
    if (end == begin) fail("expected a value");
    pos_ += size_t(end - begin);
    return d;
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      const char c = s_[pos_++];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      if (e == 'u') appendUtf8(out, codePoint());
      else out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e);
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;  // closing quote
    return out;
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    const std::string digits = s_.substr(pos_, 4);
    char* end = nullptr;
    const unsigned long v = std::strtoul(digits.c_str(), &end, 16);
    if (end != digits.c_str() + 4) fail("bad \\u escape");
    pos_ += 4;
    return unsigned(v);
  }

  /// A \uXXXX escape, joining a UTF-16 surrogate pair when one follows.
  unsigned codePoint() {
    const unsigned hi = hex4();
    if (hi >= 0xD800 && hi < 0xDC00 && s_.compare(pos_, 2, "\\u") == 0) {
      pos_ += 2;
      const unsigned lo = hex4();
      if (lo >= 0xDC00 && lo < 0xE000) return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
      return 0xFFFD;
    }
    return hi;
  }

  static void appendUtf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(char(cp));
    } else if (cp < 0x800) {
      out.push_back(char(0xC0 | (cp >> 6)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(char(0xE0 | (cp >> 12)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (cp >> 18)));
      out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Sidecars of ../shared/data: {"dims": {x, y, z, t}, "file": ...} or {"dims": ..., "arrays": {name: {"file": ...}}}

int64_t positiveCount(const Json* v, const std::string& what, const std::string& path) {
  if (!v) return 1;  // a missing axis is a unit axis
  if (v->kind != Json::Number || !(v->number >= 1) || v->number != std::floor(v->number) || v->number > 9.0e18)
    throw Error(path + ": sidecar " + what + " must be a positive integer");
  return int64_t(v->number);
}

Dims4 sidecarDims(const Json& root, const std::string& path) {
  const Json* d = root.find("dims");
  if (!d) throw Error(path + ": sidecar has no \"dims\"");
  Dims4 dims;
  if (d->kind == Json::Object) {
    if (!d->find("x")) throw Error(path + ": sidecar \"dims\" has no \"x\"");
    const char* axes[] = {"x", "y", "z", "t"};
    for (int a = 0; a < 4; ++a) dims[a] = positiveCount(d->find(axes[a]), std::string("dims.") + axes[a], path);
  } else if (d->kind == Json::Array && !d->items.empty() && d->items.size() <= 4) {
    for (size_t a = 0; a < d->items.size(); ++a) dims[int(a)] = positiveCount(&d->items[a], "dims entry", path);
  } else {
    throw Error(path + ": sidecar \"dims\" must be {\"x\":..,\"y\":..,\"z\":..,\"t\":..} or [x, y, z, t]");
  }
  validateDims(dims);
  return dims;
}

const std::string* stringMember(const Json& o, const std::string& key) {
  const Json* v = o.find(key);
  return v && v->kind == Json::String ? &v->text : nullptr;
}

/// The chosen array's name and data file (as written in the sidecar).
std::pair<std::string, std::string> sidecarArray(const Json& root, const std::string& array, const std::string& path) {
  const Json* arrays = root.find("arrays");
  if (arrays && arrays->kind == Json::Object && !arrays->members.empty()) {
    std::string names;
    for (const auto& [name, entry] : arrays->members) {
      if (array.empty() || array == name) {
        const std::string* file = entry.kind == Json::Object ? stringMember(entry, "file") : nullptr;
        if (!file) throw Error(path + ": sidecar array \"" + name + "\" has no \"file\"");
        return {name, *file};
      }
      names += (names.empty() ? "" : ", ") + name;
    }
    throw Error(path + ": sidecar has no array \"" + array + "\" (it has: " + names + ")");
  }
  const std::string* file = stringMember(root, "file");
  if (!file) throw Error(path + ": sidecar has neither \"file\" nor \"arrays\"");
  const std::string* name = stringMember(root, "name");
  if (!array.empty() && !(name && *name == array))
    throw Error(path + ": sidecar holds a single array" + (name ? " (\"" + *name + "\")" : std::string()) +
                "; there is no array \"" + array + "\"");
  return {name ? *name : std::string("scalars"), *file};
}

/// A list of numbers, or nothing when `v` is not one.
std::vector<double> numberList(const Json* v) {
  std::vector<double> out;
  if (!v || v->kind != Json::Array) return out;
  for (const Json& item : v->items) {
    if (item.kind != Json::Number) return {};
    out.push_back(item.number);
  }
  return out;
}

/// Time values from the first top-level key starting with "time" that lists one number per step; spacing and
/// origin when given as three numbers.
void fillSidecarMeta(const Json& root, const Dims4& dims, GridMeta& meta) {
  for (const auto& [key, value] : root.members) {
    if (key.compare(0, 4, "time") != 0) continue;
    std::vector<double> times = numberList(&value);
    if (int64_t(times.size()) == dims.t) {
      meta.times = std::move(times);
      break;
    }
  }
  const std::vector<double> spacing = numberList(root.find("spacing")), origin = numberList(root.find("origin"));
  if (spacing.size() == 3) std::copy(spacing.begin(), spacing.end(), meta.spacing.begin());
  if (origin.size() == 3) std::copy(origin.begin(), origin.end(), meta.origin.begin());
}

// ---------------------------------------------------------------------------------------------------------------
// Dims strings

int64_t parseCount(const std::string& token, const std::string& whole) {
  const auto bad = [&]() {
    return Error("invalid dims \"" + whole + "\": expected X,Y,Z[,T] or XxYxZ[xT] with positive integers");
  };
  size_t b = token.find_first_not_of(" \t"), e = token.find_last_not_of(" \t");
  if (b == std::string::npos) throw bad();
  const std::string digits = token.substr(b, e - b + 1);
  if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); })) throw bad();
  errno = 0;
  const long long n = std::strtoll(digits.c_str(), nullptr, 10);
  if (errno == ERANGE || n < 1) throw bad();
  return int64_t(n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

std::unique_ptr<FieldSource> openRaw(const std::string& path, const Dims4& dims) {
  validateDims(dims);
  const uint64_t expected = uint64_t(dims.count()) * 4;
  const uint64_t actual = fileSize(path);
  if (actual != expected)
    throw Error(path + ": raw float32 file has " + std::to_string(actual) + " bytes but dims " + dims.str() +
                " need " + std::to_string(expected) + " bytes");
  return std::make_unique<MappedSource>(std::make_shared<const MappedFile>(path), 0, "f4", 4, dims);
}

Field readRaw(const std::string& path, const Dims4& dims) { return readAll(*openRaw(path, dims)); }

void writeRaw(const Field& f, const std::string& path) {
  checkFieldSize(f, path);
  writeFloatsAtomic(path, {}, f.values);
}

std::unique_ptr<FieldSource> openNpy(const std::string& path) {
  auto file = std::make_shared<const MappedFile>(path);
  const NpyHeader h = parseNpyHeader(file->data(), file->size(), path);
  if (h.fortranOrder) throw Error(path + ": .npy is in Fortran order; save it C-ordered (np.ascontiguousarray)");
  const size_t item = npyItemSize(h.descr);
  if (item == 0)
    throw Error(path + ": .npy dtype '" + h.descr +
                "' is not supported (little-endian float32/64, int8-64 or uint8-64 only)");
  const Dims4 dims = dimsFromShape(h.shape, path);
  const uint64_t need = uint64_t(dims.count()) * item, have = file->size() - h.dataOffset;
  if (have < need)
    throw Error(path + ": .npy data has " + std::to_string(have) + " bytes but shape needs " + std::to_string(need));
  return std::make_unique<MappedSource>(std::move(file), h.dataOffset, h.descr.substr(1), item, dims);
}

Field readNpy(const std::string& path) { return readAll(*openNpy(path)); }

void writeNpy(const Field& f, const std::string& path) {
  checkFieldSize(f, path);
  writeFloatsAtomic(path, npyHeaderBytes(f.dims), f.values);
}

std::unique_ptr<FieldSource> openField(const std::string& path, const Dims4* dims, const std::string& array,
                                       GridMeta* meta) {
  const std::string ext = lowerExtension(path);
  std::unique_ptr<FieldSource> f;
  if (ext == ".npy") {
    f = openNpy(path);
  } else if (ext == ".json") {
    f = openSidecar(path, array, meta);
  } else {
    if (!dims) throw Error(path + ": raw input needs --dims X,Y,Z[,T] (or give a .npy file or a .json sidecar)");
    f = openRaw(path, *dims);
  }
  if (meta && !array.empty() && ext != ".json") meta->arrayName = array;  // names the single array of the file
  // Dims given for a self-describing file must agree with it, so a wrong --dims is not silently ignored.
  if (dims && *dims != f->dims())
    throw Error(path + ": file has dims " + f->dims().str() + " but " + dims->str() + " were given");
  return f;
}

std::unique_ptr<FieldSource> openSidecar(const std::string& path, const std::string& array, GridMeta* meta) {
  const std::vector<uint8_t> bytes = readWholeFile(path);
  const Json root = JsonParser(std::string(bytes.begin(), bytes.end()), path).parseDocument();
  if (root.kind != Json::Object) throw Error(path + ": sidecar is not a JSON object");
  const std::string* stored = stringMember(root, "stored_dtype");
  if (stored && *stored != "float32")
    throw Error(path + ": sidecar data is " + *stored + "; only raw float32 files are read");
  const Dims4 dims = sidecarDims(root, path);
  const auto [name, file] = sidecarArray(root, array, path);
  const fs::path dataPath = fs::path(file).is_absolute() ? fs::path(file) : fs::path(path).parent_path() / file;
  std::unique_ptr<FieldSource> f = openRaw(dataPath.string(), dims);
  if (meta) {
    meta->arrayName = name;
    fillSidecarMeta(root, dims, *meta);
  }
  return f;
}

Field readField(const std::string& path, const Dims4* dims, const std::string& array, GridMeta* meta) {
  return readAll(*openField(path, dims, array, meta));
}

Dims4 parseDims(const std::string& s) {
  const char sep = s.find(',') != std::string::npos ? ',' : 'x';
  std::vector<std::string> tokens(1);
  for (char c : s) {
    if (c == sep || (sep == 'x' && c == 'X')) tokens.emplace_back();
    else tokens.back().push_back(c);
  }
  if (tokens.size() < 3 || tokens.size() > 4)
    throw Error("invalid dims \"" + s + "\": expected X,Y,Z[,T] or XxYxZ[xT] (3 or 4 values)");
  Dims4 d;
  for (size_t a = 0; a < tokens.size(); ++a) d[int(a)] = parseCount(tokens[a], s);
  validateDims(d);
  return d;
}

}  // namespace ecnr
