"""Splitting a run's cells between workers (``run.py --shard I/N``): a deterministic,
cost-balanced assignment that keeps the cells of one seed's source model together.

Every worker of a grid computes the same split from the planned cells alone (not from
which are finished), so workers can start, stop and restart independently on one output
directory; the first source model saved wins under the directory's lock (``Runner``).
"""
from __future__ import annotations

from . import methods as M
from .config import RunConfig
from .results import CellKey


#: The shard assignment's rough cost of a cell's work, in full trainings: a job that trains on the
#: English set (one-step methods) or on a target's whole train split (target-only-full), and a
#: seed's source model, count 1 each; any other job (target-adapting or target-only on K shots,
#: zero-shot's evaluation) counts SMALL_JOB_COST.
FULL_TRAINING_COST = 1.0
SMALL_JOB_COST = 0.02


def assign_shards(cells: list[CellKey], costs: list[float], needs_source: list[bool], count: int) -> list[int]:
    """The shard (0 .. count - 1) of every cell: a deterministic balance of the costs.

    The cells that start from one seed's source model go together, as one unit that also costs
    the source model (``FULL_TRAINING_COST``), so one worker trains it; a unit larger than an even
    share of the work (the total over ``count``, at least the largest cell and a source model) is
    cut, in plan order, into pieces of at most that share, and each piece's worker trains (or
    finds saved) the source model. Then the units, heaviest first (ties in plan order), each go to
    the least loaded shard (the lowest index among equals). The split depends only on the planned
    cells, not on which are finished, so every worker of a grid, and a worker started again,
    computes the same one.
    """
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    groups: dict[tuple[str, int], list[int]] = {}
    for i, cell in enumerate(cells):
        if needs_source[i]:
            groups.setdefault((cell.task, cell.seed), []).append(i)
    total = sum(costs) + FULL_TRAINING_COST * len(groups)
    share = max(total / count, max(costs, default=0.0) + FULL_TRAINING_COST)
    units = [(costs[i], [i]) for i in range(len(cells)) if not needs_source[i]]
    for members in groups.values():
        cost, piece = FULL_TRAINING_COST, []
        for i in members:
            if piece and cost + costs[i] > share:
                units.append((cost, piece))
                cost, piece = FULL_TRAINING_COST, []
            piece.append(i)
            cost += costs[i]
        units.append((cost, piece))
    loads, shard = [0.0] * count, [0] * len(cells)
    for cost, members in sorted(units, key=lambda unit: (-unit[0], unit[1][0])):
        w = min(range(count), key=lambda w: (loads[w], w))
        loads[w] += cost
        for i in members:
            shard[i] = w
    return shard


def cell_cost(config: RunConfig, targets, method: str) -> tuple[float, bool]:
    """A cell's rough cost for :func:`assign_shards` (its jobs, in full trainings), and whether
    it starts from its seed's source model."""
    jobs = M.plan_jobs(method, targets, source=config.source, language_set=config.language_set,
                       oracle_includes_source=config.oracle_includes_source)
    cost = sum(FULL_TRAINING_COST if job.with_source_data or job.target_train_languages else SMALL_JOB_COST
               for job in jobs)
    return cost, M.get_method(method).init == M.SOURCE_MODEL


def shard_cells(cells: list[tuple[CellKey, str, int]], config: RunConfig, targets, index: int,
                count: int) -> list[tuple[CellKey, str, int]]:
    """The cells of shard ``index`` (1-based) of ``count``: disjoint, and all shards together are
    ``cells`` (``Runner.plan_cells()``), split by :func:`assign_shards`; in plan order."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: need 1 <= I <= N")
    costs = [cell_cost(config, targets, method) for _, method, _ in cells]
    shard = assign_shards([key for key, _, _ in cells], [c for c, _ in costs], [n for _, n in costs], count)
    return [cell for cell, s in zip(cells, shard) if s == index - 1]
