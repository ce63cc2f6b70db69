#include "pqECNRSizeEstimateWidget.h"

#include "ECNRWriterSettings.h"
#include "ecnr/SizeModel.h"

#include "pqCoreUtilities.h"
#include "vtkCommand.h"
#include "vtkPVDataInformation.h"
#include "vtkSMProperty.h"
#include "vtkSMPropertyHelper.h"
#include "vtkSMProxy.h"
#include "vtkSMSourceProxy.h"
#include "vtkSMUncheckedPropertyHelper.h"

#include <QHBoxLayout>
#include <QLabel>

namespace
{
const char* const watched[] = { "Input", "Preset", "Scales", "BlockSize", "TargetRatio", "BlocksPerMLP", "Epochs",
  "LatentSize", "HiddenWidth", "Threshold", "PointDataArrays", "WriteTimeSteps" };

QString bytesText(double bytes)
{
  const char* units[] = { "B", "KB", "MB", "GB", "TB" };
  int u = 0;
  while (bytes >= 1024.0 && u < 4)
  {
    bytes /= 1024.0;
    ++u;
  }
  return QString("%1 %2").arg(bytes, 0, 'f', u == 0 ? 0 : 1).arg(units[u]);
}
}

pqECNRSizeEstimateWidget::pqECNRSizeEstimateWidget(vtkSMProxy* proxy, vtkSMProperty*, QWidget* parent)
  : Superclass(proxy, parent)
  , Label(new QLabel(this))
{
  this->setShowLabel(true);
  this->Label->setObjectName("ECNRSizeEstimate");
  this->Label->setWordWrap(true);
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(this->Label);
  for (const char* name : watched)
  {
    if (vtkSMProperty* p = proxy->GetProperty(name))
    {
      pqCoreUtilities::connect(p, vtkCommand::UncheckedPropertyModifiedEvent, this, SLOT(updateEstimate()));
      pqCoreUtilities::connect(p, vtkCommand::ModifiedEvent, this, SLOT(updateEstimate()));
    }
  }
  this->updateEstimate();
}

pqECNRSizeEstimateWidget::~pqECNRSizeEstimateWidget() = default;

void pqECNRSizeEstimateWidget::updateEstimate()
{
  this->Label->setText(this->estimateText());
}

QString pqECNRSizeEstimateWidget::estimateText()
{
  vtkSMProxy* proxy = this->proxy();
  auto* input = vtkSMSourceProxy::SafeDownCast(vtkSMPropertyHelper(proxy, "Input").GetAsProxy());
  if (!input)
  {
    return tr("(no input)");
  }
  const unsigned int port = vtkSMPropertyHelper(proxy, "Input").GetOutputPort();
  vtkPVDataInformation* info = input->GetDataInformation(port);
  const int* ext = info ? info->GetExtent() : nullptr;
  if (!ext || ext[1] < ext[0])
  {
    return tr("(input has no image extent yet)");
  }
  ecnr::Dims4 dims{ ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1, 1 };
  if (vtkSMUncheckedPropertyHelper(proxy, "WriteTimeSteps").GetAsInt() != 0)
  {
    dims.t = std::max<int64_t>(1, info->GetNumberOfTimeSteps());
  }
  ecnr::WriterKnobs k;
  k.preset = vtkSMUncheckedPropertyHelper(proxy, "Preset").GetAsInt();
  k.scales = vtkSMUncheckedPropertyHelper(proxy, "Scales").GetAsInt();
  vtkSMUncheckedPropertyHelper block(proxy, "BlockSize");
  for (int a = 0; a < 3; ++a)
  {
    k.blockSize[a] = block.GetAsInt(a);
  }
  k.targetRatio = vtkSMUncheckedPropertyHelper(proxy, "TargetRatio").GetAsDouble();
  k.blocksPerMlp = vtkSMUncheckedPropertyHelper(proxy, "BlocksPerMLP").GetAsString();
  k.epochs = vtkSMUncheckedPropertyHelper(proxy, "Epochs").GetAsString();
  k.latentSize = vtkSMUncheckedPropertyHelper(proxy, "LatentSize").GetAsInt();
  k.hiddenWidth = vtkSMUncheckedPropertyHelper(proxy, "HiddenWidth").GetAsInt();
  k.threshold = vtkSMUncheckedPropertyHelper(proxy, "Threshold").GetAsDouble();
  const unsigned int selected = vtkSMUncheckedPropertyHelper(proxy, "PointDataArrays").GetNumberOfElements();
  const int arrays = std::max(1u, selected);
  try
  {
    const ecnr::ResolvedSettings r = ecnr::resolveSettings(ecnr::settingsFromKnobs(k), dims);
    const ecnr::SizeEstimate e = ecnr::estimateSize(dims, r, r.blockDims);
    const double raw = 4.0 * static_cast<double>(dims.count()) * arrays;
    return tr("at most %1 for %2 array(s) of %3 x %4 x %5 x %6 (raw %7): ratio at least %8:1")
      .arg(bytesText(static_cast<double>(e.bytes) * arrays))
      .arg(arrays)
      .arg(dims.x)
      .arg(dims.y)
      .arg(dims.z)
      .arg(dims.t)
      .arg(bytesText(raw))
      .arg(e.ratio, 0, 'f', 1);
  }
  catch (const std::exception& err)
  {
    return tr("invalid settings: %1").arg(err.what());
  }
}
