#include "ECNRStaging.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ecnr/VolumeIO.h"

namespace ecnr
{
StagedSeries::StagedSeries(const std::string& directory, const std::string& label, int64_t voxelsPerStep)
  : VoxelsPerStep(voxelsPerStep)
{
  static std::atomic<unsigned> counter{ 0 };
  const std::filesystem::path dir = directory.empty() ? std::filesystem::path(".") : std::filesystem::path(directory);
  for (int attempt = 0; attempt < 100 && this->Fd < 0; ++attempt)
  {
    this->Path = (dir / (".ecnr-staging-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                          label + ".f32"))
                   .string();
    this->Fd = ::open(this->Path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (this->Fd < 0 && errno != EEXIST)
    {
      throw Error("cannot create the staging file " + this->Path + ": " + std::strerror(errno) +
        " (set the writer's StagingDirectory to a folder with room for the raw series)");
    }
  }
  if (this->Fd < 0)
  {
    throw Error("cannot create a staging file in " + dir.string());
  }
}

StagedSeries::~StagedSeries()
{
  if (this->Fd >= 0)
  {
    ::close(this->Fd);
  }
  std::error_code ec;
  std::filesystem::remove(this->Path, ec);
}

void StagedSeries::appendStep(const float* values)
{
  if (this->Fd < 0)
  {
    throw Error("staging file " + this->Path + " is closed for writing");
  }
  const char* p = reinterpret_cast<const char*>(values);
  size_t left = static_cast<size_t>(this->VoxelsPerStep) * sizeof(float);
  while (left > 0)
  {
    const ssize_t n = ::write(this->Fd, p, left);
    if (n < 0 && errno == EINTR)
    {
      continue;
    }
    if (n <= 0)
    {
      const int err = n < 0 ? errno : ENOSPC;
      throw Error("cannot write the staging file " + this->Path + " (time step " + std::to_string(this->Steps) +
        "): " + std::strerror(err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  ++this->Steps;
}

std::unique_ptr<FieldSource> StagedSeries::source(const Dims4& grid)
{
  if (this->Fd >= 0)
  {
    const int closed = ::close(this->Fd);
    this->Fd = -1;
    if (closed != 0)
    {
      throw Error("cannot write the staging file " + this->Path + ": " + std::strerror(errno));
    }
  }
  Dims4 d = grid;
  d.t = this->Steps;
  return openRaw(this->Path, d);  // the map stays valid after the file is removed
}

std::string stagingDirectory(const char* requested, const char* outputFile)
{
  if (requested && *requested)
  {
    return requested;
  }
  const std::filesystem::path parent = std::filesystem::path(outputFile ? outputFile : "").parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}
}
