"""Segmentation scores from a confusion matrix — the four of Long et al. 2015, §5: pixel accuracy, mean (class)
accuracy, mean IoU and frequency-weighted IoU, plus the per-class IoU they average.

``confusion[i, j]`` counts pixels of true class ``i`` predicted as ``j``. A class that appears neither in the truth
nor in the predictions has no IoU (reported ``None``) and is left out of the means, as the reference FCN scorer's
``nanmean`` does.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts of (true, predicted) label pairs; labels outside the range are
    ignored (a void label such as 255)."""
    t, p = np.asarray(y_true).ravel().astype(np.int64), np.asarray(y_pred).ravel().astype(np.int64)
    keep = (t >= 0) & (t < num_classes)
    return np.bincount(num_classes * t[keep] + p[keep], minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray, class_names: list[str] | None = None) -> dict:
    """``pixel_accuracy``, ``mean_accuracy``, ``miou``, ``fw_iou`` and ``per_class_iou`` (name → IoU or None)."""
    confusion = np.asarray(confusion, np.float64)
    hits, truth, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    union = truth + predicted - hits
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, hits / union, np.nan)
        class_accuracy = np.where(truth > 0, hits / truth, np.nan)
    frequency = truth / truth.sum()
    names = class_names or [str(i) for i in range(len(confusion))]
    return {
        "pixel_accuracy": float(hits.sum() / confusion.sum()),
        "mean_accuracy": float(np.nanmean(class_accuracy)),
        "miou": float(np.nanmean(iou)),
        "fw_iou": float(np.nansum(frequency * iou)),
        "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou, strict=True)},
    }
