"""Cells, verdicts, the view-choice confusion table and report.md, all computed from run records.

Outcomes are bimodal, so every figure here is *k of n seeds learned* (final test NMSE < 0.5) with its exact
Clopper–Pearson 95% interval, and a cell is called

* **learns** when the interval lies wholly above 0.5 (most seeds learn, beyond chance),
* **stuck** when it lies wholly below 0.5,
* **unclear** otherwise.

The decision rules, fixed before the standard run (README, "The seed's claims"):

* **R1** "raw tokens stay at the mean at N = 12,288" — the raw view (``raw+fourier-pos``), 1-D, carrier at
  token 0, β1 0.9, lr 1e-3, at the largest N of the long (escape) runs: *holds* if stuck at the end of the long
  budget, *fails* if it learns, else inconclusive. The share learned by step 300 (the quick study's budget) and
  the escape-step median against N are reported next to it.
* **R2** "Adam β1 = 0.999 gets out where β1 = 0.9 stays" — the same cell over β1 ∈ {0.9, 0.999} × lr, on the
  learning rates with ≥ 10 seeds for both β1 (all of them if none has; the others are reported as exploratory):
  *holds* if at some lr β1 = 0.999 learns while β1 = 0.9 is stuck; *fails* if at every lr either β1 = 0.999 is
  stuck or β1 = 0.9 learns too; else inconclusive.
* **R3** "the FFT without normalisation fails on long inputs (X2 drowns X1)" — uncentred ``fft``, 1-D, token 0:
  *holds* if stuck at the largest N while it learns at the smallest; *fails* if it learns at the largest N; else
  inconclusive. ``centre-fft`` at the same N is quoted beside it.
* **R4** "after normalisation the FFT works at every N" — the normalised Fourier views (centre-fft, centre-fft-z,
  zscore-fft) with the seed's carrier at token 0, 1-D at every N and the image: *holds* if at every (task, N)
  at least one of them learns; *fails* if at some (task, N) all of them are stuck; else inconclusive.
* **R5** "on a frequency shift the Fourier view hurts, and the seed's rule picks raw" — fixed phase, at every N:
  Fourier *hurts* at N when the best raw view (raw+fourier-pos, raw-zscore) learns and the best Fourier view
  (centre-fft, centre-fft-z) is stuck; it *does not hurt* when the best Fourier view learns. *Holds* if it hurts
  at every N and the participation-ratio rule picks raw on most seeds; *fails* if it hurts at no N
  (does-not-hurt at every N); else inconclusive.

An inconclusive verdict names the number of seeds at which the observed fraction would clear 0.5.

**The confusion table.** A *problem* is a dataset (task and factors) with the transform axes. Where both rule
candidates were trained (raw = raw-zscore, Fourier = centre-fft-z), the winner is: ``neither`` if both have
k/n < 0.5; the one view with k/n ≥ 0.5 if only one has; if both have, the larger when they differ by more than
0.2, else ``either``. A rule's pick on a problem is its most frequent answer over the problem's seeds; it is
right when it names the winner, names either view when the winner is ``either``, or says ``neither`` when the
winner is ``neither``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rvperceiver.experiments.statistics import Interval, clopper_pearson, median, seeds_to_decide, side_of
from rvperceiver.views.adaptive import NEITHER, RULES

__all__ = [
    "ClaimVerdict",
    "claim_verdicts",
    "cell_records",
    "confusion_records",
    "rule_scores",
    "render_report",
    "mean_spread",
    "THRESHOLD",
]

THRESHOLD = 0.5
R2_MIN_SEEDS = 10
RAW = "raw+fourier-pos"
RAW_VIEWS = ("raw+fourier-pos", "raw-zscore")
FOURIER_VIEWS = ("centre-fft", "centre-fft-z")
NORMALISED_FFT_VIEWS = ("centre-fft", "centre-fft-z", "zscore-fft")
RAW_CANDIDATE = "raw-zscore"
FOURIER_CANDIDATE = "centre-fft-z"
EITHER_MARGIN = 0.2
STATE = {"above": "learns", "below": "stuck", "straddles": "unclear"}


@dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    statement: str
    status: str  # "holds" | "fails" | "inconclusive"
    evidence: str
    cells: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cells"] = list(self.cells)
        return data


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _runs(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("record") == "run"]


def _select(runs: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    def keep(r: dict[str, Any]) -> bool:
        for key, value in where.items():
            allowed = value if isinstance(value, (tuple, list, set)) else (value,)
            if r.get(key) not in allowed:
                return False
        return True

    return [r for r in runs if keep(r)]


def _nmse_at(run: dict[str, Any], budget: int) -> float:
    """Test NMSE at the last evaluation at or before ``budget`` steps (a run stopped early keeps its last value)."""
    points = [p for p in run["curve"] if p["step"] <= budget]
    return points[-1]["test_nmse"] if points else math.inf


def interval(runs: list[dict[str, Any]], budget: int | None = None) -> Interval | None:
    if not runs:
        return None
    if budget is None:
        k = sum(bool(r["learned"]) for r in runs)
    else:
        k = sum(_nmse_at(r, budget) < THRESHOLD for r in runs)
    return clopper_pearson(k, len(runs))


def _state(iv: Interval | None) -> str:
    return "missing" if iv is None else STATE[side_of(iv, THRESHOLD)]


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _escape_text(runs: list[dict[str, Any]]) -> str:
    steps = [r["escape_step"] for r in runs]
    reached = [s for s in steps if s is not None]
    m = median(reached)
    return f"escape median {int(m)} ({len(reached)}/{len(steps)} escaped)" if m is not None else f"no escape in {runs[0]['steps']} steps"


def _cell_text(runs: list[dict[str, Any]], budget: int | None = None) -> str:
    iv = interval(runs, budget)
    return f"{iv.text()} {_state(iv)}" if iv else "missing"


def _need(runs: list[dict[str, Any]]) -> str:
    iv = interval(runs)
    if iv is None:
        return "no runs"
    m = seeds_to_decide(iv.k, iv.n, THRESHOLD)
    return f"{iv.k}/{iv.n} would need ≈{m} seeds at this rate" if m else f"{iv.k}/{iv.n} sits at the threshold"


# ----------------------------------------------------------------------------------------------------------------
# cells


def cell_records(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per cell: view, factors, k/n learned, interval bounds, escape-step median, NMSE median."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[r["cell"]].append(r)
    out = []
    for key, group in sorted(groups.items()):
        iv = interval(group)
        assert iv is not None
        first = group[0]
        escapes = [r["escape_step"] for r in group if r["escape_step"] is not None]
        out.append({
            "record": "cell",
            "experiment": first.get("experiment"),
            "cell": key,
            **{k: first[k] for k in ("task", "n_tokens", "view", "carrier", "noise", "phase", "axes", "beta1", "lr", "steps")},
            "questions": first.get("questions", []),
            "seeds": sorted(r["seed"] for r in group),
            "n": iv.n,
            "k_learned": iv.k,
            "fraction_learned": iv.fraction,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "state": _state(iv),
            "escape_step_median": median(escapes),
            "escaped": len(escapes),
            "test_nmse_median": median([r["test_nmse"] for r in group]),
            "wall_time_s": sum(r.get("wall_time_s", 0.0) for r in group),
        })
    return out


# ----------------------------------------------------------------------------------------------------------------
# verdicts


def _is_long(r: dict[str, Any]) -> bool:
    """The raw-token escape runs (R1/R2 cells), trained for the long budget."""
    return r["view"] == RAW and bool({"R1", "R2"} & set(r.get("questions") or ()))


def _long(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if _is_long(r) and r["task"] == "tiny-difference" and r["carrier"] == "token0" and r["noise"] == 0.01]


def _r1(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "raw tokens stay at the mean at N = 12,288 (β1 0.9)"
    long = _long(runs)
    sizes = sorted({r["n_tokens"] for r in long})
    if not sizes:
        return ClaimVerdict("R1", statement, "inconclusive", "no long raw-view runs")
    n_max = sizes[-1]
    cell = _select(long, n_tokens=n_max, beta1=0.9, lr=1e-3)
    if not cell:
        return ClaimVerdict("R1", statement, "inconclusive", "no raw run with β1 0.9, lr 1e-3 at the largest N")
    state = _state(interval(cell))
    status = {"stuck": "holds", "learns": "fails"}.get(state, "inconclusive")
    curve = "; ".join(
        f"N={n}: {_cell_text(c)}, {_escape_text(c)}"
        for n in sizes
        if (c := _select(long, n_tokens=n, beta1=0.9, lr=1e-3))
    )
    evidence = (
        f"N={n_max}, {cell[0]['steps']} steps: {_cell_text(cell)} (by step 300: {_cell_text(cell, 300)}). "
        f"Escape curve against N — {curve}"
    )
    if status == "inconclusive":
        evidence += f". Undecided: {_need(cell)}"
    return ClaimVerdict("R1", statement, status, evidence, tuple(sorted({r["cell"] for r in _select(long, beta1=0.9, lr=1e-3)})))


def _r2(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "Adam β1 = 0.999 gets out of the plateau where β1 = 0.9 stays"
    long = _long(runs)
    if not long:
        return ClaimVerdict("R2", statement, "inconclusive", "no long raw-view runs")
    n_max = max(r["n_tokens"] for r in long)
    at = _select(long, n_tokens=n_max)
    lrs = sorted({r["lr"] for r in at})
    # Learning rates with ≥ 10 seeds on both β1 carry the verdict; the others are reported as exploratory.
    powered = [lr for lr in lrs if min(len(_select(at, lr=lr, beta1=b)) for b in (0.9, 0.999)) >= R2_MIN_SEEDS]
    verdict_lrs = powered or lrs
    holds_at, fails_at, parts, undecided = [], [], [], []
    for lr in lrs:
        hi, lo = _select(at, lr=lr, beta1=0.999), _select(at, lr=lr, beta1=0.9)
        if not hi or not lo:
            continue
        if lr not in verdict_lrs:
            parts.append(f"exploratory lr {lr:g}: β1 0.9 {_cell_text(lo)}, {_escape_text(lo)}; β1 0.999 {_cell_text(hi)}, "
                         f"{_escape_text(hi)}")
            continue
        s_hi, s_lo = _state(interval(hi)), _state(interval(lo))
        parts.append(f"lr {lr:g}: β1 0.9 {_cell_text(lo)}, {_escape_text(lo)}; β1 0.999 {_cell_text(hi)}, {_escape_text(hi)}")
        if s_hi == "learns" and s_lo == "stuck":
            holds_at.append(lr)
        elif s_hi == "stuck" or s_lo == "learns":
            fails_at.append(lr)
        else:
            undecided.append(f"lr {lr:g} (β1 0.999 {_need(hi)}; β1 0.9 {_need(lo)})")
    compared = len(holds_at) + len(fails_at) + len(undecided)
    if not compared:
        return ClaimVerdict("R2", statement, "inconclusive", f"needs both β1 at one lr at N={n_max}")
    status = "holds" if holds_at else "fails" if len(fails_at) == compared else "inconclusive"
    evidence = f"N={n_max}, {at[0]['steps']} steps — " + " | ".join(parts)
    if status == "inconclusive":
        evidence += ". Undecided at " + "; ".join(undecided)
    return ClaimVerdict("R2", statement, status, evidence,
                        tuple(sorted({r["cell"] for r in at if r["lr"] in verdict_lrs})))


def _short(runs: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in _select(runs, **where) if not _is_long(r)]


def _r3(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "the FFT without normalisation fails on long inputs (X2 drowns X1)"
    fft = _short(runs, task="tiny-difference", view="fft", carrier="token0", noise=0.01, beta1=0.9)
    sizes = sorted({r["n_tokens"] for r in fft})
    if len(sizes) < 2:
        return ClaimVerdict("R3", statement, "inconclusive", "needs the fft view at two or more N")
    small, large = _select(fft, n_tokens=sizes[0]), _select(fft, n_tokens=sizes[-1])
    s_small, s_large = _state(interval(small)), _state(interval(large))
    status = "holds" if s_large == "stuck" and s_small == "learns" else "fails" if s_large == "learns" else "inconclusive"
    centre = _short(runs, task="tiny-difference", view="centre-fft", carrier="token0", noise=0.01, beta1=0.9)
    evidence = "uncentred fft: " + ", ".join(f"N={n}: {_cell_text(_select(fft, n_tokens=n))}" for n in sizes)
    if centre:
        evidence += "; centre → fft at the same N: " + ", ".join(
            f"N={n}: {_cell_text(c)}" for n in sizes if (c := _select(centre, n_tokens=n))
        )
    if status == "inconclusive":
        evidence += f". Undecided: at N={sizes[-1]} {_need(large)}"
    cells = {r["cell"] for r in fft} | {r["cell"] for r in centre}
    return ClaimVerdict("R3", statement, status, evidence, tuple(sorted(cells)))


def _r4(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "after normalisation the FFT works at every N"
    chosen = _short(runs, task=("tiny-difference", "tiny-difference-image"), view=NORMALISED_FFT_VIEWS,
                    carrier="token0", noise=0.01, beta1=0.9, axes="flat")
    if not chosen:
        return ClaimVerdict("R4", statement, "inconclusive", "no normalised-fft run with the carrier at token 0")
    keys = sorted({(r["task"], r["n_tokens"]) for r in chosen})
    works, fails, parts, undecided = [], [], [], []
    for task, n in keys:
        states = {}
        texts = []
        for view in NORMALISED_FFT_VIEWS:
            c = _select(chosen, task=task, n_tokens=n, view=view)
            if c:
                states[view] = _state(interval(c))
                texts.append(f"{view} {_cell_text(c)}")
        parts.append(f"{task} N={n}: " + ", ".join(texts))
        if "learns" in states.values():
            works.append((task, n))
        elif all(s == "stuck" for s in states.values()):
            fails.append((task, n))
        else:
            best = max(NORMALISED_FFT_VIEWS, key=lambda v: interval(_select(chosen, task=task, n_tokens=n, view=v)).k
                       if _select(chosen, task=task, n_tokens=n, view=v) else -1)
            undecided.append(f"{task} N={n} (best {best}: {_need(_select(chosen, task=task, n_tokens=n, view=best))})")
    status = "holds" if len(works) == len(keys) else "fails" if fails else "inconclusive"
    evidence = " | ".join(parts)
    if status == "holds" and not any(task == "tiny-difference-image" for task, _ in keys):
        # The claim is about images too: it cannot hold on the 1-D cells alone (it can fail on them).
        status = "inconclusive"
        undecided.append("the image cells, which did not run")
    if fails:
        evidence += f" — every normalised view stuck at {fails}"
    if status == "inconclusive":
        evidence += ". Undecided at " + "; ".join(undecided)
    return ClaimVerdict("R4", statement, status, evidence, tuple(sorted({r["cell"] for r in chosen})))


def _majority_pick(runs: list[dict[str, Any]], rule: str) -> str | None:
    picks: dict[int, str] = {}
    for r in runs:
        choice = (r.get("rule_picks") or {}).get(rule)
        if choice:
            picks[r["seed"]] = choice["chosen"]
    if not picks:
        return None
    counts = Counter(picks.values()).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "mixed"
    return counts[0][0]


def _r5(runs: list[dict[str, Any]]) -> ClaimVerdict:
    statement = "on a frequency shift the Fourier view hurts, and the seed's rule picks raw"
    chosen = _short(runs, task="frequency-shift", phase="fixed", beta1=0.9, axes="flat")
    sizes = sorted({r["n_tokens"] for r in chosen})
    hurts, not_hurt, parts, cells = [], [], [], set()
    for n in sizes:
        at = _select(chosen, n_tokens=n)

        def best(views: tuple[str, ...]) -> tuple[str, list[dict[str, Any]]] | None:
            present = [(v, _select(at, view=v)) for v in views if _select(at, view=v)]
            return max(present, key=lambda vr: interval(vr[1]).fraction) if present else None  # type: ignore[union-attr]

        raw, fourier = best(RAW_VIEWS), best(FOURIER_VIEWS)
        if raw is None or fourier is None:
            continue
        cells |= {r["cell"] for r in raw[1] + fourier[1]}
        s_raw, s_f = _state(interval(raw[1])), _state(interval(fourier[1]))
        if s_raw == "learns" and s_f == "stuck":
            hurts.append(n)
        elif s_f == "learns":
            not_hurt.append(n)
        parts.append(f"N={n}: best raw {raw[0]} {_cell_text(raw[1])}, best Fourier {fourier[0]} {_cell_text(fourier[1])}")
    if not parts:
        return ClaimVerdict("R5", statement, "inconclusive", "needs raw and Fourier runs on the fixed-phase shift")
    pick = _majority_pick(chosen, "participation")
    evidence = "; ".join(parts) + f"; the participation-ratio rule picks {pick}"
    if len(hurts) == len(parts) and pick == "raw":
        status = "holds"
    elif len(not_hurt) == len(parts):
        status = "fails"
        if pick == "raw":
            evidence += " — the Fourier view learns at every N, so picking raw is the wrong call"
    else:
        status = "inconclusive"
    return ClaimVerdict("R5", statement, status, evidence, tuple(sorted(cells)))


def claim_verdicts(records: Iterable[dict[str, Any]]) -> list[ClaimVerdict]:
    runs = _runs(records)
    return [_r1(runs), _r2(runs), _r3(runs), _r4(runs), _r5(runs)]


# ----------------------------------------------------------------------------------------------------------------
# the view-choice confusion table


def _winner(raw: Interval, fourier: Interval) -> str:
    r, f = raw.fraction, fourier.fraction
    if r < THRESHOLD and f < THRESHOLD:
        return NEITHER
    if r >= THRESHOLD and f < THRESHOLD:
        return "raw"
    if f >= THRESHOLD and r < THRESHOLD:
        return "fourier"
    if abs(r - f) <= EITHER_MARGIN:
        return "either"
    return "raw" if r > f else "fourier"


def _right(pick: str | None, winner: str) -> bool:
    if pick is None:
        return False
    if winner == "either":
        return pick in ("raw", "fourier")
    return pick == winner


def confusion_records(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per problem (dataset + axes) where both candidates were trained: the winner and every rule's pick."""
    short = [r for r in runs if r["beta1"] == 0.9 and r["lr"] == 1e-3 and not _is_long(r)]
    problems: dict[tuple, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in short:
        key = (r["task"], r["n_tokens"], r["carrier"], r["noise"], r["phase"], r["steps"])
        problems[key][f"{r['view']}|{r['axes']}"].append(r)
    out = []
    for key, by_view in sorted(problems.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        raw = by_view.get(f"{RAW_CANDIDATE}|flat")
        if not raw:
            continue
        for axes in ("flat", "grid"):
            fourier = by_view.get(f"{FOURIER_CANDIDATE}|{axes}")
            if not fourier:
                continue
            iv_raw, iv_f = interval(raw), interval(fourier)
            assert iv_raw is not None and iv_f is not None
            dual = by_view.get(f"dual|{axes}")
            iv_d = interval(dual) if dual else None
            winner = _winner(iv_raw, iv_f)
            picks = {rule: _majority_pick(fourier, rule) for rule in RULES}
            task, n, carrier, noise, phase, steps = key
            out.append({
                "record": "confusion",
                "task": task, "n_tokens": n, "carrier": carrier, "noise": noise, "phase": phase, "axes": axes, "steps": steps,
                "raw": {"k": iv_raw.k, "n": iv_raw.n, "ci_low": iv_raw.low, "ci_high": iv_raw.high},
                "fourier": {"k": iv_f.k, "n": iv_f.n, "ci_low": iv_f.low, "ci_high": iv_f.high},
                "dual": {"k": iv_d.k, "n": iv_d.n, "ci_low": iv_d.low, "ci_high": iv_d.high} if iv_d else None,
                "winner": winner,
                "picks": picks,
                "right": {rule: _right(pick, winner) for rule, pick in picks.items()},
            })
    return out


def rule_scores(confusion: list[dict[str, Any]]) -> dict[str, Interval]:
    """Per rule: on how many problems it picked right, with the interval."""
    scores = {}
    for rule in RULES:
        rows = [c for c in confusion if rule in c["right"]]
        if rows:
            scores[rule] = clopper_pearson(sum(bool(c["right"][rule]) for c in rows), len(rows))
    return scores


# ----------------------------------------------------------------------------------------------------------------
# report.md


def _factor_label(c: dict[str, Any]) -> str:
    bits = []
    if c["carrier"] != "-":
        bits.append(f"carrier {c['carrier']}")
    if c["phase"] != "-":
        bits.append(f"phase {c['phase']}")
    bits.append(f"noise {c['noise']:g}")
    return ", ".join(bits)


def _cell_tables(cells: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    short = [c for c in cells if not _is_long(c)]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for c in short:
        groups[(c["task"], _factor_label(c), c["steps"])].append(c)
    for (task, label, steps), group in sorted(groups.items()):
        sizes = sorted({c["n_tokens"] for c in group})
        rows = sorted({(c["view"], c["axes"], c["beta1"], c["lr"]) for c in group}, key=lambda x: (_view_order(x[0]), x[1:]))
        lines += [f"### {task} ({label}; {steps} steps): seeds learned k/n [95% interval] · state", "",
                  "| view | axes | β1 | lr | " + " | ".join(f"N = {n}" for n in sizes) + " |",
                  "|---|---|---|---|" + "---|" * len(sizes)]
        for view, axes, beta1, lr in rows:
            cols = []
            for n in sizes:
                match = [c for c in group if (c["view"], c["axes"], c["beta1"], c["lr"], c["n_tokens"]) == (view, axes, beta1, lr, n)]
                if not match:
                    cols.append("–")
                    continue
                c = match[0]
                cols.append(f"{c['k_learned']}/{c['n']} [{c['ci_low']:.2f}, {c['ci_high']:.2f}] {c['state']}")
            lines.append(f"| {view} | {axes} | {beta1} | {lr:g} | " + " | ".join(cols) + " |")
        lines.append("")
    return lines


def _long_table(cells: list[dict[str, Any]]) -> list[str]:
    long = [c for c in cells if _is_long(c)]
    if not long:
        return []
    lines = ["### Raw tokens, long budgets (R1, R2): seeds learned, escape step", "",
             "| N | β1 | lr | steps | learned k/n [95%] | state | escape-step median (escaped) | median final NMSE |",
             "|---|---|---|---|---|---|---|---|"]
    for c in sorted(long, key=lambda c: (c["n_tokens"], c["lr"], c["beta1"])):
        esc = f"{int(c['escape_step_median'])} ({c['escaped']}/{c['n']})" if c["escape_step_median"] is not None else f"– (0/{c['n']})"
        lines.append(f"| {c['n_tokens']} | {c['beta1']} | {c['lr']:g} | {c['steps']} | {c['k_learned']}/{c['n']} "
                     f"[{c['ci_low']:.2f}, {c['ci_high']:.2f}] | {c['state']} | {esc} | {_fmt(c['test_nmse_median'])} |")
    return lines + [""]


def _confusion_table(confusion: list[dict[str, Any]]) -> list[str]:
    if not confusion:
        return []
    lines = ["## Which view wins, and what each rule picks", "",
             "Raw = raw-zscore, Fourier = centre-fft-z (the rules' two candidates); dual = both as two channels per "
             "token. ✓ = the rule's most frequent pick over the seeds is right (see the rule in the module docstring).", "",
             "| task | N | factors | axes | raw k/n | Fourier k/n | dual k/n | winner | " + " | ".join(RULES) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(RULES)]
    for c in confusion:
        dual = f"{c['dual']['k']}/{c['dual']['n']}" if c["dual"] else "–"
        picks = " | ".join(f"{c['picks'][rule]} {'✓' if c['right'][rule] else '✗'}" for rule in RULES)
        lines.append(f"| {c['task']} | {c['n_tokens']} | {_factor_label(c)} | {c['axes']} | {c['raw']['k']}/{c['raw']['n']} | "
                     f"{c['fourier']['k']}/{c['fourier']['n']} | {dual} | {c['winner']} | {picks} |")
    scores = rule_scores(confusion)
    lines += ["", "Share of problems each rule gets right: " + "; ".join(
        f"**{rule}** {iv.text()}" for rule, iv in scores.items()), ""]
    return lines


def _view_order(view: str) -> int:
    order = ("raw+fourier-pos", "raw-zscore", "fft", "centre-fft", "centre-fft-z", "zscore-fft", "dual")
    return order.index(view) if view in order else len(order)


def _theory_section(records: list[dict[str, Any]]) -> list[str]:
    theory = sorted((r for r in records if r.get("record") == "theory"), key=lambda r: r["n_tokens"])
    if not theory:
        return []
    first, last = theory[0], theory[-1]
    lines = [
        "## Theory: the seed's DFT algebra, numerically", "",
        f"x[0] = X1 = {first['x1']}, x[1:] = X2 = {first['x2']}; a change Δ = {first['delta']} of X1; white noise "
        f"σ = {first['noise_std']} for the SNR columns; unnormalised DFT unless marked 'ortho'.", "",
        "| N | \\|X[0]\\| | \\|X[f≠0]\\| | \\|X[0]\\| ortho | \\|X[f≠0]\\| ortho | change share of energy | centred \\|bin\\| | "
        "SNR raw carrier | SNR per bin ortho | seed formula max error | closed-form gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in theory:
        lines.append(
            f"| {r['n_tokens']} | {_fmt(r['numeric_dc_unnorm'], 1)} | {_fmt(r['numeric_nondc_unnorm'], 4)} | "
            f"{_fmt(r['numeric_dc_ortho'], 3)} | {_fmt(r['numeric_nondc_ortho'], 5)} | "
            f"{r['numeric_change_energy_share']:.2e} | {_fmt(r['numeric_centred_bin_unnorm'], 4)} | "
            f"{_fmt(r['numeric_snr_raw_carrier_token'], 1)} | {_fmt(r['numeric_snr_per_bin_ortho'], 3)} | "
            f"{_fmt(r['numeric_seed_formula_max_abs_error'], 3)} | {r['max_relative_gap']:.1e} |"
        )
    growth = last["numeric_dc_unnorm"] / first["numeric_dc_unnorm"]
    share_drop = first["numeric_change_energy_share"] / last["numeric_change_energy_share"]
    lines += [
        "", "What the numbers say:",
        f"- The DC bin grows with N (×{growth:.0f} from N={first['n_tokens']} to N={last['n_tokens']}); every other "
        f"bin holds exactly X1 − X2 = {last['numeric_nondc_unnorm']:.4f} at every N (the geometric sum over n ≥ 1 is "
        "exactly −1 for integer f ≠ 0). X2 'drowns' X1 only in the DC bin.",
        f"- The change's share of the total energy falls as 1/N (÷{share_drop:.0f} over the same range), identically in "
        "raw space and in the orthonormal DFT (Parseval).",
        "- After centring by the dataset mean every bin holds Δ (unnormalised) at every N.",
        f"- With noise the Fourier view adds no information: the raw carrier token has SNR "
        f"{last['numeric_snr_raw_carrier_token']:.0f} while each orthonormal bin has "
        f"{last['numeric_snr_per_bin_ortho']:.3f} at N={last['n_tokens']}; summed SNR² is equal.",
        f"- The seed's simplified expression (phase factor e^(−jπf(N−1)/N)) is off by up to "
        f"{last['numeric_seed_formula_max_abs_error']:.2f} from the true DFT; the correct factor is e^(−jπf).", "",
    ]
    return lines


def render_report(records: list[dict[str, Any]], title: str, setup_lines: Sequence[str] = ()) -> str:
    """The whole report.md as a string."""
    runs = _runs(records)
    cells = [r for r in records if r.get("record") == "cell"] or cell_records(runs)
    confusion = [r for r in records if r.get("record") == "confusion"] or confusion_records(runs)
    lines = [f"# {title}", ""] + list(setup_lines)
    if runs:
        lines += ["## Claims", ""]
        for v in claim_verdicts(runs):
            lines.append(f"- **{v.claim}** ({v.statement}): **{v.status}** — {v.evidence}")
            lines.append(f"  - cells: {', '.join(f'`{c}`' for c in v.cells) or '–'}")
        lines.append("")
        lines += _confusion_table(confusion)
        lines += ["## Cells", ""]
        lines += _long_table(cells)
        lines += _cell_tables(cells)
        total = sum(r.get("wall_time_s", 0.0) for r in runs)
        lines += [f"Total training wall time: {total:.0f} s over {len(runs)} runs (summed over workers).", ""]
    lines += _theory_section(records)
    return "\n".join(lines) + "\n"
