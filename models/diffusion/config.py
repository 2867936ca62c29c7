"""A JSON-serialisable description of a diffusion process, so a stage's process is rebuilt from its config.

Example (the unCLIP decoder of Table 3, sampled with 250 strided steps)::

    config = DiffusionConfig(schedule="cosine", num_timesteps=1000, mean_type="epsilon", var_type="learned_range")
    diffusion = config.build(respacing="250")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from models.diffusion.gaussian import VLB_WEIGHT, GaussianDiffusion, ModelMeanType, ModelVarType
from models.diffusion.respace import SpacedDiffusion, space_timesteps
from models.diffusion.schedules import SCHEDULE_NAMES, get_named_beta_schedule


@dataclass(frozen=True)
class DiffusionConfig:
    """The process of one stage: schedule, length, what the network predicts and how the variance is set.

    Attributes:
        schedule: a name in :data:`~models.diffusion.schedules.SCHEDULE_NAMES`.
        num_timesteps: T of the training chain.
        mean_type: a :class:`ModelMeanType` value: ``"epsilon"``, ``"start_x"`` or ``"velocity"``.
        var_type: a :class:`ModelVarType` value: ``"fixed_small"``, ``"fixed_large"`` or ``"learned_range"``.
        rescale_timesteps: respaced chains call the network with steps scaled to [0, 1000).
        vlb_weight: λ of the hybrid loss (learned variance only).
    """

    schedule: str = "cosine"
    num_timesteps: int = 1000
    mean_type: str = ModelMeanType.EPSILON.value
    var_type: str = ModelVarType.FIXED_SMALL.value
    rescale_timesteps: bool = False
    vlb_weight: float = VLB_WEIGHT

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULE_NAMES:
            raise ValueError(f"unknown noise schedule {self.schedule!r}; use one of: {', '.join(SCHEDULE_NAMES)}")
        _check_choice("mean_type", self.mean_type, ModelMeanType)
        _check_choice("var_type", self.var_type, ModelVarType)
        if int(self.num_timesteps) != self.num_timesteps or self.num_timesteps < 1:
            raise ValueError(f"num_timesteps must be a positive integer, got {self.num_timesteps!r}")

    def build(
        self, respacing: int | str | Sequence[int] | None = None, last_step: int | None = None
    ) -> GaussianDiffusion:
        """The process; with ``respacing`` (see :func:`~models.diffusion.respace.space_timesteps`) a
        :class:`SpacedDiffusion` over the kept steps.

        ``respacing`` may also be ``"karrasN"`` or ``"logsnrN"`` (noise-level spacings over the kept chain's ᾱ).
        ``last_step`` (with ``respacing``) truncates the chain: the steps are spread over original steps
        0..``last_step`` only, so sampling starts at ``last_step`` instead of T − 1 (the caller supplies
        x_{last_step}, e.g. ``q_sample`` of an estimate of x_0; see `models.pipelines.stages.upsample_images`).

        Raises:
            ValueError: ``last_step`` outside [0, T − 1], or given without ``respacing``.
        """
        betas = get_named_beta_schedule(self.schedule, self.num_timesteps)
        mean_type, var_type = ModelMeanType(self.mean_type), ModelVarType(self.var_type)
        if respacing is None:
            if last_step is not None:
                raise ValueError("last_step needs a respacing (the number of steps to spread over 0..last_step)")
            return GaussianDiffusion(betas, mean_type, var_type, self.vlb_weight)
        length = self.num_timesteps if last_step is None else int(last_step) + 1
        if not 1 <= length <= self.num_timesteps:
            raise ValueError(f"last_step must lie in [0, {self.num_timesteps - 1}], got {last_step}")
        alphas_cumprod = np.cumprod(1.0 - betas)[:length]
        return SpacedDiffusion(
            space_timesteps(length, respacing, alphas_cumprod=alphas_cumprod),
            betas,
            mean_type,
            var_type,
            self.rescale_timesteps,
            self.vlb_weight,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffusionConfig:
        """Build from a dict, refusing unknown keys (typos must not pass silently).

        Raises:
            ValueError: unknown keys or invalid values.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown diffusion config keys {unknown}; valid keys: {', '.join(sorted(known))}")
        return cls(**dict(data))


def _check_choice(name: str, value: str, enum_type: type[ModelMeanType | ModelVarType]) -> None:
    valid = [member.value for member in enum_type]
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; use one of: {', '.join(valid)}")
