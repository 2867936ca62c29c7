"""Attention-check stimuli of a study: items whose right answer is known, mixed in to find careless annotators.

Each protocol has one kind of check (`eval_protocols.human.protocol.Protocol.attention_check_kind`):

* ``corrupted_render`` (photorealism): an image against the same image visibly corrupted
  (`eval_protocols.human.corruptions.corrupt_render`);
* ``contradicting_caption`` (caption similarity): an image of the caption against an image of another caption;
* ``collapsed_grid`` (diversity): 16 varied images of the caption against 16 copies of one of them.

Where the images come from depends on the run's prompts:

* toy-world captions (``prompts.source = "toyworld"``): real renders (`ToyStimuli`); the contradicting caption is
  the caption with its first object's shape replaced by another shape;
* any other caption file: the run's own generated images (`RunStimuli`); the contradicting image is one the run
  made for another caption, so a caption-file run needs at least two captions, and a diversity check as many
  images of a caption (over all systems) as a grid holds.

The stimuli are written to ``<run dir>/attention/`` (a run dir of their own, registered in the store as run
``<run id>-attention``, named as `eval_protocols.human.design_inputs` describes, so the admin page can reuse them);
an image already there is not written again, so an interrupted study creation resumes to the same manifest.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol as TypingProtocol

import numpy as np

from eval_protocols.human.corruptions import corrupt_render
from eval_protocols.human.design_inputs import ATTENTION_CASE_STRIDE, attention_system_id
from eval_protocols.human.pairing import AttentionCase, AttentionPool
from eval_protocols.human.protocol import Protocol
from harness.errors import HarnessError
from harness.prompts import PromptRecord
from harness.rundir import ManifestEntry, RunDir, derive_seed, work_key


class Stimuli(TypingProtocol):
    """Where attention-check images come from: ``uint8 (H, W, 3)`` images, deterministic in their arguments."""

    model_id: str
    """Recorded as the attention images' model id."""

    def image(self, prompt: PromptRecord, seed: int) -> np.ndarray:
        """An image that shows ``prompt`` (the ``seed`` picks which one)."""
        ...

    def contradicting(self, prompt: PromptRecord, seed: int, rng: np.random.Generator) -> np.ndarray:
        """An image that does not show ``prompt``."""
        ...


class ToyStimuli:
    """Real toy-world renders (the default for toy-world captions)."""

    model_id = "toyworld-attention"

    def image(self, prompt: PromptRecord, seed: int) -> np.ndarray:
        from harness.data import toyworld

        return toyworld.render_caption(prompt.text, seed=seed)[0]

    def contradicting(self, prompt: PromptRecord, seed: int, rng: np.random.Generator) -> np.ndarray:
        from harness.data import toyworld

        return toyworld.render_caption(contradicting_caption(prompt.text, rng), seed=seed)[0]


class RunStimuli:
    """The run's own images (caption-file runs, which have no renderer): image ``seed mod n`` of the caption's n."""

    model_id = "run-attention"

    def __init__(self, run_dir: RunDir, entries: Sequence[ManifestEntry]) -> None:
        self.run_dir = run_dir
        self.by_prompt: dict[str, list[ManifestEntry]] = defaultdict(list)
        for e in entries:
            self.by_prompt[e.prompt_id].append(e)

    def count(self, prompt_id: str) -> int:
        """How many images the run holds for a caption."""
        return len(self.by_prompt.get(prompt_id, ()))

    def image(self, prompt: PromptRecord, seed: int) -> np.ndarray:
        return self._load(prompt.prompt_id, seed)

    def contradicting(self, prompt: PromptRecord, seed: int, rng: np.random.Generator) -> np.ndarray:
        others = sorted(p for p in self.by_prompt if p != prompt.prompt_id)
        if not others:
            raise HarnessError(
                "caption-similarity attention checks of a caption-file run show an image of another caption, but "
                "the run has one caption; add captions (prompts.n) or set study.attention_rate = 0"
            )
        return self._load(str(rng.choice(others)), seed)

    def _load(self, prompt_id: str, seed: int) -> np.ndarray:
        from eval_protocols.features.base import load_image_file

        images = self.by_prompt.get(prompt_id)
        if not images:
            raise HarnessError(f"the run holds no image of caption {prompt_id!r}; run `harness generate` first")
        return np.asarray(load_image_file(self.run_dir.root / images[seed % len(images)].path), dtype=np.uint8)


