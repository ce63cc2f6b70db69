#include "vtkECNRWriter.h"

#include "ECNRWriterSettings.h"

#include "vtkDataArray.h"
#include "vtkDataArraySelection.h"
#include "vtkDataObject.h"
#include "vtkErrorCode.h"
#include "vtkImageData.h"
#include "vtkInformation.h"
#include "vtkInformationVector.h"
#include "vtkCommunicator.h"
#include "vtkMultiProcessController.h"
#include "vtkMultiProcessStream.h"
#include "vtkObjectFactory.h"
#include "vtkPointData.h"
#include "vtkStreamingDemandDrivenPipeline.h"

#include "ecnr/Archive.h"
#include "ecnr/Encoder.h"

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <memory>

#include "ECNRStaging.h"
#include <sstream>

vtkStandardNewMacro(vtkECNRWriter);

struct vtkECNRWriter::Internals
{
  std::vector<double> inputTimes;  // TIME_STEPS of the input (empty: no time)
  int nextStep = 0;                // index of the step RequestUpdateExtent asks for
  int rank = 0;
  // Gathered while walking the steps (rank 0 only):
  int extent[6] = { 0, -1, 0, -1, 0, -1 };
  double spacing[3] = { 1, 1, 1 };
  double origin[3] = { 0, 0, 0 };
  std::vector<std::string> names;
  std::vector<double> times;
  // The series is never held: each step's arrays are converted to float and staged on disk (ECNRStaging.h),
  // one file per array, read back step by step by the encoder (on every rank under MPI).
  ecnr::Dims4 grid;  // x, y, z of the series (t: the steps staged)
  std::vector<std::unique_ptr<ecnr::StagedSeries>> staged;
  std::vector<std::unique_ptr<ecnr::FieldSource>> sources;  // the staged files, once every step is in
  std::vector<float> step;

  // One staging file per array in `directory`, for steps of this->grid.
  void startStaging(const std::string& directory)
  {
    for (size_t i = 0; i < this->names.size(); ++i)
    {
      this->staged.emplace_back(
        new ecnr::StagedSeries(directory, std::to_string(i), this->grid.voxelsPerStep()));
    }
  }
  // Every step is in: the staged files as the encoder's sources.
  void openStaged()
  {
    for (auto& s : this->staged)
    {
      this->sources.push_back(s->source(this->grid));
    }
  }

  void clearSeries()
  {
    this->sources.clear();
    this->staged.clear();  // removes the files
    this->step = std::vector<float>();
  }

  int stepCount(int writeAll) const
  {
    return writeAll && !this->inputTimes.empty() ? static_cast<int>(this->inputTimes.size()) : 1;
  }
};

