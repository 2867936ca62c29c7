"""A vote-trained preference proxy (unCLIP App. A): a logistic-regression probe on feature differences.

unCLIP tuned its sampling settings with a linear probe on CLIP ViT-L/14 image embeddings trained on 15,000 past
pairwise comparisons: P(human prefers y over x) = σ(f(y) − f(x)) with a linear utility f(x) = w·φ(x). Here:

* features φ are whatever the caller injects (CLIP image embeddings when available; any ``(n, D)`` array),
  divided by their per-dimension standard deviation over the training images (so the L2 strength means the
  same for every feature scale); a 4×4 grid is represented by the mean of its images' features (caller's choice);
* training rows are the votes of one protocol: d = φ(a) − φ(b) with target s(a) ∈ {1, ½, 0}; ``ties="drop"``
  removes ties, ``ties="half"`` keeps them as half a win each (two rows of weight ½); every row is also added
  mirrored (−d, 1 − s), so the fit cannot learn a side and has no intercept: P(a beats b) = σ(w·d);
* the fit minimises ½‖w‖²/C + Σ_rows weight·logloss (L-BFGS-B, scipy), i.e. scikit-learn's
  ``LogisticRegression(fit_intercept=False, C=C)`` on the mirrored rows;
* `cross_validate`: k folds (optionally grouped, e.g. by caption, so one caption never sits on both sides of a
  split), accuracy on the held-out decisive votes against the majority baseline (always predict the side that
  won more often in the training folds), seeded.

The fitted `PreferenceProxy` scores new samples (`utility`, `prefer_probability`) and saves as ``<stem>.npz``
(weights, scale) + ``<stem>.json`` (protocol, feature id, C, ties, n, CV accuracy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

TIES_MODES: tuple[str, ...] = ("half", "drop")


@dataclass(frozen=True)
class PreferenceProxy:
    """A fitted probe: f(x) = w·(φ(x) / scale); P(prefer y over x) = σ(f(y) − f(x)).

    Attributes:
        weights: ``w``, shape ``(D,)``.
        scale: per-dimension feature standard deviation of the training images, shape ``(D,)``.
        protocol: the protocol its votes came from.
        feature_id: which extractor made the features (e.g. a CLIP extractor id).
        C: inverse L2 strength.
        ties: how ties entered the fit.
        n_votes: training votes used (after dropping ties if so).
        metadata: anything else (e.g. cross-validated accuracy), JSON-serialisable.
    """

    weights: np.ndarray
    scale: np.ndarray
    protocol: str = ""
    feature_id: str = ""
    C: float = 1.0
    ties: str = "half"
    n_votes: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def utility(self, features: np.ndarray) -> np.ndarray:
        """f(x) for ``(n, D)`` features; shape ``(n,)``."""
        x = _as_2d(features, len(self.weights), "features")
        f: np.ndarray = (x / self.scale) @ self.weights
        return f

    def prefer_probability(self, features_x: np.ndarray, features_y: np.ndarray) -> np.ndarray:
        """P(prefer y over x) = σ(f(y) − f(x)) for paired ``(n, D)`` features; shape ``(n,)``."""
        probability: np.ndarray = expit(self.utility(features_y) - self.utility(features_x))
        return probability

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<stem>.npz`` and ``<stem>.json``; returns both paths."""
        stem = _stem(Path(path))
        stem.parent.mkdir(parents=True, exist_ok=True)
        npz, meta = stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")
        np.savez(npz, weights=self.weights, scale=self.scale)
        info = {"kind": "preference_proxy", "protocol": self.protocol, "feature_id": self.feature_id, "C": self.C,
                "ties": self.ties, "n_votes": self.n_votes, "dim": len(self.weights), "metadata": self.metadata}
        meta.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return npz, meta

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PreferenceProxy:
        """Read a proxy written by `save` (either file's path, or the stem).

        Raises:
            ValueError: a file is missing or is not a proxy.
        """
        stem = _stem(Path(path))
        npz, meta = stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")
        if not (npz.is_file() and meta.is_file()):
            raise ValueError(f"preference proxy {stem}: need {npz.name} and {meta.name}; train one first")
        info = json.loads(meta.read_text(encoding="utf-8"))
        if info.get("kind") != "preference_proxy":
            raise ValueError(f"{meta} is not a preference proxy (kind {info.get('kind')!r})")
        with np.load(npz) as arrays:
            weights, scale = arrays["weights"], arrays["scale"]
        return cls(weights, scale, info["protocol"], info["feature_id"], float(info["C"]), info["ties"],
                   int(info["n_votes"]), dict(info.get("metadata", {})))


@dataclass(frozen=True)
class ProxyCV:
    """k-fold cross-validated accuracy of the proxy on held-out decisive votes."""

    accuracy: float
    """Share of held-out decisive votes whose winner the proxy predicts (pooled over folds)."""
    baseline: float
    """The same for the majority baseline."""
    fold_accuracy: tuple[float, ...]
    fold_baseline: tuple[float, ...]
    n_decisive: int
    k: int
    seed: int


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def _as_2d(x: np.ndarray, dim: int | None, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, D)"
        raise ValueError(f"{name} must be a {want} array, got shape {arr.shape}; pass one feature row per image")
    return arr


def _check(features_a: np.ndarray, features_b: np.ndarray, scores: np.ndarray, ties: str) -> tuple[np.ndarray, ...]:
    a = _as_2d(features_a, None, "features_a")
    b = _as_2d(features_b, a.shape[1], "features_b")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(a) == len(b) == len(s):
        raise ValueError(f"features_a, features_b and scores differ in length ({len(a)}, {len(b)}, {len(s)})")
    if not np.isin(s, (0.0, 0.5, 1.0)).all():
        raise ValueError("scores must be 1 (a wins), 0.5 (tie) or 0 (b wins); map winners with votes.scores_of")
    if ties not in TIES_MODES:
        raise ValueError(f"unknown ties mode {ties!r}; use half or drop")
    return a, b, s


