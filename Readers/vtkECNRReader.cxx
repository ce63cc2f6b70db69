#include "vtkECNRReader.h"

#include "vtkCommand.h"
#include "vtkDataArraySelection.h"
#include "vtkDoubleArray.h"
#include "vtkFieldData.h"
#include "vtkFloatArray.h"
#include "vtkIdTypeArray.h"
#include "vtkImageData.h"
#include "vtkInformation.h"
#include "vtkInformationVector.h"
#include "vtkIntArray.h"
#include "vtkObjectFactory.h"
#include "vtkPointData.h"
#include "vtkSmartPointer.h"
#include "vtkStreamingDemandDrivenPipeline.h"

#include "ecnr/Archive.h"
#include "ecnr/Decoder.h"
#include "ecnr/Series.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <list>

vtkStandardNewMacro(vtkECNRReader);

struct vtkECNRReader::Internals
{
  std::string path;  // what `header` was read from, and when
  std::filesystem::file_time_type stamp;
  std::vector<ecnr::Model> header;  // coarsest scale of every part: array and time window (RequestInformation)
  std::vector<ecnr::SeriesView> arrays;  // the arrays, each its time windows (pointing into header)
  int scales = 0;                    // scales stored per array (from the table of contents)
  std::vector<ecnr::Model> models;   // every scale, loaded by the first RequestData
  std::vector<double> times;
  struct Entry
  {
    int array;
    int64_t step;
    int scales;
    ecnr::Extent extent;
    int switches;  // the decode switches it was made with: 1 boundary CNN, 2 error-bounded correction
    vtkSmartPointer<vtkFloatArray> values;
  };
  std::list<Entry> cache;  // most recent first

  void reset()
  {
    this->header.clear();
    this->arrays.clear();
    this->scales = 0;
    this->models.clear();
    this->cache.clear();
    this->times.clear();
  }
  int scaleCount() const { return this->scales; }
};

vtkECNRReader::vtkECNRReader()
  : PointDataArraySelection(vtkDataArraySelection::New())
  , Internal(new Internals)
{
  this->SetNumberOfInputPorts(0);
  this->SetNumberOfOutputPorts(1);
  // Enabling or disabling an array must re-execute the reader.
  this->PointDataArraySelection->AddObserver(vtkCommand::ModifiedEvent, this, &vtkECNRReader::Modified);
}

vtkECNRReader::~vtkECNRReader()
{
  this->SetFileName(nullptr);
  this->PointDataArraySelection->Delete();
  delete this->Internal;
}

vtkMTimeType vtkECNRReader::GetMTime()
{
  return std::max(this->Superclass::GetMTime(), this->PointDataArraySelection->GetMTime());
}

