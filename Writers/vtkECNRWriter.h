/**
 * @class vtkECNRWriter
 * @brief Writes a whole time series of vtkImageData point arrays into one ECNR archive (.ecnr).
 *
 * Thin wrapper of ecnr::encode (Core/): it walks every input time step itself (UPDATE_TIME_STEP +
 * CONTINUE_EXECUTING), converts the selected point arrays (float, double, any integer type; 1 component) to
 * float fields, encodes each array with its own model and writes them into one archive atomically (a failed or
 * cancelled write leaves no partial file and keeps an older file of that name). The archive stores the time
 * values, the extent (as dims; a nonzero extent start is folded into the origin), spacing and origin.
 * Under MPI every rank takes part in the pipeline but only rank 0 asks for (and encodes) the whole extent.
 */
#ifndef vtkECNRWriter_h
#define vtkECNRWriter_h

#include "ECNRWritersModule.h"  // export macro
#include "vtkWriter.h"

class vtkDataArraySelection;
class vtkMultiProcessController;

class ECNRWRITERS_EXPORT vtkECNRWriter : public vtkWriter
{
public:
  static vtkECNRWriter* New();
  vtkTypeMacro(vtkECNRWriter, vtkWriter);
  void PrintSelf(ostream& os, vtkIndent indent) override;

  vtkSetStringMacro(FileName);
  vtkGetStringMacro(FileName);

  /// 1 (default): write every time step of the input; 0: only the step the pipeline asks for.
  vtkSetMacro(WriteTimeSteps, int);
  vtkGetMacro(WriteTimeSteps, int);

  /// Point arrays to write. Empty selection = every numeric 1-component point array.
  vtkDataArraySelection* GetPointDataArraySelection() { return this->PointDataArraySelection; }

  /// 0 fast, 1 default, 2 quality (ecnr::presetSettings).
  vtkSetClampMacro(Preset, int, 0, 2);
  vtkGetMacro(Preset, int);

  ///@{
  /// Expert settings; 0 / empty = the preset's value or one derived from the data.
  vtkSetMacro(Scales, int);
  vtkGetMacro(Scales, int);
  vtkSetVector3Macro(BlockSize, int);
  vtkGetVector3Macro(BlockSize, int);
  vtkSetStringMacro(BlocksPerMLP);
  vtkGetStringMacro(BlocksPerMLP);
  vtkSetStringMacro(Epochs);
  vtkGetStringMacro(Epochs);
  vtkSetMacro(LatentSize, int);
  vtkGetMacro(LatentSize, int);
  vtkSetMacro(HiddenWidth, int);
  vtkGetMacro(HiddenWidth, int);
  vtkSetMacro(Threshold, double);
  vtkGetMacro(Threshold, double);
  vtkSetMacro(TargetRatio, double);
  vtkGetMacro(TargetRatio, double);
  vtkSetStringMacro(Device);
  vtkGetStringMacro(Device);
  vtkSetMacro(Seed, int);
  vtkGetMacro(Seed, int);
  vtkSetMacro(Threads, int);
  vtkGetMacro(Threads, int);
  /// Deep compression (paper Sec. 3.5) and the boundary CNN (Sec. 3.6).
  vtkSetMacro(Pruning, int);
  vtkGetMacro(Pruning, int);
  vtkSetMacro(QuantizationBits, int);
  vtkGetMacro(QuantizationBits, int);
  vtkSetMacro(BoundaryCNN, int);
  vtkGetMacro(BoundaryCNN, int);
  /// Quality mode: 0 Expert (the settings above), 1 Ratio, 2 PSNR (dB), 3 Max error (data units), 4 Max
  /// relative error (fraction of each array's range); ModeValue is the one number the mode takes.
  vtkSetClampMacro(Mode, int, 0, 4);
  vtkGetMacro(Mode, int);
  vtkSetMacro(ModeValue, double);
  vtkGetMacro(ModeValue, double);
  /// Encode the series as independent windows of this many time steps (0 = one window): a reader then decodes a
  /// step from its window only, and `ecnr append` can add windows later (ecnr/Series.h).
  vtkSetClampMacro(TimeWindow, int, 0, VTK_INT_MAX);
  vtkGetMacro(TimeWindow, int);
  /// When FileName exists: add the written steps to it as new time windows after its last step (a pvbatch script
  /// walking a running simulation's output), copying what it holds; every array of it must be written again.
  vtkSetMacro(Append, int);
  vtkGetMacro(Append, int);
  vtkBooleanMacro(Append, int);
  /// Where the series is staged while the writer walks its time steps (one float32 file per array, removed after
  /// the write): the writer never holds the series in memory. Empty: the output file's directory.
  vtkSetStringMacro(StagingDirectory);
  vtkGetStringMacro(StagingDirectory);
  ///@}

  ///@{
  /// Results of the last successful write: file size / raw float32 size, and the mean PSNR (dB) of the arrays
  /// at the finest scale as measured by the encoder's closed loop.
  vtkGetMacro(AchievedRatio, double);
  vtkGetMacro(AchievedPSNR, double);
  ///@}

protected:
  vtkECNRWriter();
  ~vtkECNRWriter() override;

  vtkTypeBool ProcessRequest(
    vtkInformation* request, vtkInformationVector** inInfo, vtkInformationVector* outInfo) override;
  int FillInputPortInformation(int port, vtkInformation* info) override;
  int RequestInformation(vtkInformation*, vtkInformationVector** inInfo, vtkInformationVector*);
  int RequestUpdateExtent(vtkInformation*, vtkInformationVector** inInfo, vtkInformationVector*);
  int RequestData(vtkInformation* request, vtkInformationVector** inInfo, vtkInformationVector*) override;
  void WriteData() override {}

private:
  vtkECNRWriter(const vtkECNRWriter&) = delete;
  void operator=(const vtkECNRWriter&) = delete;

  bool AddStep(vtkInformation* inInfo);  // stages the current step's arrays; false on error
  // The last step arrived: encode (under MPI on every rank, `parallel` its controller) and write (rank 0).
  bool EncodeAndWrite(vtkMultiProcessController* parallel);
  // Rank 0's grid and staged arrays to every rank's own staging files; false (on every rank) when one fails.
  bool ShareInput(vtkMultiProcessController* c);
  void Fail(const char* message);

  char* FileName = nullptr;
  int WriteTimeSteps = 1;
  vtkDataArraySelection* PointDataArraySelection;
  int Preset = 1;
  int Scales = 3;
  int BlockSize[3] = { 0, 0, 0 };
  char* BlocksPerMLP = nullptr;
  char* Epochs = nullptr;
  int LatentSize = 8;
  int HiddenWidth = 24;
  double Threshold = 1e-4;
  double TargetRatio = 0;
  char* Device = nullptr;
  int Seed = 1;
  int Threads = 0;
  int Pruning = 0;
  int QuantizationBits = 8;
  int BoundaryCNN = 1;
  int Mode = 0;
  double ModeValue = 0;
  int TimeWindow = 0;
  int Append = 0;
  char* StagingDirectory = nullptr;
  double AchievedRatio = 0;
  double AchievedPSNR = 0;

  struct Internals;  // the fields being gathered (Core types stay out of this header)
  Internals* Internal;
};

#endif
