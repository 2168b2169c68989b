"""Metrics with known answers: calibration, mCE / relative mCE, flip probability, top-5 distance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from timm_dynmix.robustness import metrics as M


def test_calibration_perfect_is_zero():
    # confidence j/100 on 100 examples each, exactly j of them correct: every adaptive bin of 100 and every
    # equal-width bin is calibrated
    conf = np.repeat(np.arange(1, 101) / 100, 100)
    correct = np.concatenate([np.arange(100) < j for j in range(1, 101)])
    assert M.rms_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-12)
    assert M.expected_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-12)


def test_calibration_of_sampled_outcomes():
    # calibrated in expectation, outcomes drawn: ECE -> 0 with N, while the RMS over bins of 100 stays at the
    # binomial noise of a bin, sqrt(E[p (1 - p)] / 100), p ~ U(0.1, 1)
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.1, 1.0, 200_000)
    correct = rng.random(conf.shape) < conf
    noise = math.sqrt((0.55 - (1 - 0.1 ** 3) / (3 * 0.9)) / 100)
    assert M.rms_calibration_error(conf, correct) == pytest.approx(noise, abs=0.003)
    assert M.expected_calibration_error(conf, correct) < 0.005


def test_calibration_known_miscalibration():
    # 100 examples at confidence 0.3 with 50 % correct, 150 at 0.75 with 40 % correct (N = 250: 2 adaptive bins,
    # the last one extended to 150 examples)
    conf = np.r_[np.full(100, 0.3), np.full(150, 0.75)]
    correct = np.r_[np.arange(100) < 50, np.arange(150) < 60]
    rms = math.sqrt(100 / 250 * 0.2 ** 2 + 150 / 250 * 0.35 ** 2)
    assert M.rms_calibration_error(conf, correct) == pytest.approx(rms, abs=1e-12)
    # the published calib_err skips the last (most confident) bin but still divides by N
    assert M.rms_calibration_error(conf, correct, skip_last_bin=True) == pytest.approx(math.sqrt(0.4 * 0.04), 1e-12)
    assert M.rms_calibration_error(conf, correct, p="1") == pytest.approx(0.4 * 0.2 + 0.6 * 0.35, abs=1e-12)
    assert M.rms_calibration_error(conf, correct, p="infty") == pytest.approx(0.35, abs=1e-12)
    # ECE: 0.3 falls in bin (0.2667, 0.3333], 0.75 in (0.7333, 0.8]
    assert M.expected_calibration_error(conf, correct) == pytest.approx(0.4 * 0.2 + 0.6 * 0.35, abs=1e-12)
    bins = M.reliability_bins(conf, correct)
    assert bins["count"][4] == 100 and bins["count"][11] == 150 and sum(bins["count"]) == 250
    assert bins["accuracy"][11] == pytest.approx(0.4) and math.isnan(bins["accuracy"][0])


def test_calibration_edge_cases():
    # ECE bins are (lo, hi]: a confidence of exactly 0 is in no bin, 1.0 is in the last
    bins = M.reliability_bins([0.0, 1.0], [False, True])
    assert sum(bins["count"]) == 1 and bins["count"][-1] == 1
    # fewer examples than a bin: one bin
    assert M.rms_calibration_error([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)
    assert M.rms_calibration_error([0.9] * 10, [True] * 10, skip_last_bin=True) == 0.0
    for call, match in [
        (lambda: M.rms_calibration_error([0.5, 0.6], [1]), "same length"),
        (lambda: M.rms_calibration_error([], []), "at least one example"),
        (lambda: M.rms_calibration_error([1.5], [1]), r"probabilities in \[0, 1\]"),
        (lambda: M.rms_calibration_error([0.5], [1], bin_size=0), "bin_size must be a positive integer"),
        (lambda: M.rms_calibration_error([0.5], [1], p="3"), "p must be"),
        (lambda: M.expected_calibration_error([[0.5]], [[1]]), "1-D array"),
        (lambda: M.reliability_bins([0.5], [1], n_bins=0), "n_bins must be a positive integer"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


def test_mce_of_alexnet_is_exactly_100():
    errors = {c: dict(enumerate(v, start=1)) for c, v in M.ALEXNET_ERRORS.items()}
    value, ces = M.mce(errors, list(M.ALEXNET_ERRORS))
    assert value == 1.0 and set(ces.values()) == {1.0}
    # also on a subset of severities (both sides summed over the same severities)
    sub = {c: {s: e for s, e in v.items() if s in (2, 5)} for c, v in errors.items()}
    assert M.mce(sub, list(M.ALEXNET_ERRORS))[0] == 1.0
    # relative mCE of AlexNet itself is 1 in both variants
    for variant in ("per_severity", "once"):
        rel, _ = M.relative_mce(errors, M.ALEXNET_CLEAN_ERROR, list(M.ALEXNET_ERRORS), variant=variant)
        assert rel == pytest.approx(1.0, abs=1e-12)
    assert M.ALEXNET_CLEAN_ERROR == pytest.approx(0.43478, abs=1e-9)
    # the per-corruption means are AugMix's ALEXNET_ERR
    assert np.mean(M.ALEXNET_ERRORS["gaussian_noise"]) == pytest.approx(0.886428, abs=1e-9)
    assert np.mean([np.mean(v) for v in M.ALEXNET_ERRORS.values()]) == pytest.approx(0.788993, abs=1e-6)


def test_mce_and_relative_mce_values():
    errors = {"fog": {s: 0.5 for s in range(1, 6)}, "snow": {s: 0.2 * s for s in range(1, 6)}}
    base = {"fog": [0.8] * 5, "snow": 0.6}  # per-severity list or one mean
    value, ces = M.mce(errors, ["fog", "snow"], base)
    assert ces == pytest.approx({"fog": 2.5 / 4.0, "snow": 3.0 / 3.0}) and value == pytest.approx((0.625 + 1) / 2)
    _rel, parts = M.relative_mce(errors, 0.1, ["fog", "snow"], base, baseline_clean_error=0.4)
    assert parts["fog"] == pytest.approx((2.5 - 0.5) / (4.0 - 2.0))
    assert parts["snow"] == pytest.approx((3.0 - 0.5) / (3.0 - 2.0))
    _rel_once, once = M.relative_mce(errors, 0.1, ["fog", "snow"], base, baseline_clean_error=0.4, variant="once")
    assert once["fog"] == pytest.approx((2.5 - 0.1) / (4.0 - 0.4))
    assert M.corruption_error(errors, ["fog", "snow"]) == pytest.approx((0.5 + 0.6) / 2)
    with pytest.raises(ValueError, match=r"one mean error, so all 5 severities must be evaluated"):
        M.mce({"snow": {1: 0.2}}, ["snow"], base)
    with pytest.raises(ValueError, match=r"no baseline errors for fog"):
        M.mce(errors, ["fog"], {"snow": 0.6})
    with pytest.raises(ValueError, match=r"variant must be"):
        M.relative_mce(errors, 0.1, ["fog"], base, variant="twice")
    with pytest.raises(ValueError, match=r"severities must be integers 1..5"):
        M.corruption_error({"fog": {0: 0.5}}, ["fog"])
    with pytest.raises(ValueError, match=r"errors must be fractions in \[0, 1\]"):
        M.corruption_error({"fog": {1: 50.0}}, ["fog"])


def test_flip_probability():
    pred = np.array([[3, 3, 4, 4, 3],    # consecutive flips: 2 of 4; vs first frame: 2 of 4
                     [1, 2, 1, 2, 1]])   # consecutive: 4 of 4; vs first: 2 of 4
    assert M.flip_probability(pred, noise=False) == pytest.approx((0.5 + 1.0) / 2)
    assert M.flip_probability(pred, noise=True) == pytest.approx((0.5 + 0.5) / 2)
    # difficulty 2: pairs (0,2), (2,4), (1,3): video 0 flips on all three, video 1 on none
    assert M.flip_probability(pred, noise=False, difficulty=2) == pytest.approx((1 + 0) / 2)
    with pytest.raises(ValueError, match=r"predictions must be \(videos, frames\)"):
        M.flip_probability(pred[0], noise=False)
    with pytest.raises(ValueError, match=r"at least 2 frames"):
        M.flip_probability(pred[:, :1], noise=False)


def test_top5_distance():
    a = [0, 1, 2, 3, 4]
    same = np.array([[a, a]])
    assert M.top5_distance(same, noise=False) == 0
    swapped = np.array([[a, [1, 0, 2, 3, 4]]])  # classes 0 and 1 exchange ranks: |0-1| + |1-0|
    assert M.top5_distance(swapped, noise=False) == 2
    gone = np.array([[a, [9, 1, 2, 3, 4]]])  # class 0 leaves the top 5: |0 - 5|
    assert M.top5_distance(gone, noise=False) == 5
    three = np.array([[a, [1, 0, 2, 3, 4], [1, 0, 2, 3, 4]]])
    assert M.top5_distance(three, noise=False) == pytest.approx((2 + 0) / 2)  # consecutive pairs
    assert M.top5_distance(three, noise=True) == pytest.approx((2 + 2) / 2)  # against the first frame
    with pytest.raises(ValueError, match=r"top5 must be \(videos, frames, 5\)"):
        M.top5_distance(same[..., :4], noise=False)


def test_normalized_mean():
    value, ratios = M.normalized_mean({"a": 0.1, "b": 0.3}, {"a": 0.2, "b": 0.3}, ["a", "b"])
    assert ratios == {"a": 0.5, "b": 1.0} and value == 0.75
    with pytest.raises(ValueError, match=r"no baseline values for b"):
        M.normalized_mean({"a": 0.1, "b": 0.3}, {"a": 0.2}, ["a", "b"])
    with pytest.raises(ValueError, match=r"must be > 0"):
        M.normalized_mean({"a": 0.1}, {"a": 0}, ["a"])
