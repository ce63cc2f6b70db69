// The writer dialog's "Estimated size" row: archive size and compression ratio for the settings shown in the
// dialog (including values not yet applied), recomputed whenever one of them changes. The estimate is Core's
// cheap upper bound (ecnr::estimateSize): nothing is trained.
#pragma once

#include "pqPropertyWidget.h"

class QLabel;

class pqECNRSizeEstimateWidget : public pqPropertyWidget
{
  Q_OBJECT
  typedef pqPropertyWidget Superclass;

public:
  pqECNRSizeEstimateWidget(vtkSMProxy* proxy, vtkSMProperty* property, QWidget* parent = nullptr);
  ~pqECNRSizeEstimateWidget() override;

  /// The text for these settings (public for tests).
  QString estimateText();

private Q_SLOTS:
  void updateEstimate();

private:
  QLabel* Label;
};