int vtkECNRReader::CanReadFile(const char* fileName)
{
  static const unsigned char magic[8] = { 0x45, 0x43, 0x4E, 0x52, 0x89, 0x0D, 0x0A, 0x1A };
  std::ifstream in(fileName ? fileName : "", std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::memcmp(head, magic, 8) == 0 ? 1 : 0;
}

int vtkECNRReader::GetNumberOfScales()
{
  return this->Internal->scaleCount();
}

bool vtkECNRReader::LoadHeader()
{
  auto& d = *this->Internal;
  if (!this->FileName || !*this->FileName)
  {
    vtkErrorMacro("no FileName set");
    return false;
  }
  try
  {
    const auto stamp = std::filesystem::last_write_time(this->FileName);
    if (!d.header.empty() && d.path == this->FileName && d.stamp == stamp)
    {
      return true;
    }
    d.reset();
    d.header = ecnr::readArchive(this->FileName, 1);
    for (const ecnr::SectionInfo& section : ecnr::summarizeArchive(this->FileName).sections)
    {
      d.scales += section.type == ecnr::SectionType::Scale && section.array == 0 ? 1 : 0;
    }
    d.path = this->FileName;
    d.stamp = stamp;
  }
  catch (const std::exception& e)
  {
    d.reset();
    vtkErrorMacro("cannot read " << this->FileName << ": " << e.what());
    return false;
  }
  // A long series may be stored as time windows (ecnr/Series.h): the arrays are the series, their time steps
  // all windows' steps; every array has the same steps (the archive reader checks it).
  d.arrays = ecnr::seriesOf(d.header);
  d.times = d.arrays.front().times();
  std::vector<const char*> names;
  for (const auto& a : d.arrays)
  {
    names.push_back(a.name.c_str());
  }
  this->PointDataArraySelection->SetArraysWithDefault(names.data(), static_cast<int>(names.size()), 1);
  return true;
}

int vtkECNRReader::RequestInformation(vtkInformation*, vtkInformationVector**, vtkInformationVector* outVec)
{
  if (!this->LoadHeader())
  {
    return 0;
  }
  auto& d = *this->Internal;
  const ecnr::Model& m = d.header[0];
  vtkInformation* out = outVec->GetInformationObject(0);
  const int whole[6] = { 0, static_cast<int>(m.dims.x - 1), 0, static_cast<int>(m.dims.y - 1), 0,
    static_cast<int>(m.dims.z - 1) };
  out->Set(vtkStreamingDemandDrivenPipeline::WHOLE_EXTENT(), whole, 6);
  out->Set(vtkDataObject::SPACING(), m.meta.spacing.data(), 3);
  out->Set(vtkDataObject::ORIGIN(), m.meta.origin.data(), 3);
  out->Set(vtkStreamingDemandDrivenPipeline::TIME_STEPS(), d.times.data(), static_cast<int>(d.times.size()));
  const double range[2] = { d.times.front(), d.times.back() };
  out->Set(vtkStreamingDemandDrivenPipeline::TIME_RANGE(), range, 2);
  out->Set(CAN_PRODUCE_SUB_EXTENT(), 1);
  vtkDataObject::SetPointDataActiveScalarInfo(out, VTK_FLOAT, 1);
  return 1;
}

int vtkECNRReader::RequestData(vtkInformation*, vtkInformationVector**, vtkInformationVector* outVec)
{
  if (!this->LoadHeader())
  {
    return 0;
  }
  auto& d = *this->Internal;
  vtkInformation* outInfo = outVec->GetInformationObject(0);
  vtkImageData* out = vtkImageData::GetData(outInfo);
  int ext[6];
  outInfo->Get(vtkStreamingDemandDrivenPipeline::UPDATE_EXTENT(), ext);
  out->SetExtent(ext);
  out->SetSpacing(d.header[0].meta.spacing.data());
  out->SetOrigin(d.header[0].meta.origin.data());

  // Time: the last step at or before the requested time (a small tolerance absorbs rounding).
  int64_t step = 0;
  if (outInfo->Has(vtkStreamingDemandDrivenPipeline::UPDATE_TIME_STEP()))
  {
    const double t = outInfo->Get(vtkStreamingDemandDrivenPipeline::UPDATE_TIME_STEP());
    const double tol = 1e-9 * std::max(1.0, std::abs(d.times.back() - d.times.front()));
    step = std::upper_bound(d.times.begin(), d.times.end(), t + tol) - d.times.begin() - 1;
    step = std::max<int64_t>(0, std::min<int64_t>(step, static_cast<int64_t>(d.times.size()) - 1));
  }
  out->GetInformation()->Set(vtkDataObject::DATA_TIME_STEP(), d.times[static_cast<size_t>(step)]);

  const int scales = std::max(1, d.scaleCount() - this->Scale);
  const ecnr::Extent box{ ext[0], ext[1], ext[2], ext[3], ext[4], ext[5] };
  const bool empty = ext[1] < ext[0] || ext[3] < ext[2] || ext[5] < ext[4];
  vtkIdType evaluations = 0;
  ecnr::Timer timer;
  const int arrays = static_cast<int>(d.arrays.size());
  const int switches = (this->BoundaryCNN != 0 ? 1 : 0) | (this->ErrorCorrection != 0 ? 2 : 0);
  for (int i = 0; i < arrays && !empty; ++i)
  {
    const std::string& name = d.arrays[i].name;
    if (!this->PointDataArraySelection->ArrayIsEnabled(name.c_str()))
    {
      continue;
    }
    // The time window holding the step, and the step's index in it: only that window is decoded.
    const std::pair<const ecnr::Model*, int64_t> found = d.arrays[i].locate(step);
    const int a = static_cast<int>(found.first - d.header.data());
    const int64_t local = found.second;
    auto hit = std::find_if(d.cache.begin(), d.cache.end(), [&](const Internals::Entry& e) {
      return e.array == a && e.step == local && e.scales == scales && e.extent == box && e.switches == switches;
    });
    vtkSmartPointer<vtkFloatArray> values;
    if (hit != d.cache.end())
    {
      values = hit->values;
      d.cache.splice(d.cache.begin(), d.cache, hit);
    }
    else
    {
      try
      {
        if (d.models.empty())
        {
          // The whole model, kept: a preview (Scale > 0) evaluates only the coarse scales' networks, but the
          // decoder needs every scale's grid to upsample it to the full extent (see README, "ParaView").
          d.models = ecnr::readArchive(this->FileName);
        }
        ecnr::Decoder decoder(d.models[static_cast<size_t>(a)]);
        decoder.setBoundaryCnn(this->BoundaryCNN != 0);
        decoder.setResidual(this->ErrorCorrection != 0);
        ecnr::Field field = decoder.decodeRegion(local, box, scales);
        evaluations += decoder.lastBlockEvaluations();
        values = vtkSmartPointer<vtkFloatArray>::New();
        values->SetName(name.c_str());
        values->SetNumberOfTuples(static_cast<vtkIdType>(field.values.size()));
        std::copy(field.values.begin(), field.values.end(), values->GetPointer(0));
      }
      catch (const std::exception& e)
      {
        vtkErrorMacro("cannot decode '" << name << "' from " << this->FileName << ": " << e.what());
        return 0;
      }
      if (this->CacheSize > 0)
      {
        d.cache.push_front({ a, local, scales, box, switches, values });
        if (static_cast<int>(d.cache.size()) > this->CacheSize)
        {
          d.cache.pop_back();
        }
      }
    }
    out->GetPointData()->AddArray(values);
    if (!out->GetPointData()->GetScalars())
    {
      out->GetPointData()->SetActiveScalars(name.c_str());
    }
    this->UpdateProgress(static_cast<double>(i + 1) / arrays);
  }

  auto addField = [out](vtkDataArray* array, const char* name) {
    array->SetName(name);
    out->GetFieldData()->AddArray(array);
    array->Delete();
  };
  vtkIdTypeArray* evals = vtkIdTypeArray::New();
  evals->InsertNextValue(evaluations);
  addField(evals, "ECNRBlockEvaluations");
  vtkIntArray* extent = vtkIntArray::New();
  extent->SetNumberOfValues(6);
  std::copy(ext, ext + 6, extent->GetPointer(0));
  addField(extent, "ECNRDecodedExtent");
  vtkIntArray* used = vtkIntArray::New();
  used->InsertNextValue(scales);
  addField(used, "ECNRScalesUsed");
  vtkDoubleArray* seconds = vtkDoubleArray::New();
  seconds->InsertNextValue(timer.seconds());
  addField(seconds, "ECNRDecodeSeconds");
  return 1;
}

void vtkECNRReader::PrintSelf(ostream& os, vtkIndent indent)
{
  this->Superclass::PrintSelf(os, indent);
  os << indent << "FileName: " << (this->FileName ? this->FileName : "(none)") << "\n";
  os << indent << "Scale: " << this->Scale << "\n";
  os << indent << "CacheSize: " << this->CacheSize << "\n";
  os << indent << "BoundaryCNN: " << this->BoundaryCNN << "\n";
  os << indent << "ErrorCorrection: " << this->ErrorCorrection << "\n";
  os << indent << "NumberOfScales: " << this->Internal->scaleCount() << "\n";
}