namespace
{
template <typename T>
void toFloat(const T* src, float* dst, vtkIdType n)
{
  for (vtkIdType i = 0; i < n; ++i)
  {
    dst[i] = static_cast<float>(src[i]);
  }
}

// ParaView's processes (pvbatch under mpiexec) as the encoder's ranks: each scale's MLPs are split over them
// (ecnr/Comm.h), through the controller ParaView itself runs on.
class ControllerComm final : public ecnr::Comm
{
public:
  explicit ControllerComm(vtkMultiProcessController* c)
    : C(c)
  {
  }
  int rank() const override { return this->C->GetLocalProcessId(); }
  int size() const override { return this->C->GetNumberOfProcesses(); }
  void sum(double* v, size_t n) const override
  {
    std::vector<double> in(v, v + n);
    this->C->AllReduce(in.data(), v, static_cast<vtkIdType>(n), vtkCommunicator::SUM_OP);
  }
  void sum(float* v, size_t n) const override
  {
    std::vector<double> d(v, v + n);
    this->sum(d.data(), n);
    std::copy(d.begin(), d.end(), v);
  }
  void sum(int64_t* v, size_t n) const override
  {
    std::vector<long long> in(v, v + n), out(n);
    this->C->AllReduce(in.data(), out.data(), static_cast<vtkIdType>(n), vtkCommunicator::SUM_OP);
    std::copy(out.begin(), out.end(), v);
  }
  std::vector<float> gather(const std::vector<float>& mine) const override { return this->gatherTo(mine, -1); }
  std::vector<double> gather(const std::vector<double>& mine) const override { return this->gatherTo(mine, -1); }
  std::vector<float> gatherAtRoot(const std::vector<float>& mine) const override { return this->gatherTo(mine, 0); }
  void barrier() const override { this->C->Barrier(); }

private:
  vtkIdType layout(vtkIdType n, std::vector<vtkIdType>& counts, std::vector<vtkIdType>& offsets) const
  {
    counts.assign(static_cast<size_t>(this->size()), 0);
    this->C->AllGather(&n, counts.data(), 1);
    offsets.assign(counts.size(), 0);
    vtkIdType total = 0;
    for (size_t r = 0; r < counts.size(); ++r)
    {
      offsets[r] = total;
      total += counts[r];
    }
    return total;
  }
  // Every rank's values in rank order: on every rank (root < 0) or on `root` only.
  template <class T>
  std::vector<T> gatherTo(const std::vector<T>& mine, int root) const
  {
    std::vector<vtkIdType> counts, offsets;
    const vtkIdType total = this->layout(static_cast<vtkIdType>(mine.size()), counts, offsets);
    std::vector<T> all(root < 0 || this->rank() == root ? static_cast<size_t>(total) : 0);
    const vtkIdType n = static_cast<vtkIdType>(mine.size());
    if (root < 0)
    {
      this->C->AllGatherV(mine.data(), all.data(), n, counts.data(), offsets.data());
    }
    else
    {
      this->C->GatherV(mine.data(), all.data(), n, counts.data(), offsets.data(), root);
    }
    return all;
  }
  vtkMultiProcessController* C;
};

bool isConvertible(vtkDataArray* a)
{
  switch (a->GetDataType())
  {
    vtkTemplateMacro(return a->GetNumberOfComponents() == 1);
    default:
      return false;
  }
}
}

vtkECNRWriter::vtkECNRWriter()
  : PointDataArraySelection(vtkDataArraySelection::New())
  , Internal(new Internals)
{
  this->SetNumberOfInputPorts(1);
  this->SetNumberOfOutputPorts(0);
}

vtkECNRWriter::~vtkECNRWriter()
{
  this->SetFileName(nullptr);
  this->SetBlocksPerMLP(nullptr);
  this->SetEpochs(nullptr);
  this->SetDevice(nullptr);
  this->SetStagingDirectory(nullptr);
  this->PointDataArraySelection->Delete();
  delete this->Internal;
}

int vtkECNRWriter::FillInputPortInformation(int, vtkInformation* info)
{
  info->Set(vtkAlgorithm::INPUT_REQUIRED_DATA_TYPE(), "vtkImageData");
  return 1;
}

vtkTypeBool vtkECNRWriter::ProcessRequest(
  vtkInformation* request, vtkInformationVector** inInfo, vtkInformationVector* outInfo)
{
  if (request->Has(vtkDemandDrivenPipeline::REQUEST_INFORMATION()))
  {
    return this->RequestInformation(request, inInfo, outInfo);
  }
  if (request->Has(vtkStreamingDemandDrivenPipeline::REQUEST_UPDATE_EXTENT()))
  {
    return this->RequestUpdateExtent(request, inInfo, outInfo);
  }
  return this->Superclass::ProcessRequest(request, inInfo, outInfo);
}

int vtkECNRWriter::RequestInformation(vtkInformation*, vtkInformationVector** inInfo, vtkInformationVector*)
{
  vtkInformation* in = inInfo[0]->GetInformationObject(0);
  auto& d = *this->Internal;
  d.inputTimes.clear();
  if (in->Has(vtkStreamingDemandDrivenPipeline::TIME_STEPS()))
  {
    const double* t = in->Get(vtkStreamingDemandDrivenPipeline::TIME_STEPS());
    d.inputTimes.assign(t, t + in->Length(vtkStreamingDemandDrivenPipeline::TIME_STEPS()));
  }
  vtkMultiProcessController* c = vtkMultiProcessController::GetGlobalController();
  d.rank = c ? c->GetLocalProcessId() : 0;
  return 1;
}

