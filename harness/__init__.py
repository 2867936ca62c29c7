"""unclip-harness: generate, measure and human-evaluate text-to-image diffusion models.

Orchestration layer: the CLI (`harness.cli`), run configuration, generation, scoring, studies, analysis and
reports. It is the only package that imports both `models` and `eval_protocols`; all SQL lives in
`harness.storage`.
"""

__version__ = "0.1.0"
