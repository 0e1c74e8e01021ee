"""Quality metrics.

Classification (defocus levels, paper 3.1-3.3): confusion matrix, accuracy, precision / recall / F1 per class
and macro-averaged, top-k accuracy and the cumulative match curve, and two ordinal measures (defocus levels
are ordered: predicting level 5 for level 6 is a smaller error than predicting 0), in numpy only.

Restoration (paper 3.4): PSNR and SSIM against a reference (scikit-image's), with the data range always
explicit: scikit-image would otherwise guess it from the dtype, and 16-bit camera data stored as float would
be judged against a range of 2, or of 65535 stored as uint16, silently.

Conventions
-----------
- Labels are integers; ``labels`` (the class list) fixes the order of rows, columns and per-class results.
  Defocus levels are 0 .. n_levels - 1 and "bg" is -1 (:data:`BACKGROUND`).
- Confusion matrices have the true class on rows and the predicted class on columns.
- A precision or recall whose denominator is 0 (a class never predicted, or absent from the truth) is 0, as
  in scikit-learn's ``zero_division=0``; macro averages run over the classes that occur in the truth or in
  the predictions (a class absent from both says nothing about the classifier).
- Scores for top-k are (N, K) arrays, columns in ``labels`` order; ties are broken towards the lower column,
  as ``argmax`` does, so top-1 accuracy equals the accuracy of ``labels[argmax(scores)]``.
- Ordinal measures ignore "bg": the mean |level error| runs over patches whose true and predicted classes
  are both levels; "within one level" runs over patches whose true class is a level, and a level patch
  predicted "bg" counts as a miss. The counts behind each figure are returned with it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .data.patches import BACKGROUND

__all__ = [
    "BACKGROUND",
    "confusion_matrix",
    "accuracy",
    "precision_recall_f1",
    "classification_summary",
    "cumulative_match_curve",
    "top_k_accuracy",
    "level_errors",
    "psnr",
    "ssim",
    "truth_data_range",
    "PAPER_DATA_RANGE", "band_gains"]

def _labels_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(array == np.round(array)):
            raise TypeError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    return array.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels_1d(y_true, "y_true"), _labels_1d(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    return y_true, y_pred


def _class_list(labels, y_true, y_pred) -> np.ndarray:
    if labels is None:
        return np.union1d(y_true, y_pred)
    labels = _labels_1d(labels, "labels")
    if len(np.unique(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels.tolist()}")
    return labels


def _index_of(values: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Position of each value in ``labels``; raises if one is not a known class."""
    order = np.argsort(labels, kind="stable")
    position = np.searchsorted(labels[order], values)
    position = np.clip(position, 0, len(labels) - 1)
    found = labels[order][position] == values if len(labels) else np.zeros(len(values), bool)
    if not np.all(found):
        unknown = np.unique(values[~found]).tolist()
        raise ValueError(f"{name} holds class(es) {unknown} that are not in labels {labels.tolist()}")
    return order[position]


