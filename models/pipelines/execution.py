"""How a pipeline's networks run on their device: autocast precision, memory format, ``torch.compile``.

Three settings of :class:`~models.pipelines.base.SamplingConfig`, gathered with the device in :class:`Execution`:

* ``precision`` — ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: every denoising network call (diffusion prior,
  AR prior, decoder / GLIDE base, upsampler) runs under ``torch.autocast(device_type, dtype)`` and its output is
  cast back to float32, so the diffusion process around it (posterior mean, DDIM update, noise, the guidance
  combination u + s·(c − u), candidate selection) stays float32. CLIP text/image encoding stays float32 (one
  forward per image; it fixes z_t and the prior's z_i·z_t choice). ``fp16`` needs CUDA: on any other device
  :class:`Execution` raises one ``ValueError`` before any work is done.
* ``channels_last`` — 4-D tensors passed to the network (x_t, the upsampler's low-res image) are made
  ``torch.channels_last`` and the network's 4-D weights are converted for the duration of the stage
  (:func:`network_format`); they are converted back afterwards, so the same network then runs in the default
  layout again, bit for bit. Networks without 4-D inputs (the priors) are unaffected. ``upsampler_channels_last``
  sets the upsampler's format on its own (``Execution.of(config, device, "upsampler")``).
* ``compile`` — the UNet stages (decoder / GLIDE base, upsampler) call a ``torch.compile`` of the network, made
  once per :class:`~models.pipelines.stages.Stage` and reused by every later call (the first call pays the
  compilation). The priors are never compiled (the AR prior's sequence grows every step). Each precision and
  memory format is one recompilation of the same compiled module (dynamo guards on them); PyTorch caps these
  per code object (``torch._dynamo.config.recompile_limit``, 8 by default, shared by every UNet of a process),
  beyond which it silently runs eagerly.

Determinism. The defaults (fp32, no channels-last, no compile) call the network itself, exactly as before these
settings existed. Under any setting the image for (prompt, seed, settings) stays independent of the batch it was
made in, for the same reason as in fp32 (per-sample generators, fixed-size chunks: see
`models.pipelines.stages`); the settings belong to "settings" (they are stored in each image's metadata) since
they change the last bits (bf16: visibly, see ``tests/models/pipelines/test_execution.py``). Noise is always drawn
in float32 on the CPU generators and then moved, so CPU and CUDA runs draw the same noise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from models.pipelines.base import SamplingConfig

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Precision names → autocast dtype (None: no autocast, float32 throughout)."""


def check_precision(precision: str) -> None:
    """Raise ValueError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class Execution:
    """Where and how the networks of one pipeline call run (module docstring).

    Attributes:
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only).
        channels_last: run 4-D inputs and weights in ``torch.channels_last``.
        compile: call ``torch.compile`` of the UNet stages (ignored by the priors).

    Raises:
        ValueError: an unknown precision, or ``fp16`` on a device other than CUDA.
    """

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.precision == "fp16" and self.device_type != "cuda":
            raise ValueError(
                f"precision 'fp16' needs a CUDA device, got device {self.device!r}; "
                "use precision 'bf16' (or 'fp32') on the CPU"
            )

    @classmethod
    def of(cls, config: SamplingConfig, device: torch.device | str, stage: str = "") -> Execution:
        """The execution of a :class:`~models.pipelines.base.SamplingConfig` on ``device``, for ``stage``
        (``"upsampler"`` takes ``config.upsampler_channels_last`` when it is set; any other stage, or none, takes
        ``config.channels_last``)."""
        channels_last = config.channels_last
        if stage == "upsampler" and config.upsampler_channels_last is not None:
            channels_last = config.upsampler_channels_last
        return cls(
            device=str(device),
            precision=config.precision,
            channels_last=channels_last,
            compile=config.compile,
        )

    @property
    def device_type(self) -> str:
        """``"cpu"``, ``"cuda"``, ... (the device without its index)."""
        return torch.device(self.device).type

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for fp32."""
        return PRECISIONS[self.precision]

    @property
    def is_plain(self) -> bool:
        """True for the defaults: the network is called as it is."""
        return self.autocast_dtype is None and not self.channels_last and not self.compile

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` at this precision on this device type (a no-op context for fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)


class NetworkRunner:
    """``network(*args, **kwargs)`` under an :class:`Execution`: channels-last 4-D tensors, autocast, float32 out.

    Args:
        forward: the network, or its compiled version.
        execution: the settings.
    """

    def __init__(self, forward: Callable[..., Tensor], execution: Execution) -> None:
        self.forward = forward
        self.execution = execution

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        if self.execution.channels_last:
            args = tuple(_to_channels_last(a) for a in args)
            kwargs = {key: _to_channels_last(value) for key, value in kwargs.items()}
        with self.execution.autocast():
            out = self.forward(*args, **kwargs)
        return out.float()


def _to_channels_last(value: Any) -> Any:
    if isinstance(value, Tensor) and value.ndim == 4 and value.is_floating_point():
        return value.contiguous(memory_format=torch.channels_last)
    return value


@contextlib.contextmanager
def network_format(network: nn.Module, channels_last: bool) -> Iterator[None]:
    """Hold ``network``'s 4-D weights in ``torch.channels_last`` inside the block (no-op when False).

    The weights are converted back to the default contiguous layout on exit (same values, so the network's
    default-layout outputs afterwards are bit-identical to those before). Not reentrant for one network.
    """
    if not channels_last:
        yield
        return
    network.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        network.to(memory_format=torch.contiguous_format)


@contextlib.contextmanager
def running(
    network: nn.Module, execution: Execution, compiled: Callable[..., Tensor] | None = None
) -> Iterator[Callable[..., Tensor]]:
    """Yield the callable to use for ``network`` under ``execution`` inside the block.

    Args:
        network: the eval-mode network.
        execution: the settings; for :attr:`Execution.is_plain` the network itself is yielded.
        compiled: the compiled network, used when ``execution.compile`` (None: run eagerly).
    """
    if execution.is_plain:
        yield network
        return
    forward = compiled if execution.compile and compiled is not None else network
    with network_format(network, execution.channels_last):
        yield NetworkRunner(forward, execution)