def training_rows(d: np.ndarray, s: np.ndarray, ties: str = "half") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirrored logistic rows (X, y, weight) from differences d = φ(a) − φ(b) and scores s(a) (module docstring)."""
    keep = s != 0.5 if ties == "drop" else np.ones(len(s), dtype=bool)
    d, s = d[keep], s[keep]
    tie = s == 0.5
    x = np.concatenate([d[~tie], d[tie], d[tie]])
    y = np.concatenate([s[~tie], np.ones(tie.sum()), np.zeros(tie.sum())])
    w = np.concatenate([np.ones((~tie).sum()), np.full(tie.sum(), 0.5), np.full(tie.sum(), 0.5)])
    return np.concatenate([x, -x]), np.concatenate([y, 1.0 - y]), np.concatenate([w, w])


def fit_weights(x: np.ndarray, y: np.ndarray, weight: np.ndarray, C: float = 1.0) -> np.ndarray:
    """argmin_w ½‖w‖²/C + Σ weight·[−y log σ(x·w) − (1 − y) log σ(−x·w)] (L-BFGS-B, analytic gradient)."""
    if C <= 0:
        raise ValueError(f"C = {C}: the inverse L2 strength must be positive, e.g. 1.0")

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        value = -(weight * (y * log_expit(z) + (1 - y) * log_expit(-z))).sum() + 0.5 * (w @ w) / C
        grad = x.T @ (weight * (expit(z) - y)) + w / C
        return float(value), grad

    res = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-8})
    return np.asarray(res.x)


def fit_proxy(
    features_a: np.ndarray,
    features_b: np.ndarray,
    scores: np.ndarray,
    *,
    ties: str = "half",
    C: float = 1.0,
    protocol: str = "",
    feature_id: str = "",
) -> PreferenceProxy:
    """Fit P(a beats b) = σ(f(a) − f(b)) on one protocol's votes.

    Args:
        features_a: ``(n, D)`` features of each vote's ``model_a`` side.
        features_b: ``(n, D)`` features of its ``model_b`` side.
        scores: ``(n,)`` score of ``model_a``: 1 win, ½ tie, 0 loss.
        ties: ``half`` or ``drop``.
        C: inverse L2 strength.
        protocol: recorded with the proxy.
        feature_id: recorded with the proxy.

    Raises:
        ValueError: shapes disagree, a score is not in {0, ½, 1}, or no vote is left.
    """
    a, b, s = _check(features_a, features_b, scores, ties)
    scale = np.maximum(np.concatenate([a, b]).std(axis=0), 1e-12)
    x, y, w = training_rows((a - b) / scale, s, ties)
    if len(x) == 0:
        raise ValueError("no votes to fit the proxy on (only ties, dropped); use ties='half' or collect votes")
    n = int((s != 0.5).sum()) if ties == "drop" else len(s)
    return PreferenceProxy(fit_weights(x, y, w, C), scale, protocol, feature_id, C, ties, n)


def fold_ids(n: int, k: int, seed: int, groups: Sequence[object] | None = None) -> np.ndarray:
    """Fold index of each of ``n`` votes: a seeded permutation cut into ``k`` parts, by group when given."""
    rng = np.random.default_rng([seed, 0xF01D])
    if groups is None:
        out = np.empty(n, dtype=np.int64)
        out[rng.permutation(n)] = np.arange(n) % k
        return out
    labels, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    group_fold = np.empty(len(labels), dtype=np.int64)
    group_fold[rng.permutation(len(labels))] = np.arange(len(labels)) % k
    return group_fold[inverse]


def cross_validate(
    features_a: np.ndarray,
    features_b: np.ndarray,
    scores: np.ndarray,
    *,
    k: int = 5,
    seed: int = 0,
    ties: str = "half",
    C: float = 1.0,
    groups: Sequence[object] | None = None,
) -> ProxyCV:
    """k-fold accuracy of the proxy vs the majority baseline on held-out decisive votes (module docstring).

    Raises:
        ValueError: fewer than ``k`` votes (or groups), ``k`` < 2, or bad inputs (see `fit_proxy`).
    """
    a, b, s = _check(features_a, features_b, scores, ties)
    units = len(set(map(str, groups))) if groups is not None else len(s)
    if k < 2 or units < k:
        raise ValueError(f"cross-validation needs k >= 2 and at least k votes/groups (k = {k}, {units} available)")
    folds = fold_ids(len(s), k, seed, groups)
    hits = base_hits = total = 0
    fold_acc, fold_base = [], []
    for f in range(k):
        train, test = folds != f, (folds == f) & (s != 0.5)
        if not test.any() or not (train & ((s != 0.5) | (ties == "half"))).any():
            continue
        proxy = fit_proxy(a[train], b[train], s[train], ties=ties, C=C)
        predicted_a = proxy.prefer_probability(b[test], a[test]) > 0.5
        actual_a = s[test] == 1.0
        majority_a = (s[train] == 1.0).sum() >= (s[train] == 0.0).sum()
        h, bh = int((predicted_a == actual_a).sum()), int((actual_a == majority_a).sum())
        hits, base_hits, total = hits + h, base_hits + bh, total + int(test.sum())
        fold_acc.append(h / test.sum())
        fold_base.append(bh / test.sum())
    if total == 0:
        raise ValueError("no decisive held-out votes to score; collect votes that are not ties")
    return ProxyCV(hits / total, base_hits / total, tuple(fold_acc), tuple(fold_base), total, k, seed)
