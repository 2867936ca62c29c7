"""GPU check of the generation pipelines: images/s, peak CUDA memory and a bf16-vs-fp32 sanity value per case.

Usage (``benchmarks/gpu_check.sh`` wraps it with a hard time limit; results recorded in benchmarks/generation.md)::

    bash benchmarks/gpu_check.sh [--json PATH]              # CUDA: finishes in < 8 min on one H100
    bash benchmarks/gpu_check.sh --cpu-smoke [--json PATH]  # CPU: tiny batch, 2 steps, fp32/bf16; seconds

Pipelines: ``glide``, ``unclip-diffusion-prior`` and ``unclip-ar-prior`` at toy size from the shipped checkpoints
(``checkpoints/toy``; 32×32 base + 32→64 upsampler), and ``unclip-mid64``: the toy CLIP and diffusion prior with a
random-weight 64×64 decoder of ``models/configs/unclip_decoder_mid64.json`` (334M parameters, no upsampler; under
``--cpu-smoke`` a small config of the same shape replaces it). The three toy pipelines share their decoder and
upsampler modules (same checkpoint files), so each UNet is compiled once per precision.

Cases: pipeline × precision (fp32, bf16, fp16 — fp16 on CUDA only) × compile (off, on — on CUDA only). Each case
makes one warm-up call (compilation included; excluded from the timing), then calls the pipeline on the same
``batch`` prompts until ``--case-s`` seconds have passed or ``--max-calls`` calls were made (at least one);
images/s = calls · batch / seconds (wall clock, ``time.perf_counter``, after ``torch.cuda.synchronize``). Peak
memory is ``torch.cuda.max_memory_allocated`` over the case (reset at its start; it includes the weights of every
pipeline loaded, reported as ``resident``). ``|Δ| vs fp32`` is the mean absolute difference, in uint8 levels, of
the case's images from the fp32 eager images of the same pipeline, prompts and seeds (a sanity value: bf16 on the
trained toy models is ~1.5/255 on the CPU; 0 for a bf16 case would mean autocast was not applied).

Time budget, by construction: eager cases run first, then compile cases (bf16 first, the mid-size model first); a
case starts only if ``--budget-s`` leaves at least ``--eager-reserve-s`` (``--compile-reserve-s`` for a compile
case) and is otherwise reported as skipped; a case that fails (out of memory, compile error) is reported with its
error and the run goes on. Rows are printed and the JSON rewritten after every case, so the wrapper's hard limit
loses nothing already measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.factory import create_pipeline
from models.networks import build_network, load_config
from models.networks.config import config_to_dict
from models.pipelines.base import SamplingConfig
from models.pipelines.stages import Stage
from models.pipelines.unclip import UnclipPipeline

ROOT = Path(__file__).resolve().parents[1]
TOY_PIPELINES = ("glide", "unclip-diffusion-prior", "unclip-ar-prior")
MID = "unclip-mid64"
SMOKE_MID_OVERRIDES: dict[str, Any] = {
    "model_channels": 16,
    "channel_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "attention_resolutions": [8],
    "num_head_channels": 16,
    "text_encoder": {"vocab_size": 512, "context_length": 32, "width": 32, "layers": 1, "heads": 2},
}
"""``--cpu-smoke``: the mid-size decoder shrunk to a few hundred thousand parameters, still 64×64."""


@dataclass(frozen=True)
class CheckPlan:
    """What one run measures (from the command line)."""

    device: str
    pipelines: tuple[str, ...]
    precisions: tuple[str, ...]
    compile_modes: tuple[bool, ...]
    toy_batch: int
    mid_batch: int
    sampler: str
    steps: str
    prior_steps: str
    upsampler_steps: str
    guidance: float
    prior_guidance: float
    case_s: float
    max_calls: int
    budget_s: float
    eager_reserve_s: float
    compile_reserve_s: float
    checkpoint_dir: str
    mid_config: dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One measurement: a pipeline at a precision, compiled or not."""

    pipeline: str
    precision: str
    compile: bool


@dataclass(frozen=True)
class CaseResult:
    """One row of the table (``status`` is ``ok``, ``skipped: ...`` or ``error: ...``; numbers None unless ok)."""

    pipeline: str
    precision: str
    compile: bool
    status: str
    batch: int
    steps: str
    guidance: str
    image_size: int | None = None
    calls: int | None = None
    timed_s: float | None = None
    images_per_s: float | None = None
    warmup_s: float | None = None
    peak_mib: float | None = None
    resident_mib: float | None = None
    diff_vs_fp32: float | None = None
    max_diff_vs_fp32: int | None = None


# ---------------------------------------------------------------------- pipelines


