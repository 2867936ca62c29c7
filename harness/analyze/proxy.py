"""The preference proxy of unCLIP App. A trained on a study's votes in the store, and used to score new images.

`train_study_proxy` joins every ordinary vote of a study (`harness.analyze.vote_table`; attention checks and, by default,
annotators the exclusion policy rejects are left out) with features of the images each side showed (a 4×4 grid:
the mean of its 16 feature rows), cross-validates the probe of `eval_protocols.human.proxy` (folds grouped by
caption) and fits it on all votes. Features: the toy CLIP's image embeddings when ``checkpoints/toy/clip_toy.*``
exists (``extractor="auto"``), else the weight-free pixel features; ``clip:<arch>:<checkpoint>`` and the other
names of `harness.score.extractors` work too. The extractor name is saved with the proxy, so `score_images` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eval_protocols.human.proxy import PreferenceProxy, ProxyCV, cross_validate, fit_proxy
from eval_protocols.human.quality import ExclusionPolicy, apply_exclusion_policy
from eval_protocols.human.votes import scores_of
from harness.analyze.vote_table import study_vote_table
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.storage.repository import Repository


@dataclass(frozen=True)
class TrainedProxy:
    """A proxy fitted on a study's votes and its cross-validation."""

    proxy: PreferenceProxy
    cv: ProxyCV
    excluded: tuple[str, ...]


def build_proxy_extractor(name: str = "auto") -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    """``(extractor, extractor_id, name to save)``; ``auto`` = the toy CLIP when present, else ``pixels``."""
    from harness.score.extractors import MissingToyCheckpointError, build_extractor, toy_clip

    if name in ("auto", "toy-clip"):
        try:
            clip = toy_clip()
            return clip, clip.extractor_id, "toy-clip"
        except MissingToyCheckpointError as exc:
            if name == "toy-clip":
                raise HarnessError(f"{exc}; or use --extractor pixels") from None
        name = "pixels"
    extractor = build_extractor(name)
    return extractor, extractor.extractor_id, name


def train_study_proxy(
    repo: Repository,
    study_id: int,
    *,
    extractor: str = "auto",
    k: int = 5,
    seed: int = 0,
    ties: str = "half",
    C: float = 1.0,
    exclude: bool = True,
) -> TrainedProxy:
    """Cross-validate and fit the proxy on one study's votes (module docstring).

    Raises:
        HarnessError: the study has too few ordinary votes, or bad settings.
    """
    from harness.score.inputs import image_loader

    study = repo.get_study(study_id)
    table = study_vote_table(repo, study_id)
    excluded: tuple[str, ...] = ()
    if exclude and len(table):
        result = apply_exclusion_policy(table, ExclusionPolicy())
        table, excluded = result.votes, tuple(e.annotator for e in result.excluded)
    else:
        table = table[table["expected"].isna()] if len(table) else table
    if len(table) < k:
        raise HarnessError(f"study {study_id} has {len(table)} usable votes; the proxy needs at least {k} (--k)")
    features, extractor_id, saved_name = build_proxy_extractor(extractor)
    items = {i.item_id: i for i in repo.list_items(study_id)}
    load = image_loader(repo)
    cache: dict[tuple[str, ...], np.ndarray] = {}

    def side(shas: tuple[str, ...]) -> np.ndarray:
        if shas not in cache:
            cache[shas] = np.asarray(features(load(shas)), dtype=np.float64).mean(axis=0)
        return cache[shas]

    fa = np.stack([side(items[i].images_a) for i in table["item_id"]])
    fb = np.stack([side(items[i].images_b) for i in table["item_id"]])
    s = scores_of(table)
    try:
        cv = cross_validate(fa, fb, s, k=k, seed=seed, ties=ties, C=C, groups=table["prompt"].astype(str).tolist())
        proxy = fit_proxy(fa, fb, s, ties=ties, C=C, protocol=study.protocol_name if study else "",
                          feature_id=extractor_id)
    except ValueError as exc:
        raise HarnessError(f"cannot train the proxy on study {study_id}: {exc}") from None
    meta = {"study_id": study_id, "extractor": saved_name, "cv_accuracy": cv.accuracy, "cv_baseline": cv.baseline,
            "cv_k": k, "cv_seed": seed, "n_decisive": cv.n_decisive, "excluded": list(excluded),
            "simulated_votes": int(table["simulated"].sum())}
    return TrainedProxy(replace(proxy, metadata=meta), cv, excluded)


def score_images(proxy: PreferenceProxy, files: Sequence[str | Path]) -> np.ndarray:
    """f(x) of each image file under the proxy (higher = preferred), with the extractor it was trained on."""
    from eval_protocols.features.base import load_image_file

    features, extractor_id, _ = build_proxy_extractor(str(proxy.metadata.get("extractor", "pixels")))
    if proxy.feature_id and extractor_id != proxy.feature_id:
        raise HarnessError(
            f"the proxy was trained on {proxy.feature_id} features but {extractor_id} is available; retrain it"
        )
    images = [load_image_file(f) for f in files]
    return np.concatenate([proxy.utility(np.asarray(features(im[None]), dtype=np.float64)) for im in images])
