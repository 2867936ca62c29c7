"""What the diffusion trainers share: toy captions and tokenizer, the image stream, batched noise, grids, export.

Every trainer (`glide`, `decoder`, `upsampler`, `prior`, `ar_prior`) is a thin module over these pieces and the
shared loop of `harness.train.loop` (AdamW with decoupled weight decay, EMA with warm-up, clipping, resume,
JSONL log, tqdm).

Determinism: batch ``s`` (renders, caption paraphrases, timesteps, noise, condition-dropout masks) is a function
of ``(data_seed, s)``, so a resumed run sees the batches an uninterrupted one would.

Checkpoint layout (``<stem>.safetensors/.json/.sha256`` by `models.checkpoints`), JSON keys::

    {"kind": "glide" | "unclip_decoder" | "upsampler" | "diffusion_prior" | "ar_prior",
     "network": <models.networks config dict>, "diffusion": <DiffusionConfig dict> (diffusion stages),
     "tokenizer": <WordTokenizer dict> (text stages), "trained_steps": N, "run": <run config>}

`models.factory` rebuilds pipelines from exactly these keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from harness.data import toyworld
from harness.data.toyworld import captions as caption_grammar
from harness.errors import HarnessError
from harness.train.stream import ReplayStream
from models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from models.pipelines.tokenizer import WordTokenizer

GRID_CAPTIONS: tuple[str, ...] = (
    "a red circle",
    "a blue square",
    "a large green triangle",
    "a small yellow star",
    "a purple hexagon",
    "an orange diamond",
    "a pink cross",
    "a cyan circle above a red square",
)
"""Fixed captions of the sample grids written during training (one row each)."""


@dataclass(frozen=True)
class ImageDataSpec:
    """Where a trainer's images and captions come from.

    Attributes:
        split: toy-world split of the training scenes.
        data_seed: dataset seed (scenes, paraphrases, noise, dropout).
        fresh: new renders per step (the rest of the batch is replayed; see `ReplayStream`).
        window: replay window in examples.
        size: render size (32 for base models, 64 for the upsampler).
        described_p: probability that a fresh example comes from `toyworld.sample_described_object` (one object,
            shape, colour and size all named) instead of `toyworld.sample_scene`; 0 keeps the plain stream.
    """

    split: str = "train"
    data_seed: int = 0
    fresh: int = 16
    window: int = 8192
    size: int = 32
    described_p: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.described_p <= 1.0:
            raise ValueError(f"described_p must lie in [0, 1], got {self.described_p}")


def toy_tokenizer(context_length: int = 24) -> WordTokenizer:
    """The word tokenizer of the toy-world grammar: every word the caption grammar can emit, sorted."""
    texts: list[str] = [*caption_grammar.PREFIXES_SINGULAR, *caption_grammar.PREFIXES_PLURAL]
    texts += [p for phrases in caption_grammar.RELATION_PHRASES.values() for p in phrases]
    texts += [*caption_grammar.THIRD_OBJECT_JOINS, *caption_grammar.THIRD_AFTER_RELATION_JOINS]
    texts += [*toyworld.SHAPES, *toyworld.COLOUR_NAMES, *toyworld.SIZES, "a an and plus"]
    texts += [toyworld.caption_scene(toyworld.sample_scene(0, i, "train"), seed=i) for i in range(300)]
    return WordTokenizer.from_texts(texts, context_length)


def image_stream(data: ImageDataSpec, batch: int) -> ReplayStream[tuple[np.ndarray, toyworld.SceneSpec]]:
    """`ReplayStream` of ``(uint8 (S, S, 3) render, scene)`` of ``data.split``."""

    def make(index: int) -> tuple[np.ndarray, toyworld.SceneSpec]:
        scene = (
            toyworld.sample_described_object(data.data_seed, index, data.split)
            if data.described_p > 0 and _described(data.data_seed, index) < data.described_p
            else toyworld.sample_scene(data.data_seed, index, data.split)
        )
        return toyworld.render_scene(scene, data.size), scene

    return ReplayStream(make, batch=batch, fresh=min(data.fresh, batch), window=data.window, seed=data.data_seed)


def _described(data_seed: int, index: int) -> float:
    """Uniform [0, 1) draw of example ``index`` deciding between the described-object and the plain stream."""
    return float(np.random.default_rng(np.random.SeedSequence([data_seed, index, 0xDE5])).random())


def paraphrases(indices: np.ndarray, scenes: list[toyworld.SceneSpec], step: int, data_seed: int) -> list[str]:
    """One caption paraphrase per scene, drawn from ``(data_seed, step, index)``."""
    return [
        toyworld.caption_scene(scene, seed=int(np.random.SeedSequence([data_seed, step, int(i)]).generate_state(1)[0]))
        for i, scene in zip(indices.tolist(), scenes, strict=True)
    ]


def step_generator(data_seed: int, step: int, salt: int = 0) -> torch.Generator:
    """CPU generator for batch ``step``'s timesteps, noise and dropout masks."""
    seed = int(np.random.SeedSequence([data_seed, step, 0xD1F, salt]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(seed & (2**63 - 1))


def keep_mask(batch: int, drop_prob: float, generator: torch.Generator) -> torch.Tensor:
    """(B,) bool, False with probability ``drop_prob`` (condition dropout for classifier-free guidance)."""
    return torch.rand(batch, generator=generator) >= drop_prob


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) renders → (B, 3, H, W) float32 in [−1, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when enabled (CPU and CUDA alike), else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; any other name as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def save_grid(images: torch.Tensor, path: Path, columns: int) -> None:
    """Write (N, H, W, 3) uint8 images as a PNG grid with ``columns`` per row."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    canvas = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for k, image in enumerate(images.numpy()):
        r, c = divmod(k, columns)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)


def make_exporter(
    out_dir: Path,
    name: str,
    meta: Mapping[str, Any],
    *,
    export: Path | None,
    fp16: bool,
    grid_fn: Callable[[torch.nn.Module], torch.Tensor] | None,
    grid_every: int,
    grid_columns: int,
) -> Callable[[torch.nn.Module, int], None]:
    """The ``export(weights, step)`` callback of `train_loop`: checkpoint(s) plus, every ``grid_every`` steps,
    a sample grid ``out_dir/samples/step_<N>.png`` drawn by ``grid_fn(weights)`` (uint8 NHWC)."""
    targets = [out_dir / name] + ([export] if export is not None else [])

    def export_fn(weights: torch.nn.Module, step: int) -> None:
        for stem in targets:
            save_checkpoint(weights, {**meta, "trained_steps": step}, stem, dtype=torch.float16 if fp16 else None)
        if grid_fn is not None and grid_every > 0 and step % grid_every == 0 and step > 0:
            was_training = weights.training
            weights.eval()
            try:
                with torch.no_grad():
                    save_grid(grid_fn(weights), out_dir / "samples" / f"step_{step:06d}.png", grid_columns)
            finally:
                weights.train(was_training)

    return export_fn


def grid_generators(n: int, seed: int = 0) -> Iterator[torch.Generator]:
    """Fixed per-image generators for training grids (the same noise at every grid, so grids compare)."""
    for k in range(n):
        yield torch.Generator().manual_seed(seed * 10_007 + k)


def warm_start(network: torch.nn.Module, path: str | Path) -> str:
    """Load the weights of checkpoint ``path`` into ``network`` (same architecture); returns their sha256.

    The ``--init-from`` of every diffusion trainer and prior: a fresh optimiser, EMA and LR schedule over the given
    weights (a run that extends another with a new schedule; `--resume` continues the same schedule instead).

    Raises:
        HarnessError: the checkpoint cannot be read, or its tensors do not match the network's names and shapes.
    """
    try:
        state, _, digest = load_checkpoint(path)
    except CheckpointError as exc:
        raise HarnessError(f"--init-from: {exc}") from None
    own = network.state_dict()
    mismatched = sorted(
        set(own) ^ set(state) | {k for k in set(own) & set(state) if own[k].shape != state[k].shape}
    )
    if mismatched:
        raise HarnessError(
            f"--init-from {path}: its weights do not fit the network ({len(mismatched)} tensors differ, e.g. "
            f"{mismatched[0]!r}); warm-start from a checkpoint of the same --config"
        )
    network.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return digest