def confusion_matrix(y_true, y_pred, *, labels: Sequence[int] | None = None) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    Parameters
    ----------
    y_true, y_pred : (N,) integer class labels.
    labels : the classes, in the order of rows and columns (default: the sorted union of both inputs).

    Returns
    -------
    (K, K) int64, ``C[i, j]`` = number of samples of true class ``labels[i]`` predicted as ``labels[j]``.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    labels = _class_list(labels, y_true, y_pred)
    k = len(labels)
    i = _index_of(y_true, labels, "y_true")
    j = _index_of(y_pred, labels, "y_pred")
    return np.bincount(i * k + j, minlength=k * k).reshape(k, k).astype(np.int64)


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples predicted right (NaN for no samples)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def precision_recall_f1(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a (K, K) confusion matrix (true on rows).

    Returns {"precision", "recall", "f1": (K,) float64, "support": (K,) int64 (true samples per class),
    "predicted": (K,) int64 (predictions per class)}. A 0/0 ratio is 0.
    """
    c = np.asarray(confusion)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"a confusion matrix must be square (K, K), got shape {c.shape}")
    c = c.astype(np.float64)
    tp = np.diag(c)
    support = c.sum(axis=1)
    predicted = c.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "predicted": predicted.astype(np.int64)}


def top_k_accuracy(y_true, scores, *, labels: Sequence[int], k: int = 1) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scoring classes.

    Parameters
    ----------
    y_true : (N,) integer class labels, each in ``labels``.
    scores : (N, K) class scores (probabilities or logits), columns in ``labels`` order.
    labels : the K classes.
    k : 1 .. K.
    """
    curve = cumulative_match_curve(y_true, scores, labels=labels)
    if not 1 <= k <= len(curve):
        raise ValueError(f"k must be in 1..{len(curve)}, got {k}")
    return float(curve[k - 1])


def cumulative_match_curve(y_true, scores, *, labels: Sequence[int]) -> np.ndarray:
    """Top-k accuracy for k = 1 .. K (the paper's Fig. 5 and 6).

    Returns (K,) float64, non-decreasing, ending at 1.0: entry ``k - 1`` is the fraction of samples whose
    true class has rank <= k. The rank of the true class is 1 + the number of classes scoring higher, plus
    the number scoring equal that come before it in ``labels`` (ties go to the lower column, as argmax).
    """
    y_true = _labels_1d(y_true, "y_true")
    labels = _class_list(labels, y_true, y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(y_true), len(labels)):
        raise ValueError(f"scores must be (N, K) = ({len(y_true)}, {len(labels)}), got shape {scores.shape}")
    if scores.size and not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if len(y_true) == 0:
        return np.full(len(labels), np.nan)
    column = _index_of(y_true, labels, "y_true")
    true_score = scores[np.arange(len(y_true)), column][:, None]
    before = np.arange(len(labels))[None, :] < column[:, None]
    rank = 1 + np.sum(scores > true_score, axis=1) + np.sum((scores == true_score) & before, axis=1)
    return np.array([np.mean(rank <= k) for k in range(1, len(labels) + 1)])


def level_errors(true_levels, predicted_levels, *, background: int = BACKGROUND) -> dict:
    """Ordinal errors of defocus-level predictions.

    Parameters
    ----------
    true_levels, predicted_levels : (N,) integer levels, ``background`` (-1) for "bg".

    Returns
    -------
    dict with
        mean_abs_level_error : mean |predicted - true| over patches whose true and predicted classes are both
            levels (NaN if there are none); in levels (multiply by the z step for um).
        within_one_level : fraction of level patches predicted within +/-1 level ("bg" predictions count as
            misses); NaN if no true level patches.
        n_level_patches : patches whose true class is a level.
        n_level_predicted_bg : level patches predicted "bg".
        n_bg_predicted_level : "bg" patches predicted as a level.
    """
    y_true, y_pred = _pair(true_levels, predicted_levels)
    is_level = y_true != background
    both = is_level & (y_pred != background)
    error = np.abs(y_pred - y_true)
    return {
        "mean_abs_level_error": float(np.mean(error[both])) if np.any(both) else float("nan"),
        "within_one_level": float(np.mean(both[is_level] & (error[is_level] <= 1))) if np.any(is_level) else float("nan"),
        "n_level_patches": int(np.sum(is_level)),
        "n_level_predicted_bg": int(np.sum(is_level & (y_pred == background))),
        "n_bg_predicted_level": int(np.sum(~is_level & (y_pred != background))),
    }


def classification_summary(y_true, y_pred, *, labels: Sequence[int], scores=None,
                           class_names: Sequence[str] | None = None) -> dict:
    """Everything :func:`awdvd.cli.evaluate` reports, as one JSON-serialisable dict.

    Parameters
    ----------
    y_true, y_pred : (N,) integer class labels (levels, -1 for "bg").
    labels : the K classes, in the order of the confusion matrix and of the ``scores`` columns.
    scores : optional (N, K) class scores for the cumulative match curve.
    class_names : K names (default: "bg" for -1, else the number).

    Returns
    -------
    {"n", "accuracy", "macro": {"precision", "recall", "f1"}, "per_class": {name: {"precision", "recall",
    "f1", "support"}}, "confusion": K x K nested list, "labels", "class_names", "cmc": K floats (if scores),
    and the :func:`level_errors` entries}; figures that are undefined (NaN, e.g. no level patches) are None,
    so that ``json.dumps(summary, allow_nan=False)`` works.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    labels = _class_list(labels, y_true, y_pred)
    names = [("bg" if v == BACKGROUND else str(int(v))) for v in labels] if class_names is None else list(class_names)
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} class names for {len(labels)} labels")
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = precision_recall_f1(confusion)
    occurs = (per_class["support"] > 0) | (per_class["predicted"] > 0)
    macro = {key: (float(np.mean(per_class[key][occurs])) if np.any(occurs) else float("nan"))
             for key in ("precision", "recall", "f1")}
    summary = {
        "n": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "macro": macro,
        "per_class": {name: {"precision": float(per_class["precision"][i]), "recall": float(per_class["recall"][i]),
                             "f1": float(per_class["f1"][i]), "support": int(per_class["support"][i])}
                      for i, name in enumerate(names)},
        "labels": [int(v) for v in labels],
        "class_names": names,
        "confusion": confusion.tolist(),
    }
    summary.update(level_errors(y_true, y_pred))
    if scores is not None:
        summary["cmc"] = [float(v) for v in cumulative_match_curve(y_true, scores, labels=labels)]
    return _nan_to_none(summary)


def _nan_to_none(value):
    """Undefined figures (NaN) as None, so that the summary is strict JSON."""
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


# --------------------------------------------------------------------------------------------- restoration
PAPER_DATA_RANGE = 65535.0  # the paper's absolute numbers (Fig. 7-8) use the 16-bit container's range


def _image_pair(reference, image) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    img = np.asarray(image, dtype=np.float64)
    if ref.shape != img.shape:
        raise ValueError(f"reference {ref.shape} and image {img.shape} must have the same shape")
    if ref.ndim != 2:
        raise ValueError(f"expected 2-D images, got shape {ref.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(img).all()):
        raise ValueError("images contain NaN or infinite values")
    return ref, img


def _check_data_range(data_range) -> float:
    value = float(data_range)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    return value


def truth_data_range(reference) -> float:
    """max - min of the reference: the honest data range for relative comparisons (1.0 if constant)."""
    ref = np.asarray(reference, dtype=np.float64)
    span = float(ref.max() - ref.min())
    return span if span > 0 else 1.0


def psnr(reference, image, *, data_range: float) -> float:
    """Peak signal-to-noise ratio (dB) of ``image`` against ``reference`` (both (H, W)); ``inf`` if equal.

    ``data_range`` (same units as the images) is required: 65535 reproduces the paper's absolute numbers,
    :func:`truth_data_range` gives numbers that do not depend on the container.
    """
    ref, img = _image_pair(reference, image)
    data_range = _check_data_range(data_range)
    mse = float(np.mean((ref - img) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(reference, image, *, data_range: float) -> float:
    """Structural similarity (skimage.metrics.structural_similarity, 7 x 7 uniform window) with an explicit
    ``data_range``; images must be at least 7 x 7."""
    from skimage.metrics import structural_similarity

    ref, img = _image_pair(reference, image)
    data_range = _check_data_range(data_range)
    if min(ref.shape) < 7:
        raise ValueError(f"SSIM needs images of at least 7 x 7 px, got {ref.shape}")
    return float(structural_similarity(ref, img, data_range=data_range))


def band_gains(specimen, restored) -> tuple[list[float], float]:
    """(PSNR gain (dB) over the recorded image of every level band, in level order; whole-image gain), with the
    in-focus truth's range as the data range (gains do not depend on it)."""
    truth, observed = specimen.truth, specimen.observed
    data_range = truth_data_range(truth)
    columns = np.asarray(specimen.levels)[0]
    gains = []
    for level in np.unique(columns):
        band = columns == level
        gains.append(float(psnr(truth[:, band], restored[:, band], data_range=data_range)
                           - psnr(truth[:, band], observed[:, band], data_range=data_range)))
    whole = float(psnr(truth, restored, data_range=data_range) - psnr(truth, observed, data_range=data_range))
    return gains, whole
