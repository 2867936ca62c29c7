"""``harness study list|open|close|invite|create`` against a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eval_protocols.human.protocol import get_protocol
from harness.cli import main
from harness.storage.records import ItemRecord, StudyRecord
from harness.storage.repository import Repository

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def study_id(url: str) -> int:
    proto = get_protocol("photorealism")
    study = StudyRecord(0, "run1/photorealism", "photorealism", proto.to_dict(), "draft", 2, True,
                        datetime(2026, 1, 1, tzinfo=UTC), 0)
    items = [ItemRecord(0, 0, k, f"p{k}", f"caption {k}", "sys-a", "sys-b", (f"{k:064x}",), (f"{k + 99:064x}",),
                        "a" if k % 2 else "b") for k in range(3)]
    with Repository.open(url) as repo:
        return repo.create_study(study, items)


def test_list_open_close(url: str, study_id: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "list", "--db", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == [str(study_id), "draft", "photorealism", "0/6", "0", "run1/photorealism"]
    assert main(["study", "open", str(study_id), "--db", url]) == 0
    assert capsys.readouterr().out.strip() == f"study {study_id} (run1/photorealism) is open"
    assert main(["study", "close", "run1/photorealism", "--db", url]) == 0  # by name
    with Repository.open(url) as repo:
        assert repo.get_study(study_id).status == "closed"  # type: ignore[union-attr]


def test_invite_prints_links_whose_tokens_work(url: str, study_id: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "invite", str(study_id), "--n", "3", "--name", "rater", "--base-url",
                 "http://eval.example:8600/", "--db", url]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["rater-1", "rater-2", "rater-3"]
    links = [line.split("\t")[1] for line in lines]
    assert all(link.startswith("http://eval.example:8600/?token=") for link in links)
    assert "is draft" in captured.err  # the study is not open yet: say how to open it
    with Repository.open(url) as repo:
        names = [repo.annotator_for_token(link.split("token=", 1)[1]).name for link in links]  # type: ignore[union-attr]
        assert names == ["rater-1", "rater-2", "rater-3"]
        assert len(repo.list_annotators(study_id)) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["study", "invite", "99"], "study '99' does not exist"),
        (["study", "invite", "nope"], "study 'nope' does not exist"),
        (["study", "open", "99"], "study '99' does not exist"),
        (["study", "invite", "1", "--base-url", "localhost:8501"], "is not an http(s) URL"),
        (["study", "invite", "1", "--base-url", "ftp://host/"], "is not an http(s) URL"),
        (["study", "invite", "1", "--n", "0"], "give at least 1 invite"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    url: str, study_id: int, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    with Repository.open(url) as repo:
        assert repo.list_annotators(study_id) == []  # nothing half-done


def test_bad_db_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "list", "--db", "mysql://x/y"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_create_without_generated_run_says_what_to_do(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "create", str(ROOT / "configs" / "toy_quick.toml"), "--set", f"out_dir={tmp_path / 'runs'}",
                 "--db", url]) == 2
    assert "harness generate" in capsys.readouterr().err


@pytest.mark.slow
def test_create_from_a_generated_toy_run(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    overrides = ["--set", f"out_dir={tmp_path / 'runs'}", "--set", "prompts.n=2", "--set", "sampling.guidance_scales=[1.0]"]
    config = str(ROOT / "configs" / "toy_quick.toml")
    assert main(["generate", config, *overrides, "--no-progress"]) == 0
    assert main(["study", "create", config, *overrides, "--db", url]) == 0
    out = capsys.readouterr().out
    assert "photorealism" in out and "caption_similarity" in out and "diversity" in out
    assert main(["study", "create", config, *overrides, "--db", url]) == 0  # idempotent
    with Repository.open(url) as repo:
        studies = repo.list_studies()
        assert sorted(s.protocol_name for s in studies) == ["caption_similarity", "diversity", "photorealism"]
        assert all(s.status == "open" and repo.list_items(s.study_id) for s in studies)
