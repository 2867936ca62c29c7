"""Classifier-free guidance as a wrapper around the model callable (Ho & Salimans 2021; GLIDE §2.4).

    ε̂(x_t | c) = ε(x_t | ∅) + s · (ε(x_t | c) − ε(x_t | ∅))

s = 1 is the conditional model, s = 0 the unconditional one, s > 1 guides. The combination is linear, so it
applies unchanged to x_0- and v-predicting networks (the unCLIP prior guides its x̂_0). With learned variance
(output of 2·C channels) only the first C (mean) channels are guided and the conditional branch's variance
channels are kept, as in GLIDE's notebook and diffusers' unCLIP decoder.

One batched forward: the wrapper concatenates x with itself (first half conditional, second half
unconditional), so a batch of B samples costs one network call on 2B inputs. Samplers see a plain
``model_fn(x, t, **cond)`` over B samples.

Null-condition contract (for the networks in ``models/networks``):
    * **Mask keyword (preferred).** A network that learned null embeddings for classifier-free guidance
      accepts an optional keyword ``cond_mask: Tensor[bool]`` of shape (B,): ``True`` = use sample i's
      conditioning, ``False`` = replace *all* of sample i's conditioning by the learned null embedding(s)
      (the same substitution training applies to dropped samples). Omitted = all ``True``. A network whose
      conditions are dropped independently in training (unCLIP decoder: CLIP embedding 10%, caption 50%)
      may take one mask per condition, e.g. ``image_cond_mask`` and ``text_cond_mask``; pass their names as
      ``mask_keys`` and the wrapper sets every one of them ``True`` in the conditional half and ``False`` in
      the unconditional half. A mask the caller already passes in ``cond`` is kept for the conditional half.
    * **Explicit null inputs.** For networks without learned null embeddings (e.g. GLIDE's empty-caption
      tokens), pass ``null_cond``: a dict of tensors (batch B or 1) that replace the same-named keywords in
      the unconditional half. Use ``mask_keys=()`` then if the network takes no mask.
    * Every other tensor keyword whose dim 0 is B (e.g. the upsampler's low-resolution image) is repeated in
      both halves; any other keyword is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from models.diffusion.gaussian import ModelFn

DEFAULT_MASK_KEYS: tuple[str, ...] = ("cond_mask",)


def guided_combine(
    cond_out: Tensor,
    uncond_out: Tensor,
    scale: float | Tensor,
    guided_channels: int | None = None,
) -> Tensor:
    """Combine conditional and unconditional network outputs: u + s · (c − u).

    Args:
        cond_out: the conditional output, shape (B, C_out, ...).
        uncond_out: the unconditional output, same shape.
        scale: guidance scale s, a number or a tensor of shape (B,) (per-sample scales). Where s = 1 the
            result is exactly ``cond_out``.
        guided_channels: guide only the first this-many channels of dim 1 and copy the rest from
            ``cond_out`` (learned variance); ``None`` guides all channels.

    Returns:
        the guided output, shape of ``cond_out``.
    """
    s = _as_scale(scale, cond_out)
    if guided_channels is None:
        return torch.where(s == 1, cond_out, uncond_out + s * (cond_out - uncond_out))
    c, u = cond_out[:, :guided_channels], uncond_out[:, :guided_channels]
    guided = torch.where(s == 1, c, u + s * (c - u))
    return torch.cat([guided, cond_out[:, guided_channels:]], dim=1)


class ClassifierFreeGuidance:
    """A guided ``model_fn``: one forward on [x; x] with [cond; null cond], combined by :func:`guided_combine`.

    Args:
        model_fn: the network, ``model_fn(x, t, **cond)`` (see the module docstring for the contract).
        scale: s, a number or a tensor of shape (B,) for per-sample scales (B must match each call's batch).
        null_cond: tensors replacing same-named keywords in the unconditional half (batch B or 1).
        mask_keys: boolean mask keywords set ``True``/``False`` in the conditional/unconditional halves.
        split_variance: guide only the first C channels (C = x's channel count) and keep the conditional
            variance channels. ``None`` (default) infers it: ``True`` when the output has 2·C channels.

    Raises (at call time):
        ValueError: a per-sample scale or a conditioning tensor whose batch does not match x, a ``null_cond``
            key the caller did not pass, or ``split_variance=True`` with an output that is not 2·C channels.
    """

    def __init__(
        self,
        model_fn: ModelFn,
        scale: float | Tensor,
        *,
        null_cond: Mapping[str, Tensor] | None = None,
        mask_keys: Sequence[str] = DEFAULT_MASK_KEYS,
        split_variance: bool | None = None,
    ) -> None:
        self.model_fn = model_fn
        self.scale = scale
        self.null_cond = dict(null_cond or {})
        self.mask_keys = tuple(mask_keys)
        self.split_variance = split_variance

    def __call__(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        batch = x.shape[0]
        if isinstance(self.scale, Tensor) and self.scale.shape != (batch,):
            raise ValueError(f"per-sample guidance scale must have shape ({batch},), got {tuple(self.scale.shape)}")
        if not isinstance(self.scale, Tensor) and float(self.scale) == 1.0:
            return self.model_fn(x, t, **self._conditional_kwargs(cond, batch, x.device))
        doubled = self._doubled_kwargs(cond, batch, x.device)
        out = self.model_fn(torch.cat([x, x]), torch.cat([t, t]), **doubled)
        cond_out, uncond_out = out[:batch], out[batch:]
        return guided_combine(cond_out, uncond_out, self.scale, self._guided_channels(x, out))

    def _conditional_kwargs(self, cond: Mapping[str, Any], batch: int, device: torch.device) -> dict[str, Any]:
        kwargs = dict(cond)
        for key in self.mask_keys:
            kwargs.setdefault(key, torch.ones(batch, dtype=torch.bool, device=device))
        return kwargs

    def _doubled_kwargs(self, cond: Mapping[str, Any], batch: int, device: torch.device) -> dict[str, Any]:
        unknown = set(self.null_cond) - set(cond)
        if unknown:
            raise ValueError(
                f"null_cond keys {sorted(unknown)} are not among the conditioning keywords {sorted(cond)}; "
                "pass the conditional tensors under the same names"
            )
        doubled: dict[str, Any] = {}
        for key, value in cond.items():
            if key in self.mask_keys:
                continue
            if key in self.null_cond:
                doubled[key] = torch.cat(
                    [_check_batch(key, value, batch), _expand_null(key, self.null_cond[key], batch)]
                )
            elif isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
                doubled[key] = torch.cat([value, value])
            else:
                doubled[key] = value
        for key in self.mask_keys:
            given = cond.get(key)
            keep = torch.ones(batch, dtype=torch.bool, device=device) if given is None else given.to(torch.bool)
            doubled[key] = torch.cat(
                [_check_batch(key, keep, batch), torch.zeros(batch, dtype=torch.bool, device=device)]
            )
        return doubled

    def _guided_channels(self, x: Tensor, out: Tensor) -> int | None:
        channels = x.shape[1] if x.ndim > 1 else None
        doubles = channels is not None and out.ndim > 1 and out.shape[1] == 2 * channels
        if self.split_variance is None:
            return channels if doubles else None
        if not self.split_variance:
            return None
        if not doubles:
            raise ValueError(
                f"split_variance=True needs a model output with 2×{channels} channels, got {tuple(out.shape)}; "
                "use split_variance=False for fixed-variance networks"
            )
        return channels


def classifier_free_guidance(
    model_fn: ModelFn,
    scale: float | Tensor,
    *,
    null_cond: Mapping[str, Tensor] | None = None,
    mask_keys: Sequence[str] = DEFAULT_MASK_KEYS,
    split_variance: bool | None = None,
) -> ClassifierFreeGuidance:
    """Wrap ``model_fn`` with classifier-free guidance at scale ``scale`` (see :class:`ClassifierFreeGuidance`)."""
    return ClassifierFreeGuidance(
        model_fn, scale, null_cond=null_cond, mask_keys=mask_keys, split_variance=split_variance
    )


def _as_scale(scale: float | Tensor, like: Tensor) -> Tensor:
    """Scale as a tensor broadcastable to ``like``: a 0-d tensor, or (B, 1, ..., 1) for a per-sample (B,) scale."""
    s = torch.as_tensor(scale, dtype=like.dtype, device=like.device)
    if s.ndim == 1:
        s = s.reshape(-1, *([1] * (like.ndim - 1)))
    return s


def _check_batch(key: str, value: Tensor, batch: int) -> Tensor:
    if not isinstance(value, Tensor) or value.ndim == 0 or value.shape[0] != batch:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"conditioning {key!r} must be a tensor with batch {batch} in dim 0, got {shape}")
    return value


def _expand_null(key: str, value: Tensor, batch: int) -> Tensor:
    if value.ndim > 0 and value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    return _check_batch(key, value, batch)
