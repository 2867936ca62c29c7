"""Training and evaluation of the toy-world attribute oracle (`eval_protocols.features.oracle`).

Training data: single-object scenes with shape, colour and size drawn uniformly (all 7 x 8 x 3 combinations,
the test split's held-out (shape, colour) pairs included: the oracle is a measuring instrument that must read every
caption of the test split, not a subject of the compositional test), realised by the toy world's own
caption-to-scene sampler (random position, rotation, background, light, shadow) and rendered at 32x32. Example
``i`` is a function of ``(data_seed, i)``; batches come from a `ReplayStream`, and every batch is degraded afresh
(`harness.train.degrade`), so replayed renders look different each time.

Loss: the sum over the three heads of the cross-entropy with label smoothing 0.02.

Evaluation (`evaluate_oracle`): fresh single-object scenes of the ``test`` split (``sample_scene``, a different
sampler and seed from training, so none was seen), clean at 32 and 64 pixels, and under each degradation alone and
all together at fixed, mid-range strengths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eval_protocols.features.oracle import ATTRIBUTES, AttributeCNN, ToyAttributeOracle, accuracy, oracle_config
from harness.data import toyworld
from harness.data.toyworld.captions import caption_text
from harness.train.degrade import OPERATIONS, DegradeSpec, degrade
from harness.train.loop import OptimSpec, train_loop
from harness.train.stream import ReplayStream
from models.checkpoints import save_checkpoint

EXPORT_NAME = "oracle"
CLASSES: dict[str, tuple[str, ...]] = {
    "shape": tuple(toyworld.SHAPES),
    "colour": tuple(toyworld.COLOUR_NAMES),
    "size": tuple(toyworld.SIZES),
}
LABEL_SMOOTHING = 0.02

TRAIN_DEGRADE = DegradeSpec(p=0.4, blur_sigma=(0.3, 0.9))
# Fixed, mid-range strengths for the degraded evaluation (each applied to every image).
EVAL_DEGRADE = DegradeSpec(
    p=1.0,
    shear=0.05,
    rotation_deg=3.0,
    warp_px=0.4,
    blur_sigma=(0.6, 0.6),
    gain=0.07,
    offset=0.035,
    saturation=(0.85, 1.15),
    noise_sigma=(0.05, 0.05),
    levels=(24, 24),
)


def single_object_example(data_seed: int, index: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Example ``index``: ``(uint8 (size, size, 3) render, int64 (3,) class indices of shape, colour, size)``."""
    rng = np.random.default_rng(np.random.SeedSequence([data_seed, index, 0x0AC1]))
    labels = np.array([int(rng.integers(len(CLASSES[name]))) for name in ATTRIBUTES], dtype=np.int64)
    shape, colour, size_word = (CLASSES[name][k] for name, k in zip(ATTRIBUTES, labels, strict=True))
    spec = toyworld.CaptionSpec((toyworld.ObjectMention(shape, colour, size_word),))
    scene = toyworld.scene_from_caption(spec, caption_text(spec, rng), int(rng.integers(2**31)))
    return toyworld.render_scene(scene, size), labels


