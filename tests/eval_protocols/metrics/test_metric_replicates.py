"""Replicates of the gated metrics: each replicate is the metric recomputed on the resampled sets (brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eval_protocols.bootstrap import stratified_indices
from eval_protocols.metrics.base import FeatureStats
from eval_protocols.metrics.bootstrap import mean_replicates, metric_replicates
from eval_protocols.metrics.clip_score import clip_score
from eval_protocols.metrics.diversity import (
    diversity_jackknife_se,
    diversity_replicates,
    layout_diversity,
    pairwise_diversity,
    rms_distances,
)
from eval_protocols.metrics.frechet import fd_from_features
from eval_protocols.metrics.kid import kernel_inception_distance
from eval_protocols.metrics.registry import MetricInputs

PROMPTS = np.repeat(np.array(["p2", "p0", "p1", "p3", "p4"]), 6)  # 5 prompts x 6 images, labels not in sorted order


@pytest.fixture
def resamples(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample and reference features with their within-prompt resamples (B = 12)."""
    samples, reference = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 0.3
    draw = np.random.default_rng(7)
    return samples, reference, stratified_indices(PROMPTS, 30, 12, draw), stratified_indices(PROMPTS, 30, 12, draw)


def test_fd_replicates_recompute_fd_on_each_resample(resamples: tuple[np.ndarray, ...]) -> None:
    samples, reference, idx, ref_idx = resamples
    inputs = MetricInputs(samples=samples, reference=reference, groups=PROMPTS)
    value, reps = metric_replicates("fd", inputs, idx, ref_idx)
    assert value == pytest.approx(fd_from_features(reference, samples).value, rel=1e-9)
    for b in range(len(idx)):
        assert reps[b] == pytest.approx(fd_from_features(reference[ref_idx[b]], samples[idx[b]]).value, rel=1e-9)


def test_fd_replicates_keep_reference_statistics_fixed(resamples: tuple[np.ndarray, ...]) -> None:
    samples, reference, idx, _ = resamples
    stats = FeatureStats(reference.mean(axis=0), np.cov(reference, rowvar=False), len(reference))
    value, reps = metric_replicates("fd", MetricInputs(samples=samples, reference_stats=stats), idx)
    assert value == pytest.approx(fd_from_features(None, samples, reference_stats=stats).value, rel=1e-9)
    assert reps[3] == pytest.approx(fd_from_features(reference, samples[idx[3]]).value, rel=1e-9)
    with pytest.raises(ValueError, match="FD replicates need reference_stats"):
        metric_replicates("fd", MetricInputs(samples=samples, reference=reference), idx)


def test_kid_replicates_use_one_exact_subset_pair_on_small_sets(resamples: tuple[np.ndarray, ...]) -> None:
    samples, reference, idx, ref_idx = resamples
    value, reps = metric_replicates("kid", MetricInputs(samples=samples, reference=reference), idx, ref_idx)
    assert value == kernel_inception_distance(reference, samples, subsets=1).value
    assert reps[5] == kernel_inception_distance(reference[ref_idx[5]], samples[idx[5]], subsets=1).value
    with pytest.raises(ValueError, match="KID replicates need resampled reference rows"):
        metric_replicates("kid", MetricInputs(samples=samples, reference=reference), idx)


def test_mean_replicates_widen_by_the_small_sample_correction(resamples: tuple[np.ndarray, ...]) -> None:
    samples, _, idx, _ = resamples
    values = samples[:, 0]
    value, reps = mean_replicates(values, PROMPTS, idx)
    plain = values[idx].mean(axis=1)
    assert value == pytest.approx(values.mean())
    assert reps.mean() == pytest.approx(plain.mean())
    assert reps.std() == pytest.approx(plain.std() * np.sqrt(6 / 5))  # 6 images per prompt
    _, whole = mean_replicates(values, None, idx)
    assert whole.std() == pytest.approx(plain.std() * np.sqrt(30 / 29))  # one prompt of 30


def test_clip_score_and_proxy_replicates_are_rescaled_means(resamples: tuple[np.ndarray, ...],
                                                            rng: np.random.Generator) -> None:
    samples, _, idx, _ = resamples
    text = rng.normal(size=samples.shape)
    inputs = MetricInputs(samples=samples, sample_text=text, groups=PROMPTS, utility=samples[:, 1])
    value, reps = metric_replicates("clip_score", inputs, idx)
    per_sample = np.asarray(clip_score(samples, text).details["per_sample"])
    assert value == pytest.approx(clip_score(samples, text).value)
    assert np.allclose(reps, mean_replicates(per_sample, PROMPTS, idx)[1])
    assert np.array_equal(metric_replicates("proxy", inputs, idx)[1], mean_replicates(samples[:, 1], PROMPTS, idx)[1])