def random_decoder(config: dict[str, Any], device: str, seed: int = 0) -> torch.nn.Module:
    """An eval-mode UNet of ``config`` with random weights on ``device``, zero-initialised layers included.

    The UNet zero-initialises its output convolution and null CLIP embedding (so a fresh network predicts 0);
    those get N(0, 0.01²) weights here so that every output depends on the whole network.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        net = build_network(config)
    with torch.no_grad():
        for param in net.parameters():
            if not bool(param.any()):
                param.normal_(0.0, 0.01)
    return net.eval().requires_grad_(False)


def build_pipelines(plan: CheckPlan) -> dict[str, Any]:
    """The plan's pipelines by name, sharing the toy decoder, upsampler and CLIP modules (module docstring)."""
    unclip = create_pipeline("unclip-diffusion-prior", plan.checkpoint_dir, device=plan.device)
    assert isinstance(unclip, UnclipPipeline)
    pipelines: dict[str, Any] = {"unclip-diffusion-prior": unclip}
    if "unclip-ar-prior" in plan.pipelines:
        ar = create_pipeline("unclip-ar-prior", plan.checkpoint_dir, device=plan.device)
        same = ar.checkpoint_sha256.split("+")[1:] == unclip.checkpoint_sha256.split("+")[1:]
        pipelines["unclip-ar-prior"] = (
            dataclasses.replace(ar, decoder=unclip.decoder, upsampler=unclip.upsampler, clip=unclip.clip)
            if same
            else ar
        )
    if "glide" in plan.pipelines:
        glide = create_pipeline("glide", plan.checkpoint_dir, device=plan.device)
        same = glide.checkpoint_sha256.split("+")[-1] == unclip.checkpoint_sha256.split("+")[-1]
        pipelines["glide"] = dataclasses.replace(glide, upsampler=unclip.upsampler) if same else glide
    if MID in plan.pipelines:
        decoder = Stage(random_decoder(plan.mid_config, plan.device), unclip.decoder.diffusion)
        pipelines[MID] = dataclasses.replace(
            unclip, decoder=decoder, upsampler=None, model_id=MID, checkpoint_sha256="random-weights"
        )
    return {name: pipelines[name] for name in plan.pipelines}


def toy_prompts(n: int) -> list[str]:
    """``n`` toy-world test captions (seed 0)."""
    from harness.data import toyworld

    return [scene.caption for scene in toyworld.iter_scenes(n, split="test", seed=0)]


# ---------------------------------------------------------------------- measuring


def plan_cases(plan: CheckPlan) -> list[Case]:
    """Eager cases (pipeline-major, fp32 first), then compile cases (bf16, fp16, fp32; the mid-size model first)."""
    cases = [Case(p, precision, False) for p in plan.pipelines for precision in plan.precisions]
    if True in plan.compile_modes:
        order = [p for p in (MID, *TOY_PIPELINES) if p in plan.pipelines]
        for precision in sorted(plan.precisions, key=("bf16", "fp16", "fp32").index):
            cases += [Case(p, precision, True) for p in order]
    return cases


def sampling_config(plan: CheckPlan, case: Case) -> SamplingConfig:
    """The pipeline settings of a case."""
    return SamplingConfig(
        prior_guidance_scale=plan.prior_guidance,
        decoder_guidance_scale=plan.guidance,
        sampler=plan.sampler,
        prior_steps=plan.prior_steps,
        decoder_steps=plan.steps,
        upsampler_steps=plan.upsampler_steps,
        batch_size=plan.mid_batch if case.pipeline == MID else plan.toy_batch,
        precision=case.precision,
        compile=case.compile,
    )


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _mib(nbytes: int) -> float:
    return round(nbytes / 2**20, 1)


