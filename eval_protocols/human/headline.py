"""The paper's question from any study design: P(unCLIP beats GLIDE) per protocol, prior and guidance scale.

From the pair win rates of a report (`winrates.win_rates`, any design: all pairs, each system vs a baseline, or the
paper's pairs) this picks out what answers unCLIP's Table 1 and Fig. 10:

* **who is who.** By generator (`labels.ROLES`): the challengers are the unCLIP systems (either prior), the
  opponents the GLIDE systems. Without both, a named ``baseline`` (a study system id, or a run-config system id
  covering all its settings) is the opponent and every other system except real renders a challenger. Neither:
  no headline (`headline` returns ``None``);
* **matchups.** A challenger-vs-opponent pair at the same decoder guidance scale (an unknown scale matches any),
  oriented as P(challenger beats opponent): W, L, T and the interval are flipped when the pair was stored the other
  way round (p → 1 − p, [lo, hi] → [1 − hi, 1 − lo]);
* **Table 1 rows.** One per (challenger, opponent) pair, a cell per protocol;
* **pooled estimate per protocol.** The votes of every matchup of a protocol added up, W + T/2 over n with the
  same interval method as the rates (a bootstrap pools as ``normal``): the one number the headline leads with;
* **prior vs prior.** unCLIP (diffusion prior) vs unCLIP (AR prior) at matched guidance, as its own small table.

Everything is plain data (frozen dataclasses), shared by the report (`harness.report`) and the app's Results page,
which both draw `eval_protocols.human.figures.headline_figure` from it.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval_protocols.human import intervals as iv
from eval_protocols.human.labels import PRIOR_ORDER, Labeller, SystemInfo, protocol_key, protocol_title
from eval_protocols.human.votes import protocols_of
from eval_protocols.human.winrates import WinRate


@dataclass(frozen=True)
class Matchup:
    """P(challenger beats opponent) under one protocol (ties as the rates had them)."""

    protocol: str
    challenger: str
    """Study system id of the challenger (an unCLIP system)."""
    opponent: str
    """Study system id of the opponent (a GLIDE system)."""
    wins: int
    losses: int
    ties: int
    win_rate: float
    ci_low: float
    ci_high: float
    guidance: float | None
    """The decoder guidance scale both were sampled at (``None``: unknown)."""
    ties_mode: str = "half"
    level: float = 0.95

    @property
    def n(self) -> int:
        """Votes behind the rate: W + L + T (ties as half) or W + L (dropped)."""
        return self.wins + self.losses + (self.ties if self.ties_mode == "half" else 0)

    @property
    def half_width(self) -> float:
        """Half the interval's width (the ``± y.y%`` of the paper's cells)."""
        return (self.ci_high - self.ci_low) / 2


@dataclass(frozen=True)
class Pooled:
    """Every matchup of one protocol added up (and, in ``by_model``, of one challenger model)."""

    protocol: str
    wins: int
    losses: int
    ties: int
    win_rate: float
    ci_low: float
    ci_high: float
    n: int
    guidance: tuple[float, ...]
    """The guidance scales the pooled matchups were at (known ones, ascending)."""

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


@dataclass(frozen=True)
class Row:
    """One row of Table 1: a challenger against an opponent, a cell per protocol (absent: not compared)."""

    challenger: str
    opponent: str
    guidance: float | None
    cells: Mapping[str, Matchup]


@dataclass(frozen=True)
class Headline:
    """The answer to the paper's question, in the shape the report and the app draw."""

    challenger_name: str
    """``unCLIP`` (or the label of the challengers when a baseline defines the comparison)."""
    opponent_name: str
    """``GLIDE`` (or the baseline's model name)."""
    protocols: tuple[str, ...]
    """Protocols with at least one matchup, in the paper's order."""
    rows: tuple[Row, ...]
    """Table 1, challenger model (diffusion prior first) then guidance scale."""
    pooled: Mapping[str, Pooled]
    """Per protocol: all matchups together."""
    by_model: Mapping[str, Mapping[str, Pooled]]
    """Per protocol, per challenger model name: its matchups together."""
    priors: tuple[Row, ...]
    """unCLIP (diffusion prior) vs unCLIP (AR prior) at matched guidance (empty without both priors)."""

    @property
    def prior_protocols(self) -> tuple[str, ...]:
        """Protocols of the prior comparison, in the paper's order."""
        return tuple(sorted({p for r in self.priors for p in r.cells}, key=protocol_key))

    def matchups(self, protocol: str) -> list[Matchup]:
        """Table 1's cells of one protocol, in row order."""
        return [r.cells[protocol] for r in self.rows if protocol in r.cells]


