"""Factory errors, exact checkpoint round-trips, the tokenizer, chunking and the blur augmentation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_fixtures import CAPTIONS, TOKENIZER, write_tiny_stack
from scipy.ndimage import gaussian_filter

from models.factory import create_pipeline, list_models, pipeline_checkpoint_sha256
from models.pipelines.base import SamplingConfig
from models.pipelines.glide import GlidePipeline
from models.pipelines.stages import Stage, chunked, gaussian_blur, image_strip
from models.pipelines.tokenizer import PAD_ID, UNK_ID, WordTokenizer

FAST = SamplingConfig(prior_steps="3", decoder_steps="3", upsampler_steps="2", batch_size=2)


def test_list_models() -> None:
    assert list_models() == ["glide", "unclip-ar-prior", "unclip-diffusion-prior"]


def test_unknown_model_suggests_the_closest_name(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="did you mean 'glide'"):
        create_pipeline("glid", tiny_dir)


def test_missing_checkpoint_names_the_file_and_the_command(tiny_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    shutil.copytree(tiny_dir, folder)
    (folder / "unclip_upsampler_toy.safetensors").unlink()
    with pytest.raises(
        ValueError, match=r"unclip_upsampler_toy\.safetensors not found; train it with: harness train upsampler"
    ):
        create_pipeline("glide", folder)
    with pytest.raises(ValueError, match="harness train upsampler"):
        pipeline_checkpoint_sha256("glide", folder)
    assert create_pipeline("glide", folder, upsampler=False).upsampler is None


def test_prior_and_decoder_on_different_clips_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    shutil.copytree(tiny_dir, folder)
    meta_path = folder / "unclip_prior_toy.json"
    meta_path.write_text(meta_path.read_text().replace('"sha256": "', '"sha256": "0'))
    with pytest.raises(ValueError, match="different CLIP"):
        create_pipeline("unclip-diffusion-prior", folder)


def test_checkpoint_round_trip_is_exact(tmp_path: Path) -> None:
    modules = write_tiny_stack(tmp_path)
    pipeline = create_pipeline("glide", tmp_path)
    assert isinstance(pipeline, GlidePipeline)
    for stem, stage in (("glide_toy", pipeline.base), ("unclip_upsampler_toy", pipeline.upsampler)):
        assert stage is not None
        original, loaded = modules[stem].state_dict(), stage.network.state_dict()
        assert original.keys() == loaded.keys()
        assert all(torch.equal(original[k], loaded[k]) for k in original)
    in_memory = GlidePipeline(
        Stage(modules["glide_toy"], pipeline.base.diffusion),
        TOKENIZER,
        Stage(modules["unclip_upsampler_toy"], pipeline.upsampler.diffusion),
    )
    assert np.array_equal(in_memory(["a red circle"], [3], FAST).images, pipeline(["a red circle"], [3], FAST).images)
    assert pipeline.checkpoint_sha256 == pipeline_checkpoint_sha256("glide", tmp_path)


def test_manipulations_shapes_and_fixed_noise_endpoints(tiny_dir: Path) -> None:
    pipeline = create_pipeline("unclip-diffusion-prior", tiny_dir)
    config = SamplingConfig(**{**FAST.to_dict(), "upsample": False})
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2))
    assert pipeline.variations(a, 3, 0, config).shape == (3, 8, 8, 3)
    strip = pipeline.interpolate(a, b, 4, 0, config)
    assert strip.shape == (4, 8, 8, 3)
    # with x_T fixed, θ = 0 and θ = 1 of a 2-image strip are the two endpoints of any longer strip
    ends = pipeline.interpolate(a, b, 2, 0, config)
    assert np.array_equal(ends[0], strip[0]) and np.array_equal(ends[1], strip[-1])
    assert pipeline.interpolate(a, b, 3, 0, config, fixed_noise=False).shape == (3, 8, 8, 3)
    assert pipeline.text_diff(a, "a red circle", "a blue circle", 3, 0, config).shape == (3, 8, 8, 3)
    with pytest.raises(ValueError, match="identical"):
        pipeline.text_diff(a, "a red circle", "a red circle", 3, 0, config)


def test_decode_from_given_embeddings_is_batch_invariant_and_follows_z_i(tiny_dir: Path) -> None:
    pipeline = create_pipeline("unclip-diffusion-prior", tiny_dir)
    config = SamplingConfig(**{**FAST.to_dict(), "upsample": False})
    rng = np.random.default_rng(1)
    renders = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    z_i = pipeline.image_embeddings(renders)
    prompts = ["a red circle", "a blue square", "a green star"]
    batch = pipeline.decode(prompts, z_i, [0, 1, 2], config)
    assert batch.shape == (3, 8, 8, 3) and batch.dtype == np.uint8
    alone = pipeline.decode(prompts[1:2], z_i[1:2], [1], config)
    assert np.array_equal(alone[0], batch[1])
    other = pipeline.decode(prompts[1:2], z_i[2:3], [1], config)
    assert not np.array_equal(other[0], batch[1])
    with pytest.raises(ValueError, match="one row per prompt"):
        pipeline.decode(prompts, z_i[:2], [0, 1, 2], config)


def test_word_tokenizer_ids_padding_and_round_trip() -> None:
    tok = WordTokenizer.from_texts(CAPTIONS, context_length=4)
    tokens, mask = tok(["A red, circle!", "a zebra", "an orange cross above a pink diamond"])
    red, circle, a = (tok.vocab.index(w) + 2 for w in ("red", "circle", "a"))
    assert tokens[0].tolist() == [a, red, circle, PAD_ID]
    assert tokens[1].tolist() == [a, UNK_ID, PAD_ID, PAD_ID]
    assert mask.tolist()[0] == [True, True, True, False] and bool(mask[2].all())  # truncated to 4
    assert WordTokenizer.from_dict(tok.to_dict()) == tok
    with pytest.raises(ValueError, match="raise vocab_size"):
        tok.check_fits(tok.vocab_size - 1)


def test_chunked_pads_to_a_fixed_batch_shape() -> None:
    shapes: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        shapes.append(x.shape[0])
        return x * 2

    x = torch.arange(7.0)[:, None]
    assert torch.equal(chunked(fn, x, 3), x * 2)
    assert shapes == [3, 3, 3]


def test_gaussian_blur_matches_scipy() -> None:
    images = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur(images, kernel=3, sigma=0.6).numpy()
    ref = gaussian_filter(images.numpy(), sigma=(0, 0, 0.6, 0.6), mode="mirror", truncate=1 / 0.6)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_image_strip_layout() -> None:
    images = torch.stack([torch.full((4, 5, 3), k, dtype=torch.uint8) for k in range(3)])
    strip = image_strip(images, gap=2)
    assert strip.shape == (4, 3 * 5 + 2 * 2, 3)
    assert int(strip[0, 0, 0]) == 0 and int(strip[0, 7, 0]) == 1 and int(strip[0, 5, 0]) == 255


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m", "dpm++3m", "dpm++2m-sde", "heun", "euler-a"])
def test_truncated_upsampler_start_begins_at_the_noised_bilinear_upsample(tmp_path: Path, sampler: str) -> None:
    import torch.nn.functional as F

    from models.pipelines.stages import network_image_size, upsample_images

    write_tiny_stack(tmp_path)
    upsampler = create_pipeline("glide", tmp_path).upsampler
    assert upsampler is not None
    size = network_image_size(upsampler.network)
    low = torch.rand(3, 3, size // 2, size // 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    bilinear = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)

    def run(start: float, rows: list[int]) -> torch.Tensor:
        gens = [torch.Generator().manual_seed(10 + r) for r in rows]
        return upsample_images(upsampler, low[rows], gens, respacing="3", sampler=sampler, start=start, chunk=2)

    # Starting near t = 0 leaves the bilinear upsample barely touched, whatever the (random) network; from
    # pure noise, the untrained network's image has nothing to do with it.
    assert (run(0.01, [0, 1, 2]) - bilinear).abs().mean() < 0.05
    assert (run(1.0, [0, 1, 2]) - bilinear).abs().mean() > 0.2
    # Per-sample determinism holds for the truncated start too (the ε of x_{t_s} comes from each image's generator).
    assert torch.equal(run(0.4, [0, 1, 2])[1], run(0.4, [1])[0])
    with pytest.raises(ValueError, match=r"start must lie in \(0, 1\]"):
        run(0.0, [0])
    with pytest.raises(ValueError, match="upsampler_start must lie"):
        SamplingConfig(upsampler_start=1.5)
