"""Generation: prompts × systems × settings × seeds → images in a run dir, and the generators that make them.

* `harness.generate.registry` — the `Generator` interface and the registry (`build_generator`, `register_generator`);
* `harness.generate.toyworld` — ``reference`` (real toy-world renders) and ``degraded``;
* `harness.generate.external` — ``image-folder`` and ``callable``; `harness.generate.diffusers` — ``diffusers``;
* `harness.generate.pipelines` — the trained pipelines: ``unclip-diffusion-prior``, ``unclip-ar-prior``, ``glide``;
* `harness.generate.run` — the resumable generation of a run; `harness.generate.store` — its record in the store.

Importing the package registers every built-in generator (the registry itself imports none of them). None of
these imports torch: the model pipelines load it when their first image is asked for.
"""

from harness.generate import diffusers, external, pipelines, registry, toyworld  # noqa: F401  (registration)
