"""Contrastive training of the toy CLIP on toy-world renders, and its retrieval evaluation.

Data: scene ``i`` of the toy world's ``train`` split (seed ``data_seed``) rendered at the CLIP's input size, paired
with a paraphrase of its caption drawn anew every time the scene is used (``toyworld.caption_scene``), so the text
tower learns what captions *mean*, not one phrasing. Batches come from a `ReplayStream` (fresh renders plus a replay
window), a function of ``(data_seed, step)``.

Loss: open_clip's ``ClipLoss``, the symmetric InfoNCE of Radford et al.:
``L = (CE(s * I T^T, diag) + CE(s * T I^T, diag)) / 2`` over unit-norm image/text embeddings ``I``, ``T`` with the
learned temperature ``s = exp(logit_scale)`` (clamped to 100 by open_clip's convention).

Evaluation (`evaluate_retrieval`): text -> image retrieval among ``n`` held-out pairs of the ``test`` split (which
holds (shape, colour) pairs never seen in training): for each caption, the rank of its own render among all ``n``
renders by cosine similarity; top-k accuracy against chance ``k / n``.

Attribute probe (`probe_attributes`): does the image embedding z_i encode each attribute at all? A linear probe
(`eval_protocols.metrics.linear_probe`) fitted on z_i of single-object renders (`toyworld.sample_described_object`,
``train`` split, seed ``seed``) and scored on other renders (seed ``seed + 1``). An unCLIP decoder conditioned on z_i
can reproduce only what z_i carries (the caption it also sees is dropped half the time in training), so this bounds
the decoder's attribute faithfulness from the embedding side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch

from eval_protocols.metrics.linear_probe import linear_probe_accuracy
from harness.data import toyworld
from harness.errors import HarnessError
from harness.train.loop import OptimSpec, train_loop
from harness.train.stream import ReplayStream
from models.checkpoints import save_checkpoint
from models.networks.clip import (
    TOY_CLIP_CONFIG,
    build_clip,
    clip_image_size,
    clip_tokenizer,
    encode_images,
    encode_texts,
    load_clip_config,
    preprocess_uint8,
)

EXPORT_NAME = "clip_toy"


@dataclass(frozen=True)
class ClipDataSpec:
    """Where the toy CLIP's training pairs come from.

    Attributes:
        split: toy-world split of the training scenes.
        data_seed: dataset seed of the scenes and of the replay draws.
        fresh: new renders per step (the rest of the batch is replayed; see `ReplayStream`).
        window: replay window in examples.
        render_size: render size before the CLIP's own preprocessing (32 or 64).
        shape_twin_p: probability that an odd-indexed example is the `toyworld.shape_twin` of the example before it
            (same scene, other shapes): a hard negative in the same batch, since fresh examples come in aligned
            pairs when ``fresh`` is even. 0 keeps the plain stream.
    """

    split: str = "train"
    data_seed: int = 0
    fresh: int = 32
    window: int = 8192
    render_size: int = 32
    shape_twin_p: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.shape_twin_p <= 1.0:
            raise ValueError(f"shape_twin_p must lie in [0, 1], got {self.shape_twin_p}")
        if self.shape_twin_p > 0 and self.fresh % 2:
            raise ValueError(f"shape twins need an even number of fresh examples per step, got {self.fresh}")


DEFAULT_DATA = ClipDataSpec()


def clip_pair_stream(data: ClipDataSpec, batch: int) -> ReplayStream[tuple[np.ndarray, toyworld.SceneSpec]]:
    """`ReplayStream` of ``(uint8 (S, S, 3) render, scene)`` pairs of ``data.split``."""

    def make(index: int) -> tuple[np.ndarray, toyworld.SceneSpec]:
        if index % 2 and data.shape_twin_p > 0 and _twin_draw(data.data_seed, index) < data.shape_twin_p:
            scene = toyworld.shape_twin(toyworld.sample_scene(data.data_seed, index - 1, data.split), data.data_seed)
        else:
            scene = toyworld.sample_scene(data.data_seed, index, data.split)
        return toyworld.render_scene(scene, data.render_size), scene

    return ReplayStream(make, batch=batch, fresh=min(data.fresh, batch), window=data.window, seed=data.data_seed)


def _twin_draw(data_seed: int, index: int) -> float:
    """Uniform [0, 1) draw deciding whether example ``index`` is a shape twin."""
    return float(np.random.default_rng(np.random.SeedSequence([data_seed, index, 0x7E1])).random())


def paraphrases(indices: np.ndarray, scenes: list[toyworld.SceneSpec], step: int, data_seed: int) -> list[str]:
    """One caption paraphrase per scene, drawn from ``(data_seed, step, index)`` (new wording at every reuse)."""
    return [
        toyworld.caption_scene(scene, seed=int(np.random.SeedSequence([data_seed, step, int(i)]).generate_state(1)[0]))
        for i, scene in zip(indices.tolist(), scenes, strict=True)
    ]


def train_clip(
    out_dir: Path,
    optim: OptimSpec,
    *,
    batch: int = 128,
    data: ClipDataSpec = DEFAULT_DATA,
    config: str | Path | Mapping[str, Any] = TOY_CLIP_CONFIG,
    model_seed: int = 0,
    export: Path | None = None,
    export_fp16: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the toy CLIP; writes ``out_dir/{state.pt, log.jsonl, run.json, clip_toy.*}``.

    Args:
        out_dir: run folder.
        optim: optimisation settings (steps, lr, warm-up, EMA, clipping, checkpoint interval).
        batch: pairs per step (the contrastive batch: ``batch - 1`` negatives per pair).
        data: the training pairs.
        config: open_clip model config: a dict, a JSON path or a ``models/configs`` name.
        model_seed: seed of the initial weights.
        export: also write the final weights to this checkpoint stem (e.g. ``checkpoints/toy/clip_toy``).
        export_fp16: store exported weights as float16 (half the size; the model computes in float32).
        resume: continue ``out_dir``'s run.

    Returns:
        The loop's summary plus the export paths.
    """
    if batch < 2:
        raise HarnessError(f"--batch must be at least 2 for a contrastive loss, got {batch}")
    cfg = dict(config) if isinstance(config, Mapping) else load_clip_config(config)
    model = build_clip(cfg, seed=model_seed)
    tokenizer = clip_tokenizer(cfg["text_cfg"].get("context_length", 77))
    image_size = clip_image_size(model)
    stream = clip_pair_stream(data, batch)
    loss_fn = open_clip.ClipLoss()

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        indices, pairs = stream(step)
        images = torch.from_numpy(np.stack([image for image, _ in pairs]))
        texts = paraphrases(indices, [scene for _, scene in pairs], step, data.data_seed)
        image_features = model.encode_image(preprocess_uint8(images, image_size), normalize=True)
        text_features = model.encode_text(tokenizer(texts), normalize=True)
        logit_scale = model.logit_scale.exp().clamp(max=100.0)
        loss = loss_fn(image_features, text_features, logit_scale)
        with torch.no_grad():
            hits = (image_features @ text_features.T).argmax(dim=1) == torch.arange(len(texts))
        return loss, {"batch_acc": float(hits.float().mean()), "logit_scale": float(logit_scale.detach())}

    run_config = {"model": "clip", "config": cfg, "batch": batch, "data": asdict(data), "model_seed": model_seed}
    targets = [out_dir / EXPORT_NAME] + ([export] if export is not None else [])

    def export_fn(weights: torch.nn.Module, step: int) -> None:
        meta = {"model_config": cfg, "kind": "open_clip", "trained_steps": step, "run": run_config}
        for stem in targets:
            save_checkpoint(weights, meta, stem, dtype=torch.float16 if export_fp16 else None)

    summary = train_loop(
        model, step_fn, optim, out_dir, run_config=run_config, export=export_fn, resume=resume, desc="train clip"
    )
    return {**summary, "exports": [str(t) for t in targets]}