int vtkECNRWriter::RequestUpdateExtent(vtkInformation*, vtkInformationVector** inInfo, vtkInformationVector*)
{
  vtkInformation* in = inInfo[0]->GetInformationObject(0);
  auto& d = *this->Internal;
  if (d.stepCount(this->WriteTimeSteps) > 1)
  {
    in->Set(vtkStreamingDemandDrivenPipeline::UPDATE_TIME_STEP(), d.inputTimes[d.nextStep]);
  }
  // One encoder sees the whole grid: rank 0 asks for the whole extent, the other ranks for nothing.
  int ext[6] = { 0, -1, 0, -1, 0, -1 };
  if (d.rank == 0 && in->Has(vtkStreamingDemandDrivenPipeline::WHOLE_EXTENT()))
  {
    in->Get(vtkStreamingDemandDrivenPipeline::WHOLE_EXTENT(), ext);
  }
  in->Set(vtkStreamingDemandDrivenPipeline::UPDATE_EXTENT(), ext, 6);
  in->Set(vtkStreamingDemandDrivenPipeline::UPDATE_PIECE_NUMBER(), 0);
  in->Set(vtkStreamingDemandDrivenPipeline::UPDATE_NUMBER_OF_PIECES(), 1);
  in->Set(vtkStreamingDemandDrivenPipeline::EXACT_EXTENT(), 1);
  return 1;
}

void vtkECNRWriter::Fail(const char* message)
{
  vtkErrorMacro(<< message);
  this->SetErrorCode(vtkErrorCode::UserError);
  this->Internal->clearSeries();
  this->Internal->names.clear();
}

int vtkECNRWriter::RequestData(vtkInformation* request, vtkInformationVector** inInfo, vtkInformationVector*)
{
  auto& d = *this->Internal;
  const int steps = d.stepCount(this->WriteTimeSteps);
  if (d.nextStep == 0)
  {
    this->SetErrorCode(vtkErrorCode::NoError);
    d.clearSeries();
    d.names.clear();
    d.times.clear();
  }
  bool ok = !this->FileName || !*this->FileName ? (this->Fail("no FileName set"), false) : true;
  ok = ok && this->AddStep(inInfo[0]->GetInformationObject(0));
  if (ok && this->GetAbortExecute())
  {
    vtkWarningMacro("write cancelled; no file written");
    ok = false;
  }
  ++d.nextStep;
  if (ok && d.nextStep < steps)
  {
    request->Set(vtkStreamingDemandDrivenPipeline::CONTINUE_EXECUTING(), 1);
    this->UpdateProgress(0.1 * d.nextStep / steps);
    return 1;
  }
  request->Remove(vtkStreamingDemandDrivenPipeline::CONTINUE_EXECUTING());
  d.nextStep = 0;
  // Under MPI every rank takes part in the encode (rank 0 alone read the grid): all go on, or none does.
  vtkMultiProcessController* c = vtkMultiProcessController::GetGlobalController();
  const bool parallel = c && c->GetNumberOfProcesses() > 1;
  if (parallel)
  {
    int mine = ok ? 1 : 0, all = 0;
    c->AllReduce(&mine, &all, 1, vtkCommunicator::MIN_OP);
    ok = all == 1;
  }
  if (!ok)
  {
    return 0;
  }
  const bool written = (!parallel && d.rank != 0) || this->EncodeAndWrite(parallel ? c : nullptr);
  d.clearSeries();
  return written ? 1 : 0;
}