def _brute_force_diversity(features: np.ndarray, rows: np.ndarray) -> float:
    """Per prompt: 1 − mean cosine over ordered pairs of positions whose original rows differ; mean over prompts."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    per_prompt = []
    for label in dict.fromkeys(PROMPTS.tolist()):
        drawn = rows[PROMPTS == label]
        pairs = [(a, b) for a, b in itertools.permutations(range(len(drawn)), 2) if drawn[a] != drawn[b]]
        per_prompt.append(1.0 - np.mean([unit[drawn[a]] @ unit[drawn[b]] for a, b in pairs]))
    return float(np.mean(per_prompt))


def test_diversity_replicates_average_pairs_of_distinct_images(resamples: tuple[np.ndarray, ...]) -> None:
    samples, _, idx, _ = resamples
    reps = diversity_replicates(samples, PROMPTS, idx)
    for b in range(len(idx)):
        assert reps[b] == pytest.approx(_brute_force_diversity(samples, idx[b]), rel=1e-12)
    identity = np.arange(30)[None, :]
    assert diversity_replicates(samples, PROMPTS, identity)[0] == pytest.approx(pairwise_diversity(samples, PROMPTS).value)


def test_diversity_jackknife_matches_leave_one_out_by_hand(resamples: tuple[np.ndarray, ...]) -> None:
    samples = resamples[0]
    variance = 0.0
    for label in dict.fromkeys(PROMPTS.tolist()):
        rows = np.flatnonzero(PROMPTS == label)
        leave_out = np.array([pairwise_diversity(samples[np.delete(rows, i)]).value for i in range(len(rows))])
        variance += (len(rows) - 1) / len(rows) * ((leave_out - leave_out.mean()) ** 2).sum()
    assert diversity_jackknife_se(samples, PROMPTS) == pytest.approx(np.sqrt(variance) / 5, rel=1e-10)
    assert diversity_jackknife_se(samples[4:8], PROMPTS[4:8]) is None  # "p2" keeps 2 images: fewer than 3


def test_diversity_replicates_take_the_jackknife_spread(resamples: tuple[np.ndarray, ...]) -> None:
    samples, _, idx, _ = resamples
    value, reps = metric_replicates("diversity", MetricInputs(samples=samples, groups=PROMPTS), idx)
    assert value == pytest.approx(pairwise_diversity(samples, PROMPTS).value)
    assert reps.std() == pytest.approx(diversity_jackknife_se(samples, PROMPTS), rel=1e-10)
    assert reps.mean() == pytest.approx(diversity_replicates(samples, PROMPTS, idx).mean())


def _brute_force_rms(features: np.ndarray, rows: np.ndarray) -> float:
    """As `_brute_force_diversity` with ``‖x − y‖₂ / √D`` for the cosine distance."""
    per_prompt = []
    for label in dict.fromkeys(PROMPTS.tolist()):
        drawn = rows[PROMPTS == label]
        pairs = [(a, b) for a, b in itertools.permutations(range(len(drawn)), 2) if drawn[a] != drawn[b]]
        dist = [np.linalg.norm(features[drawn[a]] - features[drawn[b]]) / np.sqrt(features.shape[1]) for a, b in pairs]
        per_prompt.append(np.mean(dist))
    return float(np.mean(per_prompt))


def test_layout_diversity_replicates_and_jackknife_use_the_rms_distance(resamples: tuple[np.ndarray, ...]) -> None:
    samples, _, idx, _ = resamples
    reps = diversity_replicates(samples, PROMPTS, idx, rms_distances)
    for b in range(len(idx)):
        assert reps[b] == pytest.approx(_brute_force_rms(samples, idx[b]), rel=1e-10)
    variance = 0.0
    for label in dict.fromkeys(PROMPTS.tolist()):
        rows = np.flatnonzero(PROMPTS == label)
        leave_out = np.array([layout_diversity(samples[np.delete(rows, i)]).value for i in range(len(rows))])
        variance += (len(rows) - 1) / len(rows) * ((leave_out - leave_out.mean()) ** 2).sum()
    se = diversity_jackknife_se(samples, PROMPTS, rms_distances)
    assert se == pytest.approx(np.sqrt(variance) / 5, rel=1e-10)
    assert se != pytest.approx(diversity_jackknife_se(samples, PROMPTS), rel=1e-3)  # not the cosine one
    value, gated = metric_replicates("layout_diversity", MetricInputs(samples=samples, groups=PROMPTS), idx)
    assert value == pytest.approx(layout_diversity(samples, PROMPTS).value)
    assert gated.std() == pytest.approx(se, rel=1e-10) and gated.mean() == pytest.approx(reps.mean())


def test_metric_replicates_refuse_metrics_without_a_rule_and_missing_inputs(rng: np.random.Generator) -> None:
    idx = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="'vendi' has no bootstrap replicate rule; metrics with one: clip_score, "):
        metric_replicates("vendi", MetricInputs(samples=rng.normal(size=(3, 2))), idx)
    with pytest.raises(ValueError, match="'clip_score' needs sample_text"):
        metric_replicates("clip_score", MetricInputs(samples=rng.normal(size=(3, 2))), idx)
    with pytest.raises(ValueError, match="did you mean 'kid'"):
        metric_replicates("kidd", MetricInputs(), idx)