def contradicting_caption(text: str, rng: np.random.Generator) -> str:
    """A one-object toy caption that contradicts ``text``: the first object's shape replaced by another shape."""
    from harness.data.toyworld.captions import ObjectMention, parse_caption
    from harness.data.toyworld.vocab import SHAPES

    first = parse_caption(text).objects[0]
    others = [s for s in SHAPES if s != first.shape]
    return ObjectMention(str(rng.choice(others)), first.colour, first.size).phrase()


def stimuli_for(source: str, run_dir: RunDir, entries: Sequence[ManifestEntry]) -> Stimuli:
    """`ToyStimuli` for ``prompts.source = "toyworld"``, else `RunStimuli` over the run's images."""
    return ToyStimuli() if source == "toyworld" else RunStimuli(run_dir, entries)


def attention_pool(
    protocol: Protocol,
    prompts: Sequence[PromptRecord],
    att_dir: RunDir,
    stimuli: Stimuli,
    n_cases: int,
    seed: int,
) -> AttentionPool:
    """Make the attention-check stimuli of one protocol in ``att_dir`` and return them as a pool.

    Raises:
        HarnessError: the stimuli cannot be made from this run (the message names the fix).
    """
    rng = np.random.default_rng([seed, 0xA77])
    written = {e.key: e.sha256 for e in att_dir.entries() if (att_dir.root / e.path).is_file()}
    kind = protocol.attention_check_kind
    rows, cols = protocol.grid or (4, 4)
    cases = []
    for i in range(n_cases):
        prompt = prompts[i % len(prompts)]
        # the protocol enters the seed: checks of different protocols must not share an image, since the store
        # keeps one record (one role) per image of a run
        base_seed = derive_seed(seed + 7919, f"{protocol.name}/{prompt.prompt_id}", i)
        add = functools.partial(_write_image, att_dir, written, stimuli.model_id, protocol.name, prompt, i, base_seed)
        if kind == "corrupted_render":
            real = stimuli.image(prompt, base_seed)
            cases.append(AttentionCase(prompt.prompt_id, prompt.text, (add(real, "real"),),
                                       (add(corrupt_render(real, base_seed), "corrupted"),)))
        elif kind == "contradicting_caption":
            real = stimuli.image(prompt, base_seed)
            wrong = stimuli.contradicting(prompt, base_seed, rng)
            cases.append(AttentionCase(prompt.prompt_id, prompt.text, (add(real, "true"),), (add(wrong, "wrong"),)))
        else:  # collapsed grid
            _check_grid(stimuli, prompt, rows * cols)
            varied = [add(stimuli.image(prompt, base_seed + k), "varied", k) for k in range(rows * cols)]
            cases.append(AttentionCase.collapsed_grid(prompt.prompt_id, prompt.text, varied))
    return AttentionPool(kind=kind, cases=tuple(cases))


def _check_grid(stimuli: Stimuli, prompt: PromptRecord, size: int) -> None:
    """A varied grid of a caption-file run needs ``size`` distinct images of the caption."""
    if isinstance(stimuli, RunStimuli) and stimuli.count(prompt.prompt_id) < size:
        raise HarnessError(
            f"a diversity attention check shows {size} different images of a caption, but the run holds "
            f"{stimuli.count(prompt.prompt_id)} of {prompt.prompt_id!r}; raise sampling.seeds_per_prompt or set "
            "study.attention_rate = 0"
        )


def _write_image(
    att_dir: RunDir, written: dict[tuple[str, str, int, str], str], model_id: str, protocol: str,
    prompt: PromptRecord, case: int, base_seed: int, image: np.ndarray, role: str, k: int = 0,
) -> str:
    """Store the ``k``-th image of attention case ``case`` in ``att_dir`` unless an earlier (interrupted) attempt did;
    returns its sha256. ``written``: ``{manifest key: sha256}`` of what is already there."""
    system_id, index = attention_system_id(protocol, role), case * ATTENTION_CASE_STRIDE + k
    done = written.get(work_key(system_id, prompt.prompt_id, index, {}))
    if done is not None:  # the stimulus is deterministic: the stored one is this one
        return done
    return att_dir.add_image(
        image,
        {
            "system_id": system_id,
            "model_id": model_id,
            "prompt_id": prompt.prompt_id,
            "prompt": prompt.text,
            "sample_index": index,
            "seed": base_seed + k,
            "settings": {},
            "checkpoint_sha256": None,
        },
    ).sha256