def headline(
    rates: Sequence[WinRate], labeller: Labeller, *, baseline: str | None = None
) -> Headline | None:
    """Table 1, the pooled estimates and the prior comparison from pair win rates; ``None`` when no pair of
    the rates compares a challenger with an opponent (see the module docstring for who is who)."""
    infos = {s: labeller.info(s) for w in rates for s in (w.system_a, w.system_b)}
    roles = _roles(infos.values(), baseline)
    if roles is None:
        return None
    challengers, opponents, names = roles
    rows = _rows(rates, challengers, opponents, infos)
    if not rows:
        return None
    model = {sid: labeller.model_name(sid) for sid in infos}
    order = {g: i for i, g in enumerate(PRIOR_ORDER)}
    rows.sort(key=lambda r: (order.get(infos[r.challenger].generator, len(order)), model[r.challenger],
                             _g_key(r.guidance), r.opponent))
    protocols = tuple(sorted({p for r in rows for p in r.cells}, key=protocol_key))
    pooled = {p: _pool(p, [r.cells[p] for r in rows if p in r.cells], rates) for p in protocols}
    by_model: dict[str, dict[str, Pooled]] = {}
    for p in protocols:
        groups: dict[str, list[Matchup]] = defaultdict(list)
        for r in rows:
            if p in r.cells:
                groups[model[r.challenger]].append(r.cells[p])
        by_model[p] = {m: _pool(p, ms, rates) for m, ms in groups.items()}
    diffusion = {s for s, i in infos.items() if i.generator == PRIOR_ORDER[0]}
    autoregressive = {s for s, i in infos.items() if i.generator == PRIOR_ORDER[1]}
    priors = sorted(_rows(rates, diffusion, autoregressive, infos), key=lambda r: (_g_key(r.guidance), r.challenger))
    return Headline(names[0], names[1], protocols, tuple(rows), pooled, by_model, tuple(priors))


def _g_key(g: float | None) -> float:
    return -np.inf if g is None else g


def _roles(
    infos: Iterable[SystemInfo], baseline: str | None
) -> tuple[set[str], set[str], tuple[str, str]] | None:
    """(challengers, opponents, (challenger name, opponent name)) by generator, else by baseline, else None."""
    infos = list(infos)
    unclip = {i.id for i in infos if i.role == "unclip"}
    glide = {i.id for i in infos if i.role == "glide"}
    if unclip and glide:
        return unclip, glide, ("unCLIP", "GLIDE")
    if not baseline:
        return None
    opponents = {i.id for i in infos if baseline in (i.id, i.base)}
    if not opponents:
        return None
    real_baseline = all(i.role == "real" for i in infos if i.id in opponents)
    challengers = {i.id for i in infos if i.id not in opponents and (real_baseline or i.role != "real")}
    base = next(i for i in infos if i.id in opponents).base
    return challengers, opponents, ("each system", base)


def _matched(a: SystemInfo, b: SystemInfo) -> bool:
    return a.guidance is None or b.guidance is None or a.guidance == b.guidance


def _rows(
    rates: Sequence[WinRate], challengers: set[str], opponents: set[str], infos: Mapping[str, SystemInfo]
) -> list[Row]:
    """Matchups of challengers against opponents at matched guidance, grouped into rows by pair."""
    cells: dict[tuple[str, str], dict[str, Matchup]] = defaultdict(dict)
    for w in rates:
        if w.system_a in challengers and w.system_b in opponents:
            m = _matchup(w, flip=False)
        elif w.system_b in challengers and w.system_a in opponents:
            m = _matchup(w, flip=True)
        else:
            continue
        if _matched(infos[m.challenger], infos[m.opponent]):
            guidance = infos[m.opponent].guidance
            m = dataclasses.replace(m, guidance=infos[m.challenger].guidance if guidance is None else guidance)
            cells[(m.challenger, m.opponent)][m.protocol] = m
    return [Row(c, o, next(iter(ms.values())).guidance, dict(ms)) for (c, o), ms in cells.items()]


def _matchup(w: WinRate, *, flip: bool) -> Matchup:
    if not flip:
        return Matchup(w.protocol, w.system_a, w.system_b, w.wins, w.losses, w.ties, w.win_rate, w.ci_low,
                       w.ci_high, None, w.ties_mode, w.level)
    return Matchup(w.protocol, w.system_b, w.system_a, w.losses, w.wins, w.ties, 1.0 - w.win_rate,
                   1.0 - w.ci_high, 1.0 - w.ci_low, None, w.ties_mode, w.level)


def _pool(protocol: str, matchups: Sequence[Matchup], rates: Sequence[WinRate]) -> Pooled:
    """Add up the votes of ``matchups``; the interval by the rates' own method (bootstrap: normal)."""
    w = sum(m.wins for m in matchups)
    l = sum(m.losses for m in matchups)
    t = sum(m.ties for m in matchups)
    first = next((r for r in rates if r.protocol == protocol), None)
    method = "normal" if first is None or first.ci_method == "bootstrap" else first.ci_method
    ties_mode = matchups[0].ties_mode if matchups else "half"
    level = matchups[0].level if matchups else 0.95
    rate = float(iv.win_rate(w, l, t, ties_mode))  # type: ignore[arg-type]
    low, high = iv.count_interval(w, l, t, method=method, ties_mode=ties_mode, level=level)  # type: ignore[arg-type]
    n = w + l + (t if ties_mode == "half" else 0)
    scales = tuple(sorted({m.guidance for m in matchups if m.guidance is not None}))
    return Pooled(protocol, w, l, t, rate, float(low), float(high), n, scales)