bool vtkECNRWriter::ShareInput(vtkMultiProcessController* c)
{
  auto& d = *this->Internal;
  vtkMultiProcessStream meta;
  if (d.rank == 0)
  {
    meta << static_cast<int>(d.names.size());
    for (const std::string& n : d.names)
    {
      meta << n;
    }
    meta << static_cast<long long>(d.grid.x) << static_cast<long long>(d.grid.y)
         << static_cast<long long>(d.grid.z) << static_cast<long long>(d.staged.front()->steps())
         << static_cast<int>(d.times.size());
    for (double t : d.times)
    {
      meta << t;
    }
    for (int a = 0; a < 6; ++a)
    {
      meta << d.extent[a];
    }
    for (int a = 0; a < 3; ++a)
    {
      meta << d.spacing[a] << d.origin[a];
    }
  }
  c->Broadcast(meta, 0);
  long long steps = 0;
  std::string failure;  // a rank that cannot stage keeps receiving (no rank is left waiting), then all stop
  if (d.rank != 0)
  {
    int arrays = 0, times = 0;
    long long x = 0, y = 0, z = 0;
    meta >> arrays;
    d.names.assign(static_cast<size_t>(arrays), std::string());
    for (std::string& n : d.names)
    {
      meta >> n;
    }
    meta >> x >> y >> z >> steps >> times;
    d.times.assign(static_cast<size_t>(times), 0.0);
    for (double& v : d.times)
    {
      meta >> v;
    }
    for (int a = 0; a < 6; ++a)
    {
      meta >> d.extent[a];
    }
    for (int a = 0; a < 3; ++a)
    {
      meta >> d.spacing[a] >> d.origin[a];
    }
    d.grid = ecnr::Dims4{ x, y, z, 1 };
    try
    {
      d.startStaging(ecnr::stagingDirectory(this->StagingDirectory, this->FileName));
    }
    catch (const std::exception& e)
    {
      failure = e.what();
    }
  }
  else
  {
    steps = d.staged.front()->steps();
    d.openStaged();
  }
  // Step by step, in pieces of at most 2^30 values (MPI's counts are ints).
  d.step.resize(static_cast<size_t>(d.grid.voxelsPerStep()));
  const vtkIdType n = static_cast<vtkIdType>(d.step.size()), chunk = vtkIdType(1) << 30;
  for (size_t i = 0; i < d.names.size(); ++i)
  {
    for (long long t = 0; t < steps; ++t)
    {
      if (d.rank == 0)
      {
        d.sources[i]->readStep(t, d.step.data());
      }
      for (vtkIdType at = 0; at < n; at += chunk)
      {
        c->Broadcast(d.step.data() + at, std::min(chunk, n - at), 0);
      }
      if (d.rank != 0 && failure.empty())
      {
        try
        {
          d.staged[i]->appendStep(d.step.data());
        }
        catch (const std::exception& e)
        {
          failure = e.what();
        }
      }
    }
  }
  if (d.rank != 0 && failure.empty())
  {
    d.openStaged();
  }
  int mine = failure.empty() ? 1 : 0, all = 0;
  c->AllReduce(&mine, &all, 1, vtkCommunicator::MIN_OP);
  if (!failure.empty())
  {
    this->Fail(("rank " + std::to_string(d.rank) + ": " + failure).c_str());
  }
  return all == 1;
}

bool vtkECNRWriter::AddStep(vtkInformation* inInfo)
{
  auto& d = *this->Internal;
  if (d.rank != 0)
  {
    return true;
  }
  vtkImageData* image = vtkImageData::GetData(inInfo);
  if (!image)
  {
    this->Fail("the input is not a vtkImageData");
    return false;
  }
  int ext[6];
  image->GetExtent(ext);
  const vtkIdType n = image->GetNumberOfPoints();
  vtkPointData* pd = image->GetPointData();
  const int steps = this->Internal->stepCount(this->WriteTimeSteps);
  if (d.nextStep == 0)
  {
    std::copy(ext, ext + 6, d.extent);
    image->GetSpacing(d.spacing);
    image->GetOrigin(d.origin);
    if (n == 0)
    {
      this->Fail("the input image is empty");
      return false;
    }
    const bool all = this->PointDataArraySelection->GetNumberOfArrays() == 0;
    for (int i = 0; i < pd->GetNumberOfArrays(); ++i)
    {
      vtkAbstractArray* a = pd->GetAbstractArray(i);
      if (!a->GetName() || (!all && !this->PointDataArraySelection->ArrayIsEnabled(a->GetName())))
      {
        continue;
      }
      vtkDataArray* da = vtkDataArray::SafeDownCast(a);
      if (!da || !isConvertible(da))
      {
        std::ostringstream msg;
        msg << "point array '" << a->GetName() << "' is " << a->GetDataTypeAsString() << " with "
            << a->GetNumberOfComponents()
            << " components: ECNR compresses 1-component float, double or integer arrays";
        if (!all)
        {
          this->Fail(msg.str().c_str());
          return false;
        }
        vtkWarningMacro(<< msg.str() << " (skipped)");
        continue;
      }
      d.names.emplace_back(a->GetName());
    }
    if (d.names.empty())
    {
      this->Fail("no point array to write: the input has no selected 1-component numeric point array");
      return false;
    }
    const ecnr::Dims4 dims{ ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1, steps };
    try
    {
      ecnr::validateDims(dims);
      d.grid = ecnr::Dims4{ dims.x, dims.y, dims.z, 1 };
      d.startStaging(ecnr::stagingDirectory(this->StagingDirectory, this->FileName));
      d.step.resize(static_cast<size_t>(dims.voxelsPerStep()));
    }
    catch (const std::exception& e)
    {
      this->Fail(e.what());
      return false;
    }
  }
  else if (!std::equal(ext, ext + 6, d.extent))
  {
    this->Fail("the input extent changes over time: ECNR needs one grid for the whole series");
    return false;
  }
  double t = inInfo->Has(vtkStreamingDemandDrivenPipeline::UPDATE_TIME_STEP()) && steps > 1
    ? inInfo->Get(vtkStreamingDemandDrivenPipeline::UPDATE_TIME_STEP())
    : 0.0;
  if (image->GetInformation()->Has(vtkDataObject::DATA_TIME_STEP()))
  {
    t = image->GetInformation()->Get(vtkDataObject::DATA_TIME_STEP());
  }
  d.times.push_back(t);
  for (size_t i = 0; i < d.names.size(); ++i)
  {
    vtkDataArray* a = pd->GetArray(d.names[i].c_str());
    if (!a || a->GetNumberOfTuples() != n || !isConvertible(a))
    {
      const std::string msg = "point array '" + d.names[i] + "' is missing or changed type at time " +
        std::to_string(t);
      this->Fail(msg.c_str());
      return false;
    }
    float* dst = d.step.data();
    switch (a->GetDataType())
    {
      vtkTemplateMacro(toFloat(static_cast<const VTK_TT*>(a->GetVoidPointer(0)), dst, n));
    }
    try
    {
      d.staged[i]->appendStep(dst);
    }
    catch (const std::exception& e)
    {
      this->Fail(e.what());
      return false;
    }
  }
  return true;
}