@dataclass(frozen=True)
class RetrievalResult:
    """Text -> image retrieval among ``n`` held-out pairs.

    Attributes:
        n: number of pairs (candidates per query).
        top1: fraction of captions whose own image ranks first.
        top5: fraction ranking in the top 5.
        chance_top1: ``1 / n``.
        chance_top5: ``5 / n``.
        mean_rank: mean 1-based rank of the true image.
        split: toy-world split of the pairs.
        seed: dataset seed of the pairs.
    """

    n: int
    top1: float
    top5: float
    chance_top1: float
    chance_top5: float
    mean_rank: float
    split: str
    seed: int


def retrieval_pairs(n: int, split: str = "test", seed: int = 1, size: int = 32) -> tuple[np.ndarray, list[str]]:
    """``n`` held-out ``(uint8 (n, size, size, 3) renders, captions)`` with pairwise-distinct captions.

    Scenes whose caption repeats an earlier one are skipped, so each caption has exactly one true image.
    """
    images: list[np.ndarray] = []
    captions: list[str] = []
    index = 0
    while len(captions) < n:
        scene = toyworld.sample_scene(seed, index, split)
        index += 1
        if scene.caption in captions:
            continue
        images.append(toyworld.render_scene(scene, size))
        captions.append(scene.caption)
    return np.stack(images), captions


