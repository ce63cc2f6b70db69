/**
 * @class vtkECNRCompare
 * @brief Compares an original and a decoded image dataset: where the compression error lands, and how large.
 *
 * Input 0 is the original, input 1 the decoded dataset (for example the ECNR reader's output) on the same grid.
 * The array chosen with SetInputArrayToProcess(0, ...) on input 0 is compared with the array of the same name on
 * input 1. The output is input 1 with an added point array "AbsoluteError" = |decoded - original|, and field
 * data PSNR (dB, over the original's range), RMSE and MaxAbsError, computed by ecnr::compareFields (Core/).
 */
#ifndef vtkECNRCompare_h
#define vtkECNRCompare_h

#include "ECNRFiltersModule.h"  // export macro
#include "vtkImageAlgorithm.h"

class ECNRFILTERS_EXPORT vtkECNRCompare : public vtkImageAlgorithm
{
public:
  static vtkECNRCompare* New();
  vtkTypeMacro(vtkECNRCompare, vtkImageAlgorithm);
  void PrintSelf(ostream& os, vtkIndent indent) override;

  /// Convenience: the decoded dataset (input port 1).
  void SetDecodedConnection(vtkAlgorithmOutput* output) { this->SetInputConnection(1, output); }

protected:
  vtkECNRCompare();
  ~vtkECNRCompare() override = default;

  int FillInputPortInformation(int port, vtkInformation* info) override;
  int RequestData(vtkInformation*, vtkInformationVector**, vtkInformationVector*) override;

private:
  vtkECNRCompare(const vtkECNRCompare&) = delete;
  void operator=(const vtkECNRCompare&) = delete;
};

#endif
