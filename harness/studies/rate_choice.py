"""A learning rate chosen from a grid by a written rule, and where the grid must grow so that the
choice is never at its edge (conf/protocol/minilm-paper/README.md, "Learning rates").

- A run's *selection score* is its selection-half metric at the epoch chosen on that half.
- A rate's score is the mean of its runs' scores over the grid's tasks.
- A run at or below the probe's score on the same task has *collapsed*; a rate with a collapsed
  run is not eligible. The probe itself is chosen by the score alone.
- A rate that collapsed on one task needs none of its other runs: whatever they score, it stays
  ineligible, so the choice waits only for the rates that can still be chosen (amendment 3).
- The chosen rate is the eligible rate with the best score (a tie goes to the lower rate).
- A chosen rate that is the lowest or highest rate run asks for one more rate beyond it: the edge
  times the ratio of the edge to its neighbour, to one significant figure. With no eligible rate the
  grid grows downwards.
- Fallback, for a task outside the grid: where a method's first seed at its chosen rate collapses
  (at or below the probe's first seed there), that (method, task) trains at the grid's next lower rate.

Pure functions: the study tool (harness/study.py) feeds them the scores its runs wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Scores = Mapping[float, Mapping[str, float]]  # rate -> task -> selection score (%)


@dataclass(frozen=True)
class RateChoice:
    chosen: float | None  # None: no eligible rate yet
    mean_scores: dict[float, float]  # every rate with a score on every task
    collapsed: dict[float, list[str]]  # rate -> the tasks on which it collapsed, finished rates or not
    unneeded: dict[float, list[str]]  # rate -> the tasks it has not run that its collapse makes moot
    extend_to: float | None  # the rate the grid must run next; None when the choice is interior


def rate_beyond(edge: float, neighbour: float) -> float:
    """The next rate past ``edge``, away from ``neighbour``, at the same ratio (one significant figure;
    two where one would round back onto ``edge``)."""
    beyond = edge * edge / neighbour
    rounded = float(f"{beyond:.1g}")
    return rounded if rounded != edge else float(f"{beyond:.2g}")


def choose_rate(scores: Scores, tasks: list[str], probe: Mapping[str, float] | None = None) -> RateChoice:
    """The rule above over ``scores``; ``probe`` maps each task to the probe's score (None: this is the probe).

    Rates lacking a score on some task are not judged yet: no choice is made and no extension asked
    until every rate of the grid has all its scores or has collapsed. Collapses are listed as their
    runs land.
    """
    rates = sorted(scores)
    if len(rates) < 2:
        raise ValueError(f"a grid needs at least two rates to have an edge, got {rates}")
    complete = {r: scores[r] for r in rates if all(t in scores[r] for t in tasks)}
    mean_scores = {r: sum(complete[r][t] for t in tasks) / len(tasks) for r in complete}
    collapsed = {}
    if probe is not None:  # judged run by run: a collapse is final before its rate's other tasks have run
        for rate in rates:
            low = [t for t in tasks if t in scores[rate] and scores[rate][t] <= probe[t]]
            if low:
                collapsed[rate] = low
    unneeded = {r: [t for t in tasks if t not in scores[r]] for r in collapsed if r not in complete}
    if any(r not in complete and r not in collapsed for r in rates):
        return RateChoice(None, mean_scores, collapsed, unneeded, None)
    eligible = [r for r in rates if r not in collapsed]  # each has all its scores
    if not eligible:
        return RateChoice(None, mean_scores, collapsed, unneeded, rate_beyond(rates[0], rates[1]))
    chosen = max(eligible, key=lambda r: (mean_scores[r], -r))
    extend_to = None
    if chosen == rates[0]:
        extend_to = rate_beyond(rates[0], rates[1])
    elif chosen == rates[-1]:
        extend_to = rate_beyond(rates[-1], rates[-2])
    return RateChoice(chosen, mean_scores, collapsed, unneeded, extend_to)


def fallback_rate(score: float, probe_score: float, chosen: float, rates: list[float]) -> float | None:
    """The rate a (method, task) outside the grid trains at instead of ``chosen`` when its first seed
    collapsed there (``score`` at or below the probe's), else None: the next lower rate of ``rates``
    (a chosen rate is interior, so there is one)."""
    if score > probe_score:
        return None
    return max(rate for rate in rates if rate < chosen)