def train_oracle(
    out_dir: Path,
    optim: OptimSpec,
    *,
    batch: int = 128,
    width: int = 32,
    data_seed: int = 0,
    fresh: int = 32,
    window: int = 8192,
    augment: DegradeSpec = TRAIN_DEGRADE,
    model_seed: int = 0,
    export: Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the oracle; writes ``out_dir/{state.pt, log.jsonl, run.json, oracle.*}`` (float32 weights).

    Args:
        out_dir: run folder.
        optim: optimisation settings.
        batch: images per step.
        width: channels of the CNN's first stage.
        data_seed: seed of the training scenes, the replay draws and the augmentations.
        fresh: new renders per step (the rest is replayed).
        window: replay window in examples.
        augment: the training degradations.
        model_seed: seed of the initial weights.
        export: also write the final weights to this checkpoint stem.
        resume: continue ``out_dir``'s run.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed)
        network = AttributeCNN({k: len(v) for k, v in CLASSES.items()}, width=width, input_size=32)
    stream = ReplayStream(
        lambda i: single_object_example(data_seed, i),
        batch=batch,
        fresh=min(fresh, batch),
        window=window,
        seed=data_seed,
    )

    def step_fn(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        _, examples = stream(step)
        images = torch.from_numpy(np.stack([image for image, _ in examples])).permute(0, 3, 1, 2).float() / 255
        labels = torch.from_numpy(np.stack([label for _, label in examples]))
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([data_seed, step]).generate_state(1)[0]))
        logits = network(degrade(images, augment, generator))
        losses = [
            F.cross_entropy(logits[n], labels[:, k], label_smoothing=LABEL_SMOOTHING) for k, n in enumerate(ATTRIBUTES)
        ]
        with torch.no_grad():
            acc = {
                f"acc_{n}": float((logits[n].argmax(1) == labels[:, k]).float().mean())
                for k, n in enumerate(ATTRIBUTES)
            }
        return torch.stack(losses).sum(), acc

    run_config = {
        "model": "oracle",
        "width": width,
        "batch": batch,
        "data_seed": data_seed,
        "fresh": fresh,
        "window": window,
        "augment": asdict(augment),
        "model_seed": model_seed,
    }
    targets = [out_dir / EXPORT_NAME] + ([export] if export is not None else [])

    def export_fn(weights: torch.nn.Module, step: int) -> None:
        meta = {**oracle_config(CLASSES, width, 32), "trained_steps": step, "run": run_config}
        for stem in targets:
            save_checkpoint(weights, meta, stem)

    summary = train_loop(
        network, step_fn, optim, out_dir, run_config=run_config, export=export_fn, resume=resume, desc="train oracle"
    )
    return {**summary, "exports": [str(t) for t in targets]}


def held_out_single_objects(
    n: int, seed: int = 2, split: str = "test", size: int = 32
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """The first ``n`` single-object scenes of ``split`` (seed ``seed``): ``(uint8 (n, size, size, 3), truths)``."""
    images: list[np.ndarray] = []
    truth: dict[str, list[str]] = {name: [] for name in ATTRIBUTES}
    for scene in _single_object_scenes(seed, split):
        images.append(toyworld.render_scene(scene, size))
        obj = scene.objects[0]
        for name in ATTRIBUTES:
            truth[name].append(getattr(obj, name))
        if len(images) == n:
            break
    return np.stack(images), truth


def _single_object_scenes(seed: int, split: str) -> Iterator[toyworld.SceneSpec]:
    index = 0
    while True:
        scene = toyworld.sample_scene(seed, index, split)
        index += 1
        if len(scene.objects) == 1:
            yield scene


@dataclass(frozen=True)
class OracleEvaluation:
    """Oracle accuracy per condition: ``{condition: {"shape"|"colour"|"size"|"all": accuracy}}``.

    Conditions: ``clean32``, ``clean64``, one per degradation (``warp``, ``blur``, ...) and ``all_degradations``.
    """

    n: int
    split: str
    seed: int
    accuracy: dict[str, dict[str, float]]


def evaluate_oracle(oracle: ToyAttributeOracle, n: int = 1000, seed: int = 2, split: str = "test") -> OracleEvaluation:
    """Accuracy of ``oracle`` on ``n`` fresh held-out single-object renders, clean and degraded (module docstring)."""
    images32, truth = held_out_single_objects(n, seed, split, 32)
    images64, _ = held_out_single_objects(n, seed, split, 64)
    results = {
        "clean32": accuracy(oracle.predict(images32), truth),
        "clean64": accuracy(oracle.predict(images64), truth),
    }
    clean = torch.from_numpy(images32).permute(0, 3, 1, 2).float() / 255
    conditions = [(op, (op,)) for op in OPERATIONS] + [("all_degradations", OPERATIONS)]
    for k, (name, ops) in enumerate(conditions):
        generator = torch.Generator().manual_seed(1000 + k)
        degraded = degrade(clean, replace(EVAL_DEGRADE, operations=ops), generator)
        uint8 = (degraded * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        results[name] = accuracy(oracle.predict(uint8), truth)
    return OracleEvaluation(n=n, split=split, seed=seed, accuracy=results)


def describe(evaluation: OracleEvaluation) -> str:
    """A Markdown table of the evaluation, for the CLI and the model card."""
    lines = [
        (
            f"oracle accuracy on {evaluation.n} held-out single-object scenes ({evaluation.split} split, "
            f"seed {evaluation.seed})"
        ),
        "",
        "| condition | shape | colour | size | all |",
        "|---|---|---|---|---|",
    ]
    for condition, acc in evaluation.accuracy.items():
        lines.append(f"| {condition} | " + " | ".join(f"{acc[k]:.1%}" for k in (*ATTRIBUTES, "all")) + " |")
    return "\n".join(lines)