def evaluate_retrieval(
    model: torch.nn.Module, n: int = 100, split: str = "test", seed: int = 1, size: int = 32
) -> RetrievalResult:
    """Text -> image top-1/top-5 retrieval of a CLIP among ``n`` held-out pairs (module docstring)."""
    images, captions = retrieval_pairs(n, split, seed, size)
    image_features = encode_images(model, torch.from_numpy(images))
    text_features = encode_texts(model, captions)
    similarity = text_features @ image_features.T
    true = similarity.diagonal().unsqueeze(1)
    ranks = (similarity > true).sum(dim=1) + 1
    return RetrievalResult(
        n=n,
        top1=float((ranks <= 1).float().mean()),
        top5=float((ranks <= 5).float().mean()),
        chance_top1=1.0 / n,
        chance_top5=min(1.0, 5.0 / n),
        mean_rank=float(ranks.float().mean()),
        split=split,
        seed=seed,
    )


@dataclass(frozen=True)
class AttributeProbe:
    """Linear-probe accuracy of one attribute from CLIP image embeddings (module docstring).

    Attributes:
        attribute: ``shape``, ``colour`` or ``size``.
        accuracy: held-out accuracy in [0, 1].
        chance: majority-class rate of the held-out labels.
        n_train: probe training renders.
        n_test: held-out renders.
    """

    attribute: str
    accuracy: float
    chance: float
    n_train: int
    n_test: int


PROBED_ATTRIBUTES = ("shape", "colour", "size")


def probe_attributes(
    model: torch.nn.Module, n_train: int = 1000, n_test: int = 500, seed: int = 5, size: int = 32
) -> tuple[AttributeProbe, ...]:
    """Linear probes of shape, colour and size from the unit-norm image embeddings of ``model`` (module docstring).

    Raises:
        ValueError: ``n_train`` < 2 or ``n_test`` < 1.
    """
    if n_train < 2 or n_test < 1:
        raise ValueError(f"need at least 2 training and 1 test render, got {n_train} and {n_test}")

    def embedded(stream_seed: int, n: int) -> tuple[np.ndarray, list[toyworld.ObjectSpec]]:
        scenes = [toyworld.sample_described_object(stream_seed, i, "train") for i in range(n)]
        pixels = torch.from_numpy(np.stack([toyworld.render_scene(scene, size) for scene in scenes]))
        features = torch.cat([encode_images(model, pixels[i : i + 128]) for i in range(0, n, 128)])
        return features.float().cpu().numpy(), [scene.objects[0] for scene in scenes]

    train_x, train_objects = embedded(seed, n_train)
    test_x, test_objects = embedded(seed + 1, n_test)
    probes = []
    for attribute in PROBED_ATTRIBUTES:
        result = linear_probe_accuracy(
            train_x,
            [getattr(o, attribute) for o in train_objects],
            test_x,
            [getattr(o, attribute) for o in test_objects],
        )
        probes.append(AttributeProbe(attribute, result.accuracy, result.chance, result.n_train, result.n_test))
    return tuple(probes)


def describe_probes(probes: tuple[AttributeProbe, ...]) -> str:
    """One line: each attribute's probe accuracy against its chance."""
    parts = [f"{p.attribute} {p.accuracy:.1%} (chance {p.chance:.1%})" for p in probes]
    n = f"{probes[0].n_train} train / {probes[0].n_test} held-out renders" if probes else "no renders"
    return f"linear probe of the image embedding ({n}): " + ", ".join(parts)


def describe(result: RetrievalResult) -> str:
    """One line for the CLI and the model card."""
    return (
        f"text->image retrieval among {result.n} {result.split}-split pairs (seed {result.seed}): "
        f"top-1 {result.top1:.1%} (chance {result.chance_top1:.1%}), top-5 {result.top5:.1%} "
        f"(chance {result.chance_top5:.1%}), mean rank {result.mean_rank:.1f}"
    )


def result_json(result: RetrievalResult) -> str:
    """The result as one JSON object."""
    return json.dumps(asdict(result))