bool vtkECNRWriter::EncodeAndWrite(vtkMultiProcessController* parallel)
{
  auto& d = *this->Internal;
  std::unique_ptr<ControllerComm> comm;
  try
  {
    if (parallel)
    {
      if (!this->ShareInput(parallel))
      {
        return false;
      }
      comm.reset(new ControllerComm(parallel));
    }
    else
    {
      d.openStaged();
    }
  }
  catch (const std::exception& e)
  {
    this->Fail(e.what());
    return false;
  }
  ecnr::WriterKnobs k;
  k.preset = this->Preset;
  k.scales = this->Scales;
  std::copy(this->BlockSize, this->BlockSize + 3, k.blockSize.begin());
  k.blocksPerMlp = this->BlocksPerMLP ? this->BlocksPerMLP : "";
  k.epochs = this->Epochs ? this->Epochs : "";
  k.latentSize = this->LatentSize;
  k.hiddenWidth = this->HiddenWidth;
  k.threshold = this->Threshold;
  k.targetRatio = this->TargetRatio;
  k.device = this->Device ? this->Device : "";
  k.seed = this->Seed;
  k.threads = this->Threads;
  k.pruning = this->Pruning;
  k.quantizationBits = this->QuantizationBits;
  k.boundaryCnn = this->BoundaryCNN;
  k.mode = this->Mode;
  k.modeValue = this->ModeValue;

  ecnr::GridMeta meta;
  for (int a = 0; a < 3; ++a)
  {
    meta.spacing[a] = d.spacing[a];
    meta.origin[a] = d.origin[a] + d.extent[2 * a] * d.spacing[a];  // the archive's grid starts at index 0
  }
  meta.times = d.times;

  const size_t arrays = d.names.size();
  std::vector<ecnr::Model> models;
  double psnrSum = 0;
  try
  {
    ecnr::EncoderSettings settings = ecnr::settingsFromKnobs(k);
    settings.comm = comm.get();  // the MLPs of each scale split over the ranks; every rank gets the same model
    for (size_t i = 0; i < arrays; ++i)
    {
      ecnr::Progress* self = nullptr;
      ecnr::Progress progress([this, &self, i, arrays](double f, const std::string& message) {
        this->SetProgressText(message.c_str());
        this->UpdateProgress(0.1 + 0.9 * (static_cast<double>(i) + f) / static_cast<double>(arrays));
        if (this->GetAbortExecute() && self)
        {
          self->cancel();
        }
      });
      self = &progress;
      meta.arrayName = d.names[i];
      std::vector<ecnr::EncodeReport> reports;
      std::vector<ecnr::Model> windows =
        ecnr::encodeWindows(*d.sources[i], meta, settings, this->TimeWindow, progress, &reports);
      double psnr = 0;  // the quality mode's measured PSNR, else the encoder's on the finest scale
      for (size_t w = 0; w < windows.size(); ++w)
      {
        const ecnr::QualityInfo& q = windows[w].residual.quality;
        psnr += q.mode != ecnr::QualityMode::Expert ? q.achievedPsnr
          : reports[w].scales.empty()              ? 0.0
                                                   : reports[w].scales.back().psnrAfter;
      }
      psnrSum += psnr / static_cast<double>(windows.size());
      models.insert(models.end(), windows.begin(), windows.end());
      d.sources[i].reset();  // the staged copy goes as soon as it is encoded
      d.staged[i].reset();
    }
    if (d.rank != 0)
    {
      return true;  // rank 0 writes
    }
    double raw = 0;
    for (const ecnr::Model& m : models)
    {
      raw += 4.0 * static_cast<double>(m.dims.count());
    }
    if (this->Append && std::filesystem::exists(this->FileName))
    {
      // The new steps become windows after the file's last step; what it holds is copied, not re-encoded.
      ecnr::appendStepsToArchive(this->FileName, models);
    }
    else
    {
      ecnr::writeArchive(models, this->FileName);
    }
    this->AchievedRatio = raw / static_cast<double>(ecnr::summarizeArchive(this->FileName).fileBytes);
    this->AchievedPSNR = psnrSum / static_cast<double>(arrays);
  }
  catch (const ecnr::Cancelled&)
  {
    vtkWarningMacro("write cancelled; " << this->FileName << " was not written");
    this->SetErrorCode(vtkErrorCode::UserError);
    return false;
  }
  catch (const std::exception& e)
  {
    this->Fail((std::string("cannot write ") + this->FileName + ": " + e.what()).c_str());
    return false;
  }
  this->UpdateProgress(1.0);
  std::ostringstream msg;
  msg << "ECNR: wrote " << this->FileName << ": " << arrays << " array(s), " << d.times.size()
      << " time step(s), compression ratio " << this->AchievedRatio << ":1, PSNR " << this->AchievedPSNR
      << " dB (encoder, finest scale)\n";
  vtkOutputWindowDisplayText(msg.str().c_str());
  this->Modified();
  return true;
}