def vote_kinds(votes: pd.DataFrame) -> dict[str, str]:
    """Per protocol, who voted: ``simulated``, ``human`` or ``mixed (N simulated, M human)``.

    ``votes`` is a vote table with a boolean ``simulated`` column (without one every vote counts as human);
    attention-check rows (``expected`` set) are left out, as in the win rates.
    """
    if len(votes) == 0:
        return {}
    ordinary = votes[votes["expected"].isna()] if "expected" in votes.columns else votes
    simulated = (ordinary["simulated"].astype(bool) if "simulated" in ordinary.columns
                 else pd.Series(False, index=ordinary.index))
    protocol = protocols_of(ordinary)
    out = {}
    for name, flags in simulated.groupby(protocol, sort=True):
        sim, total = int(flags.sum()), len(flags)
        out[str(name)] = ("simulated" if sim == total else "human" if sim == 0
                          else f"mixed ({sim} simulated, {total - sim} human)")
    return out


def pct(x: float) -> str:
    """``0.4712`` → ``47.1%`` (``—`` for NaN)."""
    return "—" if math.isnan(x) else f"{100 * x:.1f}%"


def rate_cell(m: Matchup | Pooled) -> str:
    """The paper's cell: ``47.1% ± 3.1%`` (estimate ± half the 95% interval)."""
    return f"{pct(m.win_rate)} ± {pct(m.half_width)}"


def row_title(row: Row, labeller: Labeller) -> str:
    """``P(unCLIP (diffusion prior), g = 3 beats GLIDE, g = 3)``."""
    return f"P({labeller.label(row.challenger)} beats {labeller.label(row.opponent)})"


def protocol_sentence(head: Headline, protocol: str, kind: str) -> str:
    """The headline of one protocol (Markdown): pooled estimate, interval, n, who voted, per model, and what the
    interval says, e.g. ``**Photorealism** (simulated votes): P(unCLIP beats GLIDE) = **47.1% ± 3.1%** (95% CI ...``.

    Args:
        head: the headline.
        protocol: one of ``head.protocols``.
        kind: who voted (`vote_kinds`): ``simulated``, ``human`` or ``mixed (...)``.
    """
    pooled = head.pooled[protocol]
    scales = ", ".join(f"{g:g}" for g in pooled.guidance)
    where = f" at guidance scales {scales}" if len(pooled.guidance) > 1 else (
        f" at guidance scale {scales}" if scales else "")
    text = (
        f"**{protocol_title(protocol)}** ({kind} votes): P({head.challenger_name} beats {head.opponent_name}) = "
        f"**{rate_cell(pooled)}** (95% CI {pct(pooled.ci_low)} to {pct(pooled.ci_high)}; n = {pooled.n} votes, "
        f"every matched comparison{where} together)."
    )
    models = head.by_model[protocol]
    if len(models) > 1:
        text += " By model: " + "; ".join(f"{name} {rate_cell(m)} (n = {m.n})" for name, m in models.items()) + "."
    if pooled.ci_low > 0.5:
        text += f" {head.challenger_name} is preferred."
    elif pooled.ci_high < 0.5:
        text += f" {head.opponent_name} is preferred."
    else:
        text += " No clear preference: the interval contains 50%."
    return text


def votes_note(kinds: Mapping[str, str], protocols: Sequence[str]) -> str:
    """``simulated votes`` / ``human votes`` when every protocol's votes are of one kind, else the kind per protocol
    (``votes: Photorealism simulated; Caption similarity human``)."""
    shown = {kinds.get(p, "human") for p in protocols}
    if len(shown) == 1:
        return f"{shown.pop()} votes"
    return "votes: " + "; ".join(f"{protocol_title(p)} {kinds.get(p, 'human')}" for p in protocols)


def flipped(w: WinRate) -> WinRate:
    """The same comparison read the other way: P(B beats A) = 1 − P(A beats B), W and L swapped, bounds mirrored."""
    return dataclasses.replace(w, system_a=w.system_b, system_b=w.system_a, wins=w.losses, losses=w.wins,
                               win_rate=1.0 - w.win_rate, ci_low=1.0 - w.ci_high, ci_high=1.0 - w.ci_low)


def reading_order(rates: Iterable[WinRate], labeller: Labeller) -> list[WinRate]:
    """Every pair as P(A beats B) with A the system `Labeller.sort_key` puts first (unCLIP before GLIDE before real
    renders), sorted by protocol then pair: the order of the report's appendix and the app's table of every pair."""
    out = [w if labeller.sort_key(w.system_a) <= labeller.sort_key(w.system_b) else flipped(w) for w in rates]
    return sorted(out, key=lambda w: (protocol_key(w.protocol), labeller.sort_key(w.system_a),
                                      labeller.sort_key(w.system_b)))

