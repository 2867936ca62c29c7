"""The external generators (image folder, local diffusers pipeline, Python callable) through the run machinery."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.config import load_config
from harness.errors import ConfigError, HarnessError
from harness.generate.diffusers import tree_sha256
from harness.generate.registry import build_generator, list_generators
from harness.generate.run import generate_run
from harness.prompts import load_prompts
from harness.rundir import ManifestEntry, RunDir, derive_seed, prepare_run_dir

PROMPTS = {"cat": "a red cat", "dog": "a blue dog"}


def write_config(tmp_path: Path, generator: str, options: str, **sampling: Any) -> Path:
    """A run config: the two PROMPTS × 2 seeds, one system ``mine`` (``options`` is a TOML inline table)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": k, "text": v}) + "\n" for k, v in PROMPTS.items()))
    lines = {"seeds_per_prompt": 2, "guidance_scales": [1.0], "steps": "50", "batch_size": 16, **sampling}
    text = (
        f'name = "ext"\nseed = 0\nout_dir = "{tmp_path / "runs"}"\n'
        f'[prompts]\nsource = "{prompts}"\nn = 0\n'
        f'[[systems]]\nid = "mine"\ngenerator = "{generator}"\noptions = {options}\n'
        "[sampling]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in lines.items())
    )
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def run(config: Path) -> tuple[RunDir, list[ManifestEntry]]:
    cfg = load_config(config)
    run_dir = prepare_run_dir(cfg)
    return run_dir, generate_run(cfg, run_dir, load_prompts(cfg.prompts), progress=False)


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI, expect exit 2 and exactly one ``error:`` line; return it."""
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_the_three_kinds_are_registered() -> None:
    assert {"image-folder", "diffusers", "callable"} <= set(list_generators())


# --- image-folder --------------------------------------------------------------------------------------------------


def make_images(folder: Path, name: str = "{prompt_id}/{sample_index}.png") -> dict[tuple[str, int], Path]:
    """Four images of different sizes and modes (RGBA, L, RGB, P) named by ``name``."""
    rng = np.random.default_rng(0)
    modes = {
        ("cat", 0): ("RGBA", (10, 12)),
        ("cat", 1): ("L", (7, 5)),
        ("dog", 0): ("RGB", (16, 16)),
        ("dog", 1): ("P", (9, 4)),
    }
    files = {}
    for (pid, k), (mode, (h, w)) in modes.items():
        channels = {"RGBA": 4, "RGB": 3}.get(mode)
        pixels = rng.integers(0, 256, size=(h, w, channels) if channels else (h, w), dtype=np.uint8)
        path = folder / name.format(prompt_id=pid, sample_index=k, seed=derive_seed(0, pid, k))
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L" if mode in ("L", "P") else mode).convert(mode).save(path)
        files[(pid, k)] = path
    return files


def test_image_folder_by_naming_rule_returns_each_file_as_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    files = make_images(folder)
    run_dir, entries = run(
        write_config(
            tmp_path, "image-folder", f'{{ path = "{folder}", pattern = "{{prompt_id}}/{{sample_index}}.png" }}'
        )
    )
    assert len(entries) == 4 and all(e.settings == {} for e in entries)  # an image folder sweeps no guidance
    for e in entries:
        assert np.array_equal(run_dir.load_image(e), rgb(files[(e.prompt_id, e.sample_index)]))
        assert e.model_id == "image-folder:mine"
    assert run_dir.load_image(entries[0]).shape == (10, 12, 3)  # any size, as it is
    gen = build_generator("image-folder", {"path": str(folder), "pattern": "{prompt_id}/{sample_index}.png"})
    assert {e.checkpoint_sha256 for e in entries} == {gen.checkpoint_sha256}
    with pytest.raises(HarnessError, match="which only a run passes"):  # outside a run no prompt ids are known
        gen.generate([PROMPTS["cat"]], [1], {})
    Image.new("RGB", (3, 3)).save(folder / "extra.png")  # a changed folder is a new identity
    changed = build_generator("image-folder", {"path": str(folder), "pattern": "{prompt_id}/{sample_index}.png"})
    assert changed.checkpoint_sha256 != gen.checkpoint_sha256


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_image_folder_by_manifest(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "mine"
    files = make_images(folder, "imgs/{prompt_id}_{seed}.png")
    if fmt == "jsonl":  # keyed by prompt id and seed index, in the default file name
        rows = [
            {"prompt_id": pid, "sample_index": k, "path": f.relative_to(folder).as_posix()}
            for (pid, k), f in files.items()
        ]
        (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        options = f'{{ path = "{folder}", model_id = "my-model" }}'
    else:  # keyed by caption text and the harness's seed, in a named file
        lines = ["prompt,seed,path"] + [
            f'"{PROMPTS[pid]}",{derive_seed(0, pid, k)},{f.relative_to(folder).as_posix()}'
            for (pid, k), f in files.items()
        ]
        (folder / "mine.csv").write_text("\n".join(lines) + "\n")
        options = f'{{ path = "{folder}", manifest = "mine.csv", model_id = "my-model" }}'
    run_dir, entries = run(write_config(tmp_path, "image-folder", options))
    assert len(entries) == 4 and {e.model_id for e in entries} == {"my-model"}
    for e in entries:
        assert np.array_equal(run_dir.load_image(e), rgb(files[(e.prompt_id, e.sample_index)]))
    if fmt == "csv":  # keyed by caption and seed, the folder answers plain generate() calls too
        gen = build_generator("image-folder", {"path": str(folder), "manifest": "mine.csv"})
        image = gen.generate([PROMPTS["dog"]], [derive_seed(0, "dog", 1)], {})[0]
        assert np.array_equal(image, rgb(files[("dog", 1)]))
    manifest = folder / ("manifest.jsonl" if fmt == "jsonl" else "mine.csv")
    manifest.write_text(manifest.read_text() + "\n")  # a changed manifest is a new identity
    options_dict = {"path": str(folder)} if fmt == "jsonl" else {"path": str(folder), "manifest": "mine.csv"}
    after = build_generator("image-folder", options_dict)
    assert after.checkpoint_sha256 != entries[0].checkpoint_sha256


def test_image_folder_missing_image_is_one_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    files = make_images(folder)
    files[("dog", 1)].unlink()
    config = write_config(
        tmp_path, "image-folder", f'{{ path = "{folder}", pattern = "{{prompt_id}}/{{sample_index}}.png" }}'
    )
    line = cli_error(capsys, "generate", str(config), "--no-progress")
    assert f"expected {folder / 'dog' / '1.png'}; add that file" in line and "sampling.seeds_per_prompt" in line
    assert (
        len(
            run(
                write_config(
                    tmp_path,
                    "image-folder",
                    f'{{ path = "{folder}", pattern = "{{prompt_id}}/{{sample_index}}.png" }}',
                    seeds_per_prompt=1,
                )
            )[1]
        )
        == 2
    )


def test_image_folder_manifest_without_the_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    files = make_images(folder)
    rows = [
        {"prompt_id": pid, "sample_index": k, "path": f"{pid}/{k}.png"} for (pid, k) in files if (pid, k) != ("dog", 1)
    ]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = cli_error(
        capsys, "run", str(write_config(tmp_path, "image-folder", f'{{ path = "{folder}" }}')), "--no-progress"
    )
    assert "no row with prompt_id='dog', sample_index=1" in line and "add a row" in line


@pytest.mark.parametrize(
    ("setup", "options", "message"),
    [
        ("none", '{ path = "FOLDER" }', "has no manifest.jsonl or manifest.csv"),
        ("cols", '{ path = "FOLDER" }', "needs the columns 'path', 'prompt_id' (or 'prompt')"),
        ("dupe", '{ path = "FOLDER" }', "rows 1 and 2 both give prompt_id='cat', sample_index=0"),
        ("badjson", '{ path = "FOLDER" }', "manifest.jsonl: line 2 is not valid JSON"),
        ("list", '{ path = "FOLDER" }', "manifest.jsonl: line 1 must be a JSON object with a 'path' field"),
        ("none", '{ path = "FOLDER", pattern = "{prompt}.png" }', "must use {prompt_id} and {sample_index} or {seed}"),
        ("none", '{ path = "FOLDER/nope", pattern = "{prompt_id}.png" }', "folder FOLDER/nope not found"),
        ("none", '{ path = "FOLDER", patern = "x" }', "unknown option 'patern'; did you mean 'pattern'?"),
    ],
)
def test_image_folder_bad_setup_fails_before_generating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, options: str, message: str
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    row = {"prompt_id": "cat", "sample_index": 0, "path": "a.png"}
    if setup == "cols":
        (folder / "manifest.jsonl").write_text(json.dumps({"prompt_id": "cat", "path": "a.png"}) + "\n")
    if setup == "dupe":
        (folder / "manifest.jsonl").write_text((json.dumps(row) + "\n") * 2)
    if setup == "badjson":
        (folder / "manifest.jsonl").write_text(json.dumps(row) + "\n{oops\n")
    if setup == "list":
        (folder / "manifest.jsonl").write_text("[1, 2]\n")
    config = write_config(tmp_path, "image-folder", options.replace("FOLDER", str(folder)))
    line = cli_error(capsys, "generate", str(config), "--no-progress")
    assert message.replace("FOLDER", str(folder)) in line
    assert not (tmp_path / "runs").exists()  # nothing written


# --- callable ------------------------------------------------------------------------------------------------------

MODEL_SOURCE = '''
import numpy as np
from PIL import Image


def sample(prompts, seeds, settings, *, size=6, kind="float-batch"):
    """Noise seeded by the seed, brightness set by the guidance scale: one image per (prompt, seed)."""
    scale = settings.get("guidance_scale", 4.0) / 4.0
    images = [np.random.default_rng(s).random((size, size + 2, 3)) * scale for s in seeds]
    if kind == "float-batch":
        return np.stack(images)
    if kind == "uint8-list":
        return [np.rint(x * 255).astype(np.uint8) for x in images]
    if kind == "pil":
        return [Image.fromarray(np.rint(x * 255).astype(np.uint8)).convert("RGBA") for x in images]
    if kind == "too-few":
        return images[:-1]
    if kind == "gray":
        return [x[..., 0] for x in images]
    if kind == "int64":
        return [(x * 255).astype(np.int64) for x in images]
    if kind == "signed":
        return [x * 2 - 1 for x in images]
    if kind == "dict":
        return {"images": images}
'''


def expected_image(seed: int, guidance: float, size: int = 6) -> np.ndarray:
    return np.rint(np.random.default_rng(seed).random((size, size + 2, 3)) * guidance / 4.0 * 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["float-batch", "uint8-list", "pil"])
def test_callable_from_a_file_with_kwargs_and_guidance(tmp_path: Path, kind: str) -> None:
    model = tmp_path / "my_model.py"
    model.write_text(MODEL_SOURCE)
    options = f'{{ function = "{model}:sample", uses_guidance = true, kwargs = {{ size = 5, kind = "{kind}" }} }}'
    run_dir, entries = run(write_config(tmp_path, "callable", options, guidance_scales=[1.0, 3.0], batch_size=3))
    assert len(entries) == 2 * 2 * 2  # guidance scales × prompts × seeds
    for e in entries:
        assert np.array_equal(run_dir.load_image(e), expected_image(e.seed, e.settings["guidance_scale"], size=5))
    assert entries[0].model_id == f"{model}:sample"
    opts = {"function": f"{model}:sample", "uses_guidance": True, "kwargs": {"size": 5, "kind": kind}}
    canonical = json.dumps(opts, sort_keys=True, separators=(",", ":")).encode()
    assert entries[0].checkpoint_sha256 == hashlib.sha256(MODEL_SOURCE.encode() + b"\0" + canonical).hexdigest()


def test_callable_from_an_importable_module_changes_identity_with_source_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ext_model_for_tests.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.delitem(sys.modules, "ext_model_for_tests", raising=False)
    run_dir, entries = run(write_config(tmp_path, "callable", '{ function = "ext_model_for_tests:sample" }'))
    assert len(entries) == 4 and all(e.settings == {} for e in entries)  # unguided by default: no sweep
    assert all(np.array_equal(run_dir.load_image(e), expected_image(e.seed, 4.0)) for e in entries)
    base = build_generator("callable", {"function": "ext_model_for_tests:sample"}).checkpoint_sha256
    assert base == entries[0].checkpoint_sha256
    other = build_generator("callable", {"function": "ext_model_for_tests:sample", "kwargs": {"size": 4}})
    assert other.checkpoint_sha256 != base
    (tmp_path / "pkg" / "ext_model_for_tests.py").write_text(MODEL_SOURCE + "\n# edited\n")
    assert build_generator("callable", {"function": "ext_model_for_tests:sample"}).checkpoint_sha256 != base


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("too-few", "returned 1 images for 2 (prompt, seed) pairs"),
        ("gray", "image 0 has shape (6, 8); return (H, W, 3) RGB images"),
        ("int64", "image 0 has dtype int64; return uint8"),
        ("signed", "float images must lie in [0, 1]"),
        ("dict", "returned dict; return a list of (H, W, 3) images"),
    ],
)
def test_callable_bad_output_is_one_error_naming_the_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    model = tmp_path / "my_model.py"
    model.write_text(MODEL_SOURCE)
    config = write_config(
        tmp_path, "callable", f'{{ function = "{model}:sample", kwargs = {{ kind = "{kind}" }} }}', batch_size=2
    )
    line = cli_error(capsys, "generate", str(config), "--no-progress")
    assert f"callable '{model}:sample'" in line and message in line


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("MISSING/none.py:sample", "file MISSING/none.py of"),
        ("no_such_module_xyz:sample", "cannot import 'no_such_module_xyz'"),
        ("MODEL:nope", "has no function 'nope'"),
        ("sample", "expected 'package.module:function' or 'path/to/file.py:function'"),
    ],
)
def test_callable_bad_function_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], function: str, message: str
) -> None:
    model = tmp_path / "my_model.py"
    model.write_text(MODEL_SOURCE)
    spec = function.replace("MISSING", str(tmp_path)).replace("MODEL", str(model))
    line = cli_error(capsys, "generate", str(write_config(tmp_path, "callable", f'{{ function = "{spec}" }}')))
    assert message.replace("MISSING", str(tmp_path)) in line


# --- diffusers -----------------------------------------------------------------------------------------------------


def import_or_skip(name: str) -> Any:
    """On CI the test extra installs diffusers, so a missing package fails there instead of skipping."""
    if os.environ.get("CI"):
        return __import__(name)
    return pytest.importorskip(name)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random StableDiffusionPipeline saved with save_pretrained (16×16 images, offline tokenizer)."""
    import torch

    diffusers = import_or_skip("diffusers")
    transformers = import_or_skip("transformers")
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_sd")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8, norm_num_groups=2, attention_head_dim=2,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        block_out_channels=(4, 4), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16,
    )  # fmt: skip
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, hidden_size=8, intermediate_size=16, num_attention_heads=2,
            num_hidden_layers=1, vocab_size=len(vocab), max_position_embeddings=16, projection_dim=8,
        )
    )  # fmt: skip
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=diffusers.DDIMScheduler(clip_sample=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def test_diffusers_pipeline_images_are_per_seed_and_follow_guidance(tiny_pipeline: Path, tmp_path: Path) -> None:
    import torch
    from diffusers import DiffusionPipeline

    options = f'{{ path = "{tiny_pipeline}", model_id = "tiny-sd" }}'
    shas = {}
    for batch_size in (3, 1):
        out = tmp_path / f"b{batch_size}"
        out.mkdir()
        config = write_config(out, "diffusers", options, guidance_scales=[1.0, 3.0], steps="2", batch_size=batch_size)
        run_dir, entries = run(config)
        shas[batch_size] = [e.sha256 for e in entries]
    assert len(entries) == 2 * 2 * 2 and shas[3] == shas[1]  # the same images whatever the batch
    assert {e.model_id for e in entries} == {"tiny-sd"}
    assert {e.checkpoint_sha256 for e in entries} == {tree_sha256(tiny_pipeline)}
    assert run_dir.load_image(entries[0]).shape == (16, 16, 3)
    by_scale: dict[float, list[str]] = {}
    for e in entries:
        by_scale.setdefault(e.settings["guidance_scale"], []).append(e.sha256)
    assert by_scale[1.0] != by_scale[3.0]
    # each image is the pipeline's own output for its prompt, seed, guidance scale and step count
    pipe = DiffusionPipeline.from_pretrained(str(tiny_pipeline), local_files_only=True)
    e = entries[-1]
    direct = pipe(
        prompt=e.prompt, generator=torch.Generator().manual_seed(e.seed), guidance_scale=e.settings["guidance_scale"],
        num_inference_steps=2, output_type="np",
    ).images[0]  # fmt: skip
    assert np.array_equal(run_dir.load_image(e), np.rint(direct * 255).astype(np.uint8))


def test_diffusers_bad_call_kwargs_and_folders(tiny_pipeline: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="call_kwargs.guidance_scale is set by the harness"):
        build_generator("diffusers", {"path": str(tiny_pipeline), "call_kwargs": {"guidance_scale": 2.0}})
    with pytest.raises(ConfigError, match="has no model_index.json"):
        build_generator("diffusers", {"path": str(tmp_path)})
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "NoSuchPipeline"}))
    with pytest.raises(ConfigError, match="'NoSuchPipeline' of .* is not in the installed diffusers"):
        build_generator("diffusers", {"path": str(tmp_path)})