void vtkECNRWriter::PrintSelf(ostream& os, vtkIndent indent)
{
  this->Superclass::PrintSelf(os, indent);
  os << indent << "FileName: " << (this->FileName ? this->FileName : "(none)") << "\n";
  os << indent << "WriteTimeSteps: " << this->WriteTimeSteps << "\n";
  os << indent << "Preset: " << this->Preset << "\n";
  os << indent << "Scales: " << this->Scales << "\n";
  os << indent << "BlockSize: " << this->BlockSize[0] << " " << this->BlockSize[1] << " "
     << this->BlockSize[2] << "\n";
  os << indent << "BlocksPerMLP: " << (this->BlocksPerMLP ? this->BlocksPerMLP : "") << "\n";
  os << indent << "Epochs: " << (this->Epochs ? this->Epochs : "") << "\n";
  os << indent << "LatentSize: " << this->LatentSize << "\n";
  os << indent << "HiddenWidth: " << this->HiddenWidth << "\n";
  os << indent << "Threshold: " << this->Threshold << "\n";
  os << indent << "TargetRatio: " << this->TargetRatio << "\n";
  os << indent << "Device: " << (this->Device ? this->Device : "cpu") << "\n";
  os << indent << "Seed: " << this->Seed << "\n";
  os << indent << "Threads: " << this->Threads << "\n";
  os << indent << "Pruning: " << this->Pruning << ", QuantizationBits: " << this->QuantizationBits
     << ", BoundaryCNN: " << this->BoundaryCNN << "\n";
  os << indent << "Mode: " << this->Mode << ", ModeValue: " << this->ModeValue << "\n";
  os << indent << "TimeWindow: " << this->TimeWindow << ", Append: " << this->Append << "\n";
  os << indent << "StagingDirectory: " << (this->StagingDirectory ? this->StagingDirectory : "(the output's)")
     << "\n";
  os << indent << "AchievedRatio: " << this->AchievedRatio << "\n";
  os << indent << "AchievedPSNR: " << this->AchievedPSNR << "\n";
}
