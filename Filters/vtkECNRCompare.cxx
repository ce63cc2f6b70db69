#include "vtkECNRCompare.h"

#include "vtkDataArray.h"
#include "vtkDoubleArray.h"
#include "vtkFieldData.h"
#include "vtkFloatArray.h"
#include "vtkImageData.h"
#include "vtkInformation.h"
#include "vtkInformationVector.h"
#include "vtkObjectFactory.h"
#include "vtkPointData.h"

#include "ecnr/Metrics.h"

#include <cmath>

vtkStandardNewMacro(vtkECNRCompare);

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

// One time step of a 1-component numeric array as an ecnr::Field; false for other arrays.
bool toField(vtkImageData* image, vtkDataArray* a, ecnr::Field& f)
{
  if (!a || a->GetNumberOfComponents() != 1 || a->GetNumberOfTuples() != image->GetNumberOfPoints())
  {
    return false;
  }
  int dims[3];
  image->GetDimensions(dims);
  f = ecnr::Field(ecnr::Dims4{ dims[0], dims[1], dims[2], 1 });
  switch (a->GetDataType())
  {
    vtkTemplateMacro(toFloat(static_cast<const VTK_TT*>(a->GetVoidPointer(0)), f.values.data(),
      a->GetNumberOfTuples()));
    default:
      return false;
  }
  return true;
}

void addValue(vtkImageData* out, const char* name, double value)
{
  vtkDoubleArray* a = vtkDoubleArray::New();
  a->SetName(name);
  a->InsertNextValue(value);
  out->GetFieldData()->AddArray(a);
  a->Delete();
}
}

vtkECNRCompare::vtkECNRCompare()
{
  this->SetNumberOfInputPorts(2);
  this->SetInputArrayToProcess(
    0, 0, 0, vtkDataObject::FIELD_ASSOCIATION_POINTS, vtkDataSetAttributes::SCALARS);
}

int vtkECNRCompare::FillInputPortInformation(int, vtkInformation* info)
{
  info->Set(vtkAlgorithm::INPUT_REQUIRED_DATA_TYPE(), "vtkImageData");
  return 1;
}

int vtkECNRCompare::RequestData(vtkInformation*, vtkInformationVector** inVec, vtkInformationVector* outVec)
{
  vtkImageData* original = vtkImageData::GetData(inVec[0]);
  vtkImageData* decoded = vtkImageData::GetData(inVec[1]);
  vtkImageData* out = vtkImageData::GetData(outVec);
  if (!original || !decoded)
  {
    vtkErrorMacro("both inputs (original, decoded) must be image data");
    return 0;
  }
  int e0[6], e1[6];
  original->GetExtent(e0);
  decoded->GetExtent(e1);
  if (!std::equal(e0, e0 + 6, e1))
  {
    vtkErrorMacro("the original and the decoded dataset have different extents");
    return 0;
  }
  vtkDataArray* a0 = this->GetInputArrayToProcess(0, inVec);
  if (!a0 || !a0->GetName())
  {
    vtkErrorMacro("no array to compare on the original input");
    return 0;
  }
  vtkDataArray* a1 = decoded->GetPointData()->GetArray(a0->GetName());
  ecnr::Field f0, f1;
  if (!toField(original, a0, f0) || !toField(decoded, a1, f1))
  {
    vtkErrorMacro("array '" << a0->GetName()
                            << "' must be a 1-component numeric point array present in both inputs");
    return 0;
  }
  ecnr::ErrorStats stats;
  try
  {
    stats = ecnr::compareFields(f0, f1);
  }
  catch (const std::exception& e)
  {
    vtkErrorMacro(<< e.what());
    return 0;
  }
  out->ShallowCopy(decoded);
  vtkFloatArray* err = vtkFloatArray::New();
  err->SetName("AbsoluteError");
  err->SetNumberOfTuples(static_cast<vtkIdType>(f0.values.size()));
  for (size_t i = 0; i < f0.values.size(); ++i)
  {
    err->SetValue(static_cast<vtkIdType>(i), std::abs(f1.values[i] - f0.values[i]));
  }
  out->GetPointData()->AddArray(err);
  err->Delete();
  addValue(out, "PSNR", stats.psnr);
  addValue(out, "RMSE", stats.rmse);
  addValue(out, "MaxAbsError", stats.maxAbs);
  return 1;
}

void vtkECNRCompare::PrintSelf(ostream& os, vtkIndent indent)
{
  this->Superclass::PrintSelf(os, indent);
}