def test_diffusers_not_installed_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if the extra were not installed
    line = cli_error(capsys, "generate", str(write_config(tmp_path, "diffusers", f'{{ path = "{folder}" }}')))
    assert "install it with: pip install 'unclip-harness[diffusers]'" in line
    assert not (tmp_path / "runs").exists()


# --- the shipped example -------------------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "examples" / "external_models.toml"


def test_example_config_generates_with_its_callable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLE.parents[2])  # the example's paths are relative to the repository root
    overrides = [f"out_dir={tmp_path}", "prompts.n=2", "sampling.seeds_per_prompt=2"]
    assert main(["generate", str(EXAMPLE), "--no-progress", *(a for o in overrides for a in ("--set", o))]) == 0
    entries = RunDir(tmp_path / load_config(EXAMPLE, overrides).run_id).entries()
    assert sorted(e.system_id for e in entries) == ["my-model"] * 4 + ["reference"] * 4


def test_a_run_dir_is_not_resumed_with_other_weights(tmp_path: Path) -> None:
    """The run id hashes the config, not the weights: a changed model behind the same config must not mix images."""
    source = tmp_path / "model.py"
    body = (
        "import numpy as np\n"
        "def sample(prompts, seeds, settings):\n"
        "    return [np.full((8, 8, 3), {level} + s % 7, dtype=np.uint8) for s in seeds]\n"
    )
    source.write_text(body.format(level=10))
    config = write_config(tmp_path, "callable", f'{{ function = "{source}:sample" }}')
    run_dir, entries = run(config)
    assert len(entries) == 4
    before = run_dir.manifest_path.read_bytes()
    source.write_text(body.format(level=200))  # "retrained": same config, other weights
    with pytest.raises(HarnessError, match=r"made with weights .* \(--set name="):
        run(config)
    assert run_dir.manifest_path.read_bytes() == before  # nothing mixed in
