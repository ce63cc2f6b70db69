/**
 * @class vtkECNRReader
 * @brief Reads an ECNR archive (.ecnr) as vtkImageData: one time step, one sub-extent, the enabled arrays.
 *
 * Thin wrapper of ecnr::Decoder (Core/, decoder only: no LibTorch). RequestInformation reads the archive's
 * header and coarsest section only (WHOLE_EXTENT, spacing, origin, TIME_STEPS/TIME_RANGE, array names) and
 * announces CAN_PRODUCE_SUB_EXTENT; RequestData decodes only the requested time step and only the blocks
 * that intersect UPDATE_EXTENT (so each MPI rank decodes its own piece), for the arrays enabled in
 * GetPointDataArraySelection().
 *
 * Scale: 0 (default) decodes every scale (full quality); k > 0 leaves out the k finest scales, reading only the
 * coarse sections of the file, for a fast preview. The preview is upsampled to the full extent, so WHOLE_EXTENT,
 * spacing and pieces stay the same whatever the scale: downstream filters, cameras, MPI pieces and comparisons
 * with the original keep working while the user moves between preview and full quality.
 *
 * The last CacheSize decoded (array, step, scale, extent) results are kept, so going back and forth in time
 * does not decode again. The output's field data carries what the decode did: ECNRBlockEvaluations (networks
 * evaluated for blocks, all arrays), ECNRDecodedExtent, ECNRScalesUsed and ECNRDecodeSeconds.
 */
#ifndef vtkECNRReader_h
#define vtkECNRReader_h

#include "ECNRReadersModule.h"  // export macro
#include "vtkImageAlgorithm.h"

class vtkDataArraySelection;

class ECNRREADERS_EXPORT vtkECNRReader : public vtkImageAlgorithm
{
public:
  static vtkECNRReader* New();
  vtkTypeMacro(vtkECNRReader, vtkImageAlgorithm);
  void PrintSelf(ostream& os, vtkIndent indent) override;

  vtkSetStringMacro(FileName);
  vtkGetStringMacro(FileName);

  /// 0 = full quality; k = leave out the k finest scales (coarse preview, upsampled to the full extent).
  vtkSetClampMacro(Scale, int, 0, 64);
  vtkGetMacro(Scale, int);

  /// Apply the archive's boundary CNN (when it has one) to full-quality decodes; a preview never does. Default on.
  vtkSetMacro(BoundaryCNN, int);
  vtkGetMacro(BoundaryCNN, int);

  /// Apply the archive's error-bounded correction (max-error / PSNR / ratio modes), when it has one, to
  /// full-quality decodes with the CNN on; without it the archive's bound does not hold. Default on.
  vtkSetMacro(ErrorCorrection, int);
  vtkGetMacro(ErrorCorrection, int);

  /// Decoded (array, time step, scale, extent) results kept for reuse.
  vtkSetClampMacro(CacheSize, int, 0, 1024);
  vtkGetMacro(CacheSize, int);

  /// Arrays of the archive; only enabled ones are decoded.
  vtkDataArraySelection* GetPointDataArraySelection() { return this->PointDataArraySelection; }

  /// Scales stored in the archive (after RequestInformation).
  int GetNumberOfScales();

  /// 1 when the file starts like an ECNR archive.
  static int CanReadFile(const char* fileName);

  vtkMTimeType GetMTime() override;

protected:
  vtkECNRReader();
  ~vtkECNRReader() override;

  int RequestInformation(vtkInformation*, vtkInformationVector**, vtkInformationVector*) override;
  int RequestData(vtkInformation*, vtkInformationVector**, vtkInformationVector*) override;

private:
  vtkECNRReader(const vtkECNRReader&) = delete;
  void operator=(const vtkECNRReader&) = delete;

  bool LoadHeader();

  char* FileName = nullptr;
  int Scale = 0;
  int BoundaryCNN = 1;
  int ErrorCorrection = 1;
  int CacheSize = 8;
  vtkDataArraySelection* PointDataArraySelection;

  struct Internals;  // loaded models and the decoded-step cache (Core types stay out of this header)
  Internals* Internal;
};

#endif
