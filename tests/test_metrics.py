"""Classification metrics against hand-computed small cases, and their invariants."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awdvd.metrics import (
    PAPER_DATA_RANGE,
    accuracy,
    classification_summary,
    confusion_matrix,
    cumulative_match_curve,
    level_errors,
    precision_recall_f1,
    psnr,
    ssim,
    top_k_accuracy,
    truth_data_range,
)

# 6 samples, classes 0, 1, 2 and bg (-1):
#   true  0 0 1 2 -1 -1
#   pred  0 1 1 2  0 -1
Y_TRUE = np.array([0, 0, 1, 2, -1, -1])
Y_PRED = np.array([0, 1, 1, 2, 0, -1])
LABELS = [0, 1, 2, -1]


def test_confusion_matrix_by_hand():
    expected = np.array([[1, 1, 0, 0],   # true 0: one right, one called 1
                         [0, 1, 0, 0],
                         [0, 0, 1, 0],
                         [1, 0, 0, 1]])  # true bg: one called 0
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED, labels=LABELS), expected)
    # default labels: the sorted union, so bg (-1) comes first
    default = confusion_matrix(Y_TRUE, Y_PRED)
    assert default.shape == (4, 4) and default[0, 0] == 1 and default.sum() == 6


def test_precision_recall_f1_by_hand():
    result = precision_recall_f1(confusion_matrix(Y_TRUE, Y_PRED, labels=LABELS))
    # class 0: predicted twice (1 right) -> P 1/2; true twice (1 right) -> R 1/2; F1 1/2
    # class 1: predicted twice (1 right) -> P 1/2; true once -> R 1; F1 2/3
    # class 2: P 1, R 1; bg: predicted once (right) -> P 1, true twice -> R 1/2, F1 2/3
    np.testing.assert_allclose(result["precision"], [0.5, 0.5, 1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(result["recall"], [0.5, 1.0, 1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(result["f1"], [0.5, 2 / 3, 1.0, 2 / 3], atol=1e-12)
    np.testing.assert_array_equal(result["support"], [2, 1, 1, 2])


def test_zero_division_gives_zero_and_macro_skips_absent_classes():
    # class 2 is never true nor predicted: it must not dilute the macro average; class 1 is predicted but absent
    summary = classification_summary([0, 0], [0, 1], labels=[0, 1, 2])
    assert summary["per_class"]["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert summary["per_class"]["2"]["support"] == 0
    # macro over classes 0 and 1: precision (1 + 0) / 2, recall (1/2 + 0) / 2, F1 (2/3 + 0) / 2
    assert summary["macro"]["precision"] == pytest.approx(0.5, abs=1e-12)
    assert summary["macro"]["recall"] == pytest.approx(0.25, abs=1e-12)
    assert summary["macro"]["f1"] == pytest.approx(1 / 3, abs=1e-12)


def test_summary_by_hand():
    summary = classification_summary(Y_TRUE, Y_PRED, labels=LABELS)
    assert summary["accuracy"] == pytest.approx(4 / 6, abs=1e-12)
    assert summary["macro"]["f1"] == pytest.approx((0.5 + 2 / 3 + 1 + 2 / 3) / 4, abs=1e-12)
    assert summary["class_names"] == ["0", "1", "2", "bg"]
    assert summary["n"] == 6 and "cmc" not in summary
    only_bg = classification_summary([-1, -1], [-1, -1], labels=LABELS, scores=np.eye(4)[[3, 3]])
    assert only_bg["mean_abs_level_error"] is None and only_bg["within_one_level"] is None
    json.dumps(only_bg, allow_nan=False)  # strict JSON


def test_cumulative_match_curve_by_hand():
    labels = [0, 1, 2]
    scores = np.array([[0.7, 0.2, 0.1],   # true 0: rank 1
                       [0.5, 0.3, 0.2],   # true 1: rank 2
                       [0.5, 0.3, 0.2],   # true 2: rank 3
                       [0.4, 0.4, 0.2]])  # true 1: tied with class 0, which comes first -> rank 2
    y_true = [0, 1, 2, 1]
    np.testing.assert_allclose(cumulative_match_curve(y_true, scores, labels=labels), [0.25, 0.75, 1.0], atol=1e-12)
    assert top_k_accuracy(y_true, scores, labels=labels, k=2) == pytest.approx(0.75)
    # a tie resolved towards the lower column, as argmax: true 0 with equal scores is rank 1
    assert cumulative_match_curve([0], [[0.5, 0.5, 0.0]], labels=labels)[0] == 1.0
    with pytest.raises(ValueError, match="k must be in 1..3"):
        top_k_accuracy(y_true, scores, labels=labels, k=4)


def test_level_errors_by_hand_and_bg_handling():
    true = np.array([0, 3, 5, 5, -1, -1, 2])
    pred = np.array([0, 5, 4, -1, 3, -1, 2])
    result = level_errors(true, pred)
    # levels predicted as levels: |0|, |2|, |1|, |0| -> mean 3/4; the level-5 patch called bg is excluded
    assert result["mean_abs_level_error"] == pytest.approx(0.75, abs=1e-12)
    # within one level over the 5 level patches: 0, 5->4, 2 pass; 3->5 and 5->bg miss
    assert result["within_one_level"] == pytest.approx(3 / 5, abs=1e-12)
    assert result["n_level_patches"] == 5
    assert result["n_level_predicted_bg"] == 1 and result["n_bg_predicted_level"] == 1
    only_bg = level_errors([-1, -1], [-1, 2])
    assert np.isnan(only_bg["mean_abs_level_error"]) and np.isnan(only_bg["within_one_level"])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: confusion_matrix([0, 1], [0]), "same length"),
        (lambda: confusion_matrix([0, 7], [0, 1], labels=[0, 1]), r"class\(es\) \[7\]"),
        (lambda: confusion_matrix([[0, 1]], [[0, 1]]), "1-D"),
        (lambda: confusion_matrix([0.5], [0]), "integer class labels"),
        (lambda: confusion_matrix([0], [0], labels=[0, 0]), "distinct"),
        (lambda: cumulative_match_curve([0, 1], np.zeros((2, 2)), labels=[0, 1, 2]), r"scores must be \(N, K\)"),
        (lambda: cumulative_match_curve([0], [[np.nan, 0.0]], labels=[0, 1]), "NaN"),
        (lambda: precision_recall_f1(np.zeros((2, 3))), "square"),
        (lambda: classification_summary([0], [0], labels=[0, 1], class_names=["a"]), "1 class names for 2"),
    ],
)
def test_bad_input_raises_clearly(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40),
       st.integers(0, 2**31 - 1))
def test_invariants(k_extra, pairs, seed):
    labels = list(range(5))
    y_true = np.array([p[0] for p in pairs])
    y_pred = np.array([p[1] for p in pairs])
    c = confusion_matrix(y_true, y_pred, labels=labels)
    assert c.sum() == len(pairs)
    assert np.trace(c) / len(pairs) == pytest.approx(accuracy(y_true, y_pred), abs=1e-12)
    scores = np.random.default_rng(seed).random((len(pairs), 5))
    scores[np.arange(len(pairs)), y_pred] = 2.0  # make y_pred the argmax
    curve = cumulative_match_curve(y_true, scores, labels=labels)
    assert np.all(np.diff(curve) >= 0) and curve[-1] == 1.0
    assert curve[0] == pytest.approx(accuracy(y_true, y_pred), abs=1e-12)


def test_metrics_module_is_numpy_only():
    code = "import sys, awdvd.metrics; sys.exit(int('torch' in sys.modules or 'matplotlib' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ----- restoration metrics


def test_psnr_known_value_and_identity():
    ref = np.zeros((8, 8))
    img = np.full((8, 8), 10.0)
    assert math.isclose(psnr(ref, img, data_range=1000.0), 20 * math.log10(1000 / 10))
    assert psnr(ref, ref, data_range=1.0) == math.inf
    # the paper's absolute range makes every number larger by the same amount
    delta = psnr(ref, img, data_range=PAPER_DATA_RANGE) - psnr(ref, img, data_range=1000.0)
    assert math.isclose(delta, 20 * math.log10(PAPER_DATA_RANGE / 1000))


def test_ssim_is_one_for_identical_images_and_lower_otherwise():
    rng = np.random.default_rng(0)
    ref = rng.uniform(100, 200, (32, 32))
    assert math.isclose(ssim(ref, ref, data_range=100.0), 1.0)
    noise = rng.normal(0, 1, ref.shape)
    small, large = (ssim(ref, ref + sd * noise, data_range=100.0) for sd in (10, 30))
    assert 1.0 > small > large


def test_data_range_is_required_and_checked():
    a = np.ones((8, 8))
    with pytest.raises(TypeError, match="data_range"):
        psnr(a, a)  # no default on purpose
    with pytest.raises(TypeError, match="data_range"):
        ssim(a, a)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="data_range must be a positive number"):
            psnr(a, a, data_range=bad)
    with pytest.raises(ValueError, match="must have the same shape"):
        psnr(a, np.ones((8, 9)), data_range=1.0)
    with pytest.raises(ValueError, match="at least 7 x 7"):
        ssim(np.ones((5, 5)), np.ones((5, 5)), data_range=1.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        psnr(a, a * np.nan, data_range=1.0)


def test_truth_data_range():
    assert truth_data_range(np.array([[3.0, 7.0]])) == 4.0
    assert truth_data_range(np.ones((3, 3))) == 1.0
