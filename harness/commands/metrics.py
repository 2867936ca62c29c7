"""`harness metrics NAME A.npy [B.npy]`: a feature-space metric from saved features.

Two-file metrics take ``A`` = reference (real) features and ``B`` = sample features, both ``(N, D)`` ``.npy``:

- ``fd``: Fréchet distance; ``A`` may also be an ``.npz`` with ``mu`` (D,) and ``sigma`` (D, D) (pytorch-fid's
  ``--save-stats`` format), optionally ``n``;
- ``kid``: kernel inception distance (mean and std over subsets);
- ``cmmd``: CLIP MMD (features should be CLIP image embeddings);
- ``prdc``: precision and recall (k = 3), density and coverage (k = 5).

One-file metrics take the sample features only:

- ``diversity``: within-caption mean pairwise cosine distance; ``vendi``: within-caption Vendi score. ``--groups FILE``
  gives each row's caption (``.npy`` of N labels, or a text file with one label per line); without it the whole file
  is one group.

``--json`` prints one JSON object keyed by the metrics' own names (``fd``; ``kid``, ``kid_std``; ``precision``,
``recall``, ``density``, ``coverage``; ...) plus ``n_samples`` and ``n_reference``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.commands import add_command
from harness.errors import HarnessError

if TYPE_CHECKING:  # the metric stack imports torch/torchmetrics: only when the command runs, not for `--help`
    from eval_protocols.metrics.base import FeatureStats, MetricResult



def file_metrics() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(two-file metrics, one-file metrics)`` from the registry: those of sample features against reference
    features (``A.npy B.npy``), and those of sample features alone (``SAMPLES.npy``)."""
    from eval_protocols.metrics.registry import get_metric, list_metrics, metric_names

    one = tuple(n for n in list_metrics() if set(get_metric(n).requires) == {"samples"})
    return metric_names(needs_reference=True, needs_text=False), one


def register(subparsers: Any) -> None:
    """Add the ``metrics`` subcommand."""
    p = add_command(
        subparsers,
        "metrics",
        description="Compute a feature-space metric from saved features: A is the reference, B the samples "
        "(fd, kid, cmmd, prdc); vendi and diversity take the sample file only.",
        epilog="Examples: harness metrics fd ref.npz samples.npy --json   |   "
        "harness metrics vendi clip.npy --groups prompts.txt",
    )
    two, one = file_metrics()
    p.add_argument("name", metavar="NAME", choices=two + one, help=", ".join(two + one))
    p.add_argument("files", metavar="FILE", nargs="+", help="A.npy B.npy (reference, samples), or one file")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--groups", metavar="FILE", help="caption label per row for vendi/diversity (.npy or text lines)")
    p.add_argument("--seed", type=int, default=0, help="seed of KID subsets (default 0)")
    p.add_argument("--subsets", type=int, default=100, help="KID subset count (default 100)")
    p.add_argument("--subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    p.add_argument("--k-pr", type=int, default=3, help="neighbour rank for precision/recall (default 3)")
    p.add_argument("--k-dc", type=int, default=5, help="neighbour rank for density/coverage (default 5)")
    p.add_argument("--sqrt", choices=("eigh", "eig"), default="eigh", help="FD matrix square-root method")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the files, compute, print; bad input becomes a one-line `HarnessError`."""
    expected = 2 if args.name in file_metrics()[0] else 1
    if len(args.files) != expected:
        usage = "A.npy B.npy (reference, samples)" if expected == 2 else "SAMPLES.npy"
        raise HarnessError(f"metric '{args.name}' takes {expected} file(s): {usage}; got {len(args.files)}")
    if args.groups and expected == 2:
        raise HarnessError(f"--groups applies to vendi and diversity only, not '{args.name}'; drop it")
    options = {
        "fd": {"method": args.sqrt},
        "kid": {"subsets": args.subsets, "subset_size": args.subset_size, "seed": args.seed},
        "prdc": {"k_pr": args.k_pr, "k_dc": args.k_dc},
    }
    try:
        if expected == 2:
            reference, reference_stats = _load_reference(Path(args.files[0]), allow_stats=args.name == "fd")
            samples = _load_features(Path(args.files[1]))
            groups = None
        else:
            reference, reference_stats = None, None
            samples = _load_features(Path(args.files[0]))
            groups = _load_groups(Path(args.groups)) if args.groups else None
        from eval_protocols.metrics.compute import compute_metrics

        results = compute_metrics(
            [args.name], reference, samples, reference_stats=reference_stats, groups=groups, options=options
        )
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    n_reference = len(reference) if reference is not None else None
    if reference_stats is not None:
        n_reference = reference_stats.n
    _print(results, len(samples), n_reference, as_json=args.json)
    return 0


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise HarnessError(f"feature file not found: {path}; save features with numpy.save (N, D) first")


def _load_features(path: Path) -> np.ndarray:
    """An ``(N, D)`` float array from ``.npy`` (no pickles)."""
    _require_file(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise HarnessError(f"{path}: not a readable .npy array ({exc}); save features with numpy.save") from exc
    if not isinstance(array, np.ndarray) or array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        shape = getattr(array, "shape", "an .npz archive")
        raise HarnessError(f"{path}: expected a numeric (N, D) feature array, got {shape}")
    return array


def _load_reference(path: Path, allow_stats: bool) -> tuple[np.ndarray | None, FeatureStats | None]:
    """Reference features, or FD statistics when the file is an ``.npz`` (fd only)."""
    _require_file(path)
    if path.suffix == ".npz":
        if not allow_stats:
            raise HarnessError(f"{path}: .npz statistics work only with fd; pass reference features as .npy")
        from eval_protocols.metrics.fid import load_stats

        return None, load_stats(path)
    return _load_features(path), None


def _load_groups(path: Path) -> np.ndarray:
    """Caption labels: an ``.npy`` vector, or a text file with one label per line."""
    if not path.is_file():
        raise HarnessError(f"groups file not found: {path}; give one caption label per feature row")
    if path.suffix == ".npy":
        result: np.ndarray = np.load(path, allow_pickle=False)
        return result
    return np.array(path.read_text(encoding="utf-8").splitlines())


def _print(results: list[MetricResult], n_samples: int, n_reference: int | None, as_json: bool) -> None:
    document: dict[str, Any] = {}
    for result in results:
        document.update(result.to_json(skip=("n_reference",)))
    document["n_samples"] = n_samples
    if n_reference is not None:
        document["n_reference"] = n_reference
    if as_json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    width = max(len(key) for key in document)
    for key, value in document.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        sys.stdout.write(f"{key:<{width}}  {shown}\n")
