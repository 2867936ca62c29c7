"""The repository: the one API through which the harness and the dashboards read and write the store.

>>> repo = Repository.open()                       # HARNESS_DB_URL or an SQLite file under the data dir
>>> study_id = repo.create_study(study, items)
>>> annotator, token = repo.create_annotator(study_id, "alice")   # token goes into the invite link
>>> assignment, item = repo.next_item_for(annotator.annotator_id, study_id)
>>> vote = repo.record_vote(assignment.assignment_id, "left", response_ms=1830,
...                         annotator_id=annotator.annotator_id)

Each method is one transaction and takes/returns records of `harness.storage.records` only. A `Repository` is
thread-safe (one engine, a pool of connections): Streamlit keeps one per process in ``st.cache_resource``.
The assignment and voting rules (quotas, uniqueness, idempotent votes, stale assignments) live in
`harness.storage.assign`, the progress counts in `harness.storage.progress`; writes run through
`harness.storage.writes` (group commit on SQLite, retried conflicts on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from harness import paths
from harness.errors import HarnessError
from harness.storage import assign, migrate, progress, rows, tour
from harness.storage.assign import AssignmentError, StudyNotOpenError
from harness.storage.engine import make_engine, mask_url, read_transaction, write_transaction
from harness.storage.records import (
    STUDY_STATUSES,
    AnnotatorProgress,
    AnnotatorRecord,
    Answer,
    AssignmentRecord,
    ImageRecord,
    ItemRecord,
    MetricResultRecord,
    RunRecord,
    StudyProgress,
    StudyRecord,
    StudyStatus,
    Submission,
    VoteRecord,
    validate_study,
)
from harness.storage.schema import annotators, assignments, images, items, metric_results, runs, studies, votes
from harness.storage.writes import run_write

NextItem = tuple[AssignmentRecord, ItemRecord] | None
"""What `Repository.next_item_for` returns: the assignment and its item, or ``None`` when nothing is left."""

__all__ = ["Answer", "AssignmentError", "HarnessError", "NextItem", "Repository", "StudyNotOpenError", "Submission"]

DEFAULT_ASSIGNMENT_TIMEOUT = timedelta(minutes=30)
"""A pending assignment older than this stops holding its item's slot (see `harness.storage.assign`)."""


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    """Hex SHA-256 of an invite token (what the store keeps instead of the token)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Repository:
    """Typed access to the store over SQLite or PostgreSQL; build it with `Repository.open`.

    Args:
        engine: an engine made by `harness.storage.engine.make_engine`, migrated to head.
        assignment_timeout: how long a pending assignment holds its item's slot.
        clock: returns the current aware UTC time (tests pass a fake one).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        assignment_timeout: timedelta = DEFAULT_ASSIGNMENT_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.assignment_timeout = assignment_timeout
        self.clock = clock
        self._sweeps = assign.SweepSchedule()
        self._open_counts = progress.OpenCounts()

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        assignment_timeout: timedelta = DEFAULT_ASSIGNMENT_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
        pool_size: int = 5,
        max_overflow: int = 40,
    ) -> Repository:
        """Connect to the store at ``url`` (default `harness.paths.default_db_url`) and migrate it to head.

        Args:
            url: ``sqlite:///PATH`` (parent directory created) or ``postgresql+psycopg://USER:PW@HOST:PORT/DB``.
            assignment_timeout: see the class.
            clock: see the class.
            pool_size: connections kept open.
            max_overflow: extra connections under load.

        Raises:
            StorageError: the URL is malformed or unsupported, the server is unreachable, the file is not
                writable, or the store's schema is newer than this code. One line, password masked, with the fix.
        """
        engine = make_engine(url or paths.default_db_url(), pool_size=pool_size, max_overflow=max_overflow)
        try:
            migrate.ensure_current(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, assignment_timeout=assignment_timeout, clock=clock)

    @property
    def url(self) -> str:
        """The store's URL with the password masked."""
        return mask_url(self.engine.url)

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """Which database the store lives in."""
        return "sqlite" if self.engine.dialect.name == "sqlite" else "postgresql"

    def close(self) -> None:
        """Close every pooled connection (the object is unusable afterwards)."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository({self.url!r})"

    def _cutoff(self, now: datetime) -> datetime:
        return now - self.assignment_timeout

    # ------------------------------------------------------------------ runs and images

    def create_run(self, run: RunRecord, *, exist_ok: bool = False) -> RunRecord:
        """Store a run; returns the stored record (the existing one when ``exist_ok`` and it is there).

        Raises:
            HarnessError: a run with this id exists and ``exist_ok`` is false.
        """
        with write_transaction(self.engine) as conn:
            found = conn.execute(select(runs).where(runs.c.run_id == run.run_id)).first()
            if found is not None:
                if exist_ok:
                    return rows.run_record(found)
                raise HarnessError(f"run {run.run_id!r} is already in the store; choose another run id or resume it")
            conn.execute(
                insert(runs).values(
                    run_id=run.run_id,
                    name=run.name,
                    created_at=run.created_at,
                    run_dir=run.run_dir,
                    config=run.config,
                    provenance=run.provenance,
                )
            )
        return run

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or ``None``."""
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
            return None if row is None else rows.run_record(row)

    def list_runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        with read_transaction(self.engine) as conn:
            return [rows.run_record(r) for r in conn.execute(select(runs).order_by(runs.c.created_at, runs.c.run_id))]

    def add_images(self, records: Iterable[ImageRecord]) -> int:
        """Store images; ones already stored for the same run (same ``sha256``) are skipped. Returns how many were new.

        Raises:
            HarnessError: an image names a run that is not in the store.
        """
        batch = {(r.sha256, r.run_id): r for r in records}
        if not batch:
            return 0
        with write_transaction(self.engine) as conn:
            run_ids = {run_id for _, run_id in batch}
            known = set(conn.execute(select(runs.c.run_id).where(runs.c.run_id.in_(run_ids))).scalars())
            if missing := sorted(run_ids - known):
                raise HarnessError(f"images name run(s) {missing} that are not in the store; create the run first")
            existing: set[tuple[str, str]] = set()
            for run_id in run_ids:
                shas = [sha for sha, rid in batch if rid == run_id]
                for start in range(0, len(shas), 500):
                    stmt = select(images.c.sha256).where(
                        images.c.run_id == run_id, images.c.sha256.in_(shas[start : start + 500])
                    )
                    existing.update((sha, run_id) for sha in conn.execute(stmt).scalars())
            new = [r for key, r in batch.items() if key not in existing]
            if new:
                values = [
                    {
                        "sha256": r.sha256,
                        "run_id": r.run_id,
                        "prompt_id": r.prompt_id,
                        "prompt": r.prompt,
                        "model_id": r.model_id,
                        "seed": r.seed,
                        "settings": r.settings,
                        "path": r.path,
                    }
                    for r in new
                ]
                conn.execute(self._insert(images).on_conflict_do_nothing(), values)
        return len(new)

    def list_images(self, run_id: str) -> list[ImageRecord]:
        """The images of a run, by model, prompt id and seed."""
        order = (images.c.model_id, images.c.prompt_id, images.c.seed, images.c.sha256)
        with read_transaction(self.engine) as conn:
            stmt = select(images).where(images.c.run_id == run_id).order_by(*order)
            return [rows.image_record(r) for r in conn.execute(stmt)]

    def image_paths(self, sha256s: Iterable[str]) -> dict[str, Path]:
        """Where the files of these images are (absolute), for those the store knows; any run's copy."""
        wanted = sorted(set(sha256s))
        found: dict[str, Path] = {}
        with read_transaction(self.engine) as conn:
            for start in range(0, len(wanted), 500):
                stmt = (
                    select(images.c.sha256, images.c.path, runs.c.run_dir)
                    .join(runs, runs.c.run_id == images.c.run_id)
                    .where(images.c.sha256.in_(wanted[start : start + 500]))
                )
                for sha, path, run_dir in conn.execute(stmt):
                    found.setdefault(sha, Path(run_dir) / path)
        return found

    # ------------------------------------------------------------------ metric results

    def save_metric_results(self, results: Iterable[MetricResultRecord]) -> int:
        """Insert or replace results keyed by ``(run_id, metric, model_id, group, extractor_id)``; returns the count."""
        now = self.clock()
        values = [
            {
                "run_id": r.run_id,
                "metric": r.metric,
                "model_id": r.model_id,
                "group_key": rows.group_key(r.group),
                "group": r.group,
                "value": float(r.value),
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "n": int(r.n),
                "extractor_id": r.extractor_id,
                "inputs_hash": r.inputs_hash,
                "details": r.details,
                "updated_at": now,
            }
            for r in results
        ]
        if not values:
            return 0
        key = ["run_id", "metric", "model_id", "group_key", "extractor_id"]
        with write_transaction(self.engine) as conn:
            for value in values:
                stmt = self._insert(metric_results).values(**value)
                changed = {c: stmt.excluded[c] for c in value if c not in key}
                try:
                    conn.execute(stmt.on_conflict_do_update(index_elements=key, set_=changed))
                except IntegrityError as exc:
                    raise HarnessError(
                        f"metric result for run {value['run_id']!r}: the run is not in the store; create it first"
                    ) from exc
        return len(values)

    def load_metric_results(self, run_id: str | None = None) -> list[MetricResultRecord]:
        """Stored metric results (of one run, or all), by run, metric, model and group."""
        mr = metric_results.c
        stmt = select(metric_results).order_by(mr.run_id, mr.metric, mr.model_id, mr.group_key, mr.extractor_id)
        if run_id is not None:
            stmt = stmt.where(mr.run_id == run_id)
        with read_transaction(self.engine) as conn:
            return [rows.metric_record(r) for r in conn.execute(stmt)]

    # ------------------------------------------------------------------ studies and items

    def create_study(self, study: StudyRecord, study_items: Sequence[ItemRecord]) -> int:
        """Store a study with its items in one transaction; returns the new ``study_id``.

        ``study.study_id`` and the items' ``item_id``/``study_id`` are ignored (pass ``0``); an item's
        ``votes_target`` of ``0`` takes the study's ``votes_per_item``.

        Raises:
            HarnessError: the name is taken, or an item is malformed (same system twice, no images, bad side,
                an ``expected`` answer on a non-attention item, duplicate positions).
        """
        validate_study(study, study_items)
        with write_transaction(self.engine) as conn:
            if conn.execute(select(studies.c.study_id).where(studies.c.name == study.name)).first() is not None:
                raise HarnessError(f"a study named {study.name!r} exists; choose another name")
            result = conn.execute(
                insert(studies).values(
                    name=study.name,
                    protocol_name=study.protocol_name,
                    protocol=study.protocol,
                    status=study.status,
                    votes_per_item=study.votes_per_item,
                    allow_tie=study.allow_tie,
                    created_at=study.created_at,
                    seed=study.seed,
                )
            )
            study_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            if study_items:
                ranks = tour.tour_ranks(study.seed, [i.position for i in study_items])
                values = [
                    {**rows.item_values(i, study_id, study.votes_per_item), "tour_rank": ranks[i.position]}
                    for i in study_items
                ]
                conn.execute(insert(items), values)
        return study_id

    def get_study(self, study_id: int) -> StudyRecord | None:
        """The study with this id, or ``None``."""
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(studies).where(studies.c.study_id == study_id)).first()
            return None if row is None else rows.study_record(row)

    def find_study(self, name: str) -> StudyRecord | None:
        """The study with this name, or ``None``."""
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(studies).where(studies.c.name == name)).first()
            return None if row is None else rows.study_record(row)

    def list_studies(self) -> list[StudyRecord]:
        """Every study, oldest first."""
        with read_transaction(self.engine) as conn:
            return [rows.study_record(r) for r in conn.execute(select(studies).order_by(studies.c.study_id))]

    def set_study_status(self, study_id: int, status: StudyStatus) -> StudyRecord:
        """Open, close or reopen a study; returns it updated.

        Raises:
            HarnessError: unknown status or study.
        """
        if status not in STUDY_STATUSES:
            raise HarnessError(f"study status {status!r} is not one of {', '.join(STUDY_STATUSES)}")
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                update(studies).where(studies.c.study_id == study_id).values(status=status).returning(*studies.c)
            ).first()
        if row is None:
            raise AssignmentError(
                f"study {study_id} does not exist; check the study id (studies are listed on the admin page)"
            )
        return rows.study_record(row)

    def list_items(self, study_id: int) -> list[ItemRecord]:
        """The items of a study, by position."""
        stmt = select(items).where(items.c.study_id == study_id).order_by(items.c.position)
        with read_transaction(self.engine) as conn:
            return [rows.item_record(r) for r in conn.execute(stmt)]

    def get_item(self, item_id: int) -> ItemRecord | None:
        """The item with this id, or ``None``."""
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(items).where(items.c.item_id == item_id)).first()
            return None if row is None else rows.item_record(row)

    # ------------------------------------------------------------------ annotators

    def create_annotator(self, study_id: int, name: str) -> tuple[AnnotatorRecord, str]:
        """Invite an annotator; returns the record and the invite token (shown once, stored only as its SHA-256).

        Raises:
            HarnessError: unknown study.
        """
        token = secrets.token_urlsafe(24)
        now = self.clock()
        with write_transaction(self.engine) as conn:
            if conn.execute(select(studies.c.study_id).where(studies.c.study_id == study_id)).first() is None:
                raise HarnessError(
                    f"study {study_id} does not exist; check the study id (studies are listed on the admin page)"
                )
            result = conn.execute(
                insert(annotators).values(study_id=study_id, name=name, token_sha256=token_hash(token), created_at=now)
            )
            annotator_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            n_items = conn.execute(select(func.count()).where(items.c.study_id == study_id)).scalar_one()
            start = tour.tour_start(annotator_id, int(n_items))
            conn.execute(update(annotators).where(annotators.c.annotator_id == annotator_id).values(tour_cursor=start))
        return AnnotatorRecord(annotator_id=annotator_id, study_id=study_id, name=name, created_at=now), token

    def annotator_for_token(self, token: str) -> AnnotatorRecord | None:
        """The annotator an invite token belongs to, or ``None`` for an unknown token."""
        if not token:
            return None
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(annotators).where(annotators.c.token_sha256 == token_hash(token))).first()
            return None if row is None else rows.annotator_record(row)

    def list_annotators(self, study_id: int) -> list[AnnotatorRecord]:
        """The annotators of a study, in invitation order."""
        stmt = select(annotators).where(annotators.c.study_id == study_id).order_by(annotators.c.annotator_id)
        with read_transaction(self.engine) as conn:
            return [rows.annotator_record(r) for r in conn.execute(stmt)]

    # ------------------------------------------------------------------ assignments and votes

    def next_item_for(self, annotator_id: int, study_id: int) -> NextItem:
        """The item to show the annotator now, or ``None`` when nothing is left for them.

        Their pending assignment if any (a rerun or second tab gets the same item), else a new assignment of the
        least-filled item below quota that they have never been given, in their own order. Safe under concurrency:
        see `harness.storage.assign`.

        Raises:
            AssignmentError: unknown study/annotator or an annotator of another study.
            StudyNotOpenError: the study is not open.
        """
        now = self.clock()
        return run_write(self.engine, lambda conn: self._next(conn, annotator_id, study_id, now))

    def _next(self, conn: Connection, annotator_id: int, study_id: int, now: datetime) -> NextItem:
        sweep = self._sweeps.due(study_id, now)
        return assign.next_item(conn, annotator_id, study_id, now, self._cutoff(now), sweep=sweep)

    def record_vote(
        self, assignment_id: int, choice: str, response_ms: int, *, annotator_id: int | None = None
    ) -> VoteRecord:
        """Record the answer to an assignment and complete it, in one transaction.

        Idempotent: a second call for the same assignment (double click, second tab, rerun) returns the first
        vote and stores nothing.

        Args:
            assignment_id: the assignment answered.
            choice: ``left``, ``right`` or ``tie`` ("Not sure"), in screen space.
            response_ms: time from showing the item to the answer.
            annotator_id: the annotator answering (from their invite token); when given it must own the assignment.

        Raises:
            AssignmentError: unknown, another annotator's, skipped/broken assignment; a bad choice; a tie where the
                study has none; or an assignment that expired while its slot went to someone else.
            StudyNotOpenError: the study is not open.
        """
        now = self.clock()
        vote, _ = run_write(
            self.engine, lambda conn: assign.record_vote(conn, assignment_id, choice, response_ms, annotator_id, now)
        )
        if vote is None:
            raise self._expired(assignment_id)
        return vote

    def record_vote_and_next(
        self, assignment_id: int, choice: str, response_ms: int, *, annotator_id: int | None = None
    ) -> tuple[VoteRecord, NextItem]:
        """`record_vote`, then `next_item_for` the same annotator, in one transaction (one commit per click).

        Same rules, errors and idempotence as the two calls made one after the other (`submit` also says whether
        this call stored the vote).
        """
        done = self.submit(Answer(assignment_id, choice, response_ms, annotator_id))
        return done.vote, done.next

    def submit(self, answer: Answer) -> Submission:
        """`record_vote_and_next` of one answer, saying whether *this* call stored it: ``counted`` is false when an
        earlier call had (a double press, a second tab), and then nothing is stored. What the voting page calls.

        Raises:
            AssignmentError: as `record_vote` (also for an assignment that expired; its answer is not stored).
            StudyNotOpenError: the study is not open.
        """
        now = self.clock()
        vote, counted, nxt = run_write(self.engine, lambda conn: self._answer(conn, answer, now))
        if vote is None:
            raise self._expired(answer.assignment_id)
        return Submission(vote, counted, nxt)

    def record_votes_and_next(self, answers: Sequence[Answer]) -> list[tuple[VoteRecord | None, NextItem]]:
        """Many `record_vote_and_next` calls in one transaction, in order (simulated annotators, imports).

        Each answer is recorded and its annotator's next item fetched exactly as `record_vote_and_next` would,
        seeing the answers before it; an answer whose assignment expired gives ``(None, next item)`` instead of
        an error. Everything is committed together (one fsync), or nothing when an answer is refused.

        Raises:
            AssignmentError: an answer is refused (unknown or another annotator's assignment, bad choice, closed
                study); no answer of the batch is stored.
        """
        now = self.clock()
        done = run_write(self.engine, lambda conn: [self._answer(conn, a, now) for a in answers])
        return [(vote, nxt) for vote, _, nxt in done]

    def _answer(self, conn: Connection, answer: Answer, now: datetime) -> tuple[VoteRecord | None, bool, NextItem]:
        vote, counted = assign.record_vote(
            conn, answer.assignment_id, answer.choice, answer.response_ms, answer.annotator_id, now
        )
        if vote is None:
            owner = conn.execute(
                select(assignments.c.annotator_id, assignments.c.study_id)
                .where(assignments.c.assignment_id == answer.assignment_id)
            ).one()
            return None, False, self._next(conn, owner.annotator_id, owner.study_id, now)
        return vote, counted, self._next(conn, vote.annotator_id, vote.study_id, now)

    def _expired(self, assignment_id: int) -> AssignmentError:
        return AssignmentError(
            f"assignment {assignment_id} expired after {self.assignment_timeout} without an answer and its item "
            "went to another annotator; the answer was not counted, load the next item"
        )

    def skip(self, assignment_id: int, *, annotator_id: int | None = None) -> AssignmentRecord:
        """Skip a pending assignment: the item goes back to the pool, never to this annotator (idempotent).

        Raises:
            AssignmentError: unknown or another annotator's assignment, or one already answered.
        """
        return self._close(assignment_id, "skipped", annotator_id)

    def report_broken(self, assignment_id: int, *, annotator_id: int | None = None) -> AssignmentRecord:
        """Report a pending assignment's images as broken (counted in `progress`; idempotent).

        Raises:
            AssignmentError: unknown or another annotator's assignment, or one already answered.
        """
        return self._close(assignment_id, "broken", annotator_id)

    def _close(
        self, assignment_id: int, status: Literal["skipped", "broken"], annotator_id: int | None
    ) -> AssignmentRecord:
        now = self.clock()
        return run_write(
            self.engine, lambda conn: assign.close_assignment(conn, assignment_id, status, annotator_id, now)
        )

    def load_votes(self, study_id: int | None = None) -> list[VoteRecord]:
        """Every vote (of one study, or all), in the order stored."""
        stmt = select(votes).order_by(votes.c.vote_id)
        if study_id is not None:
            stmt = stmt.where(votes.c.study_id == study_id)
        with read_transaction(self.engine) as conn:
            return [rows.vote_record(r) for r in conn.execute(stmt)]

    def progress(self, study_id: int) -> StudyProgress:
        """Per-annotator and per-item counts of a study, with attention-check pass counts."""
        with read_transaction(self.engine) as conn:
            return progress.study_progress(conn, study_id)

    def annotator_progress(self, annotator_id: int, *, max_age_s: float = 0.0) -> AnnotatorProgress:
        """One annotator's counts (for their progress bar: ``completed / (completed + pending + remaining)``).

        Args:
            max_age_s: accept a count of the study's open items up to this old (from this repository), for
                ``remaining``; the annotator's own counts are always read now. ``0`` (default): exact. The count
                is O(open items), 4-9 ms at 20,000 items, so a page that shows it on every click can pass ~1 s.

        Raises:
            AssignmentError: unknown annotator.
        """
        with read_transaction(self.engine) as conn:
            counts = self._open_counts
            return progress.annotator_progress(conn, annotator_id, lambda study: counts.get(conn, study, max_age_s))

    # ------------------------------------------------------------------ helpers

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)