def measure(pipeline: Any, prompts: list[str], config: SamplingConfig, plan: CheckPlan) -> dict[str, Any]:
    """Warm-up call, then timed calls (module docstring); returns the numbers and the warm-up images."""
    cuda = torch.device(plan.device).type == "cuda"
    seeds = list(range(len(prompts)))
    _sync(plan.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(plan.device)
    resident = torch.cuda.memory_allocated(plan.device) if cuda else None
    start = time.perf_counter()
    images = pipeline(prompts, seeds, config).images
    _sync(plan.device)
    warmup = time.perf_counter() - start
    calls, start = 0, time.perf_counter()
    while True:
        pipeline(prompts, seeds, config)
        _sync(plan.device)
        calls += 1
        timed = time.perf_counter() - start
        if timed >= plan.case_s or calls >= plan.max_calls:
            break
    return {
        "images": images,
        "image_size": int(images.shape[1]),
        "calls": calls,
        "timed_s": round(timed, 3),
        "images_per_s": round(calls * len(prompts) / timed, 3),
        "warmup_s": round(warmup, 2),
        "peak_mib": _mib(torch.cuda.max_memory_allocated(plan.device)) if cuda else None,
        "resident_mib": _mib(resident) if resident is not None else None,
    }


def run_case(
    case: Case, pipeline: Any, plan: CheckPlan, deadline: float, references: dict[str, np.ndarray]
) -> CaseResult:
    """Measure one case within the budget; fp32 eager images become the pipeline's reference."""
    config = sampling_config(plan, case)
    prior_steps = {"glide": "-", "unclip-ar-prior": "AR"}.get(case.pipeline, plan.prior_steps)  # AR: K components
    steps = f"{plan.sampler} {prior_steps}/{plan.steps}/{'-' if case.pipeline == MID else plan.upsampler_steps}"
    guidance = f"{plan.prior_guidance if case.pipeline != 'glide' else '-'}/{plan.guidance}"
    row = CaseResult(case.pipeline, case.precision, case.compile, "ok", config.batch_size, steps, guidance)
    left = deadline - time.perf_counter()
    need = plan.compile_reserve_s if case.compile else plan.eager_reserve_s
    if left < need:
        return dataclasses.replace(row, status=f"skipped: time budget ({left:.0f} s left, case reserve {need:.0f} s)")
    try:
        numbers = measure(pipeline, toy_prompts(config.batch_size), config, plan)
    except Exception as err:  # noqa: BLE001 - one failing case (OOM, compile error) must not lose the others
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return dataclasses.replace(row, status=f"error: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    images = numbers.pop("images")
    if case.precision == "fp32" and not case.compile:
        references[case.pipeline] = images
    ref = references.get(case.pipeline)
    if ref is not None and ref.shape == images.shape and (case.precision, case.compile) != ("fp32", False):
        delta = np.abs(images.astype(np.int16) - ref.astype(np.int16))
        numbers["diff_vs_fp32"] = round(float(delta.mean()), 3)
        numbers["max_diff_vs_fp32"] = int(delta.max())
    return dataclasses.replace(row, **numbers)


# ---------------------------------------------------------------------- reporting

COLUMNS = (
    ("pipeline", "pipeline"),
    ("precision", "precision"),
    ("compile", "compile"),
    ("batch", "batch"),
    ("steps", "steps prior/base/up"),
    ("guidance", "guidance prior/base"),
    ("image_size", "size"),
    ("images_per_s", "images/s"),
    ("calls", "calls"),
    ("timed_s", "timed s"),
    ("warmup_s", "warm-up s"),
    ("peak_mib", "peak MiB"),
    ("resident_mib", "resident MiB"),
    ("diff_vs_fp32", "mean abs diff vs fp32"),
    ("max_diff_vs_fp32", "max abs diff"),
    ("status", "status"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).replace("|", "/")


def table(rows: Sequence[CaseResult]) -> str:
    """The rows as one Markdown table."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(getattr(row, key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def sanity_lines(rows: Sequence[CaseResult]) -> list[str]:
    """One line per pipeline: bf16 (eager) images against fp32 (eager), mean and max |Δ| in uint8 levels."""
    lines = []
    for row in rows:
        if row.precision == "bf16" and not row.compile and row.diff_vs_fp32 is not None:
            lines.append(
                f"sanity {row.pipeline}: bf16 vs fp32 mean |Δ| = {row.diff_vs_fp32}/255, max {row.max_diff_vs_fp32}"
                + (" (identical: autocast not applied?)" if row.max_diff_vs_fp32 == 0 else "")
            )
    return lines


def machine_info(device: str) -> dict[str, Any]:
    """Device, library versions and the numeric flags that change fp32 speed."""
    info: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.device(device).type == "cuda":
        info |= {
            "gpu": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        }
    return info


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (a temporary file renamed over ``path``); no-op without a path."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------- command line


def parse_plan(argv: Sequence[str] | None = None) -> tuple[CheckPlan, Path | None, int | None, float]:
    """The plan, the JSON path, the torch thread count and the start time (epoch s) from the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="CPU: batch 2, 2 steps, fp32/bf16, small mid model")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --cpu-smoke)")
    parser.add_argument("--pipelines", nargs="+", default=[MID, *TOY_PIPELINES], choices=[MID, *TOY_PIPELINES])
    parser.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-on cases")
    parser.add_argument("--toy-batch", type=int, default=64)
    parser.add_argument("--mid-batch", type=int, default=16)
    parser.add_argument("--sampler", default="ddim", help="sampler of every stage (models.diffusion.SAMPLER_NAMES)")
    parser.add_argument("--steps", default="50", help="decoder / GLIDE base respacing")
    parser.add_argument("--prior-steps", default="64")
    parser.add_argument("--upsampler-steps", default="10")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--prior-guidance", type=float, default=2.0)
    parser.add_argument("--case-s", type=float, default=6.0, help="timed seconds per case (at least one call)")
    parser.add_argument("--max-calls", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=420.0, help="no case starts past this (see the docstring)")
    parser.add_argument("--eager-reserve-s", type=float, default=30.0)
    parser.add_argument("--compile-reserve-s", type=float, default=120.0)
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints" / "toy"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (--cpu-smoke: 1)")
    parser.add_argument("--started-at", type=float, default=None, help="epoch seconds the budget counts from")
    args = parser.parse_args(argv)
    mid = config_to_dict(load_config("unclip_decoder_mid64"))
    if args.cpu_smoke:
        device = args.device or "cpu"
        mid |= SMOKE_MID_OVERRIDES
        args.toy_batch = args.mid_batch = 2
        args.steps = args.prior_steps = args.upsampler_steps = "2"
        args.case_s, args.max_calls, args.no_compile = 0.0, 1, True
        args.precisions = args.precisions or ["fp32", "bf16"]
        args.threads = args.threads or 1
    else:
        device = args.device or "cuda"
    cuda = torch.device(device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("no CUDA device here; run with --cpu-smoke (or --device cpu)")
    precisions = args.precisions or (["fp32", "bf16", "fp16"] if cuda else ["fp32", "bf16"])
    if "fp16" in precisions and not cuda:
        parser.error("fp16 needs a CUDA device; drop it from --precisions on the CPU")
    plan = CheckPlan(
        device=device,
        pipelines=tuple(args.pipelines),
        precisions=tuple(sorted(set(precisions), key=("fp32", "bf16", "fp16").index)),
        compile_modes=(False,) if args.no_compile or not cuda else (False, True),
        toy_batch=args.toy_batch,
        mid_batch=args.mid_batch,
        sampler=args.sampler,
        steps=args.steps,
        prior_steps=args.prior_steps,
        upsampler_steps=args.upsampler_steps,
        guidance=args.guidance,
        prior_guidance=args.prior_guidance,
        case_s=args.case_s,
        max_calls=max(1, args.max_calls),
        budget_s=args.budget_s,
        eager_reserve_s=args.eager_reserve_s,
        compile_reserve_s=args.compile_reserve_s,
        checkpoint_dir=args.checkpoint_dir,
        mid_config=mid,
    )
    return plan, args.json, args.threads, args.started_at or time.time()


def _raise_recompile_limit(limit: int = 64) -> None:
    """Every UNet of the run shares one compiled code object; let it hold all their (precision) variants."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, limit)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; prints rows as they finish, then the table, the sanity lines and the total time."""
    plan, json_path, threads, started_at = parse_plan(argv)
    started = time.perf_counter() - (time.time() - started_at)  # the budget includes start-up (imports)
    if threads:
        torch.set_num_threads(threads)
    if True in plan.compile_modes:
        _raise_recompile_limit()
    deadline = started + plan.budget_s
    payload: dict[str, Any] = {
        "command": " ".join(["benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(plan.device),
        "plan": dataclasses.asdict(plan),
        "rows": [],
        "finished": False,
    }
    try:
        pipelines = build_pipelines(plan)
    except ValueError as err:  # a missing or mismatched checkpoint: one line naming it
        print(f"error: {err}", file=sys.stderr)
        return 2
    mid_params = sum(p.numel() for p in pipelines[MID].decoder.network.parameters()) if MID in pipelines else None
    payload["mid_decoder_parameters"] = mid_params
    where = payload["machine"].get("gpu", platform.processor() or "cpu")
    size = f"; mid-size decoder: {mid_params:,} parameters" if mid_params else ""
    print(f"gpu_check on {plan.device} ({where}){size}; {len(plan_cases(plan))} cases", flush=True)
    references: dict[str, np.ndarray] = {}
    rows: list[CaseResult] = []
    for case in tqdm(plan_cases(plan), desc="gpu_check cases", unit="case", file=sys.stderr):
        row = run_case(case, pipelines[case.pipeline], plan, deadline, references)
        rows.append(row)
        tqdm.write(
            f"{row.pipeline:24s} {row.precision:5s} compile={_cell(row.compile):3s} "
            f"images/s={_cell(row.images_per_s):>9s} peak MiB={_cell(row.peak_mib):>8s} "
            f"|Δ|={_cell(row.diff_vs_fp32):>6s}  {row.status}",
            file=sys.stdout,
        )
        payload["rows"] = [dataclasses.asdict(r) for r in rows]
        payload["total_s"] = round(time.perf_counter() - started, 1)
        write_json(json_path, payload)
    payload["finished"] = True
    payload["total_s"] = round(time.perf_counter() - started, 1)
    write_json(json_path, payload)
    print()
    print(table(rows))
    print()
    for line in sanity_lines(rows):
        print(line)
    measured = sum(r.status == "ok" for r in rows)
    print(f"total: {payload['total_s']} s from start-up for {len(rows)} cases ({measured} measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
