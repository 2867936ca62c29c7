"""Pipelines: tokenizing, stage order, per-stage sampler and guidance — where networks and the process meet.

Doors: :class:`~models.pipelines.base.Pipeline` (``pipeline(prompts, seeds, SamplingConfig) -> GenerationOutput``),
:class:`~models.pipelines.unclip.UnclipPipeline` (text → CLIP z_t → prior → decoder → upsampler, plus variations,
interpolations and text diffs), :class:`~models.pipelines.glide.GlidePipeline`; build them by name with
:func:`models.factory.create_pipeline`.
"""
