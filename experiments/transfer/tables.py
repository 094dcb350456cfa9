"""The small helpers every report and analysis shares: comma-separated lists, CSV and
Markdown text, mean and standard deviation, and matplotlib without a display."""
from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable


def parse_list(text: str, what: str, cast=str, *, count: int | None = None) -> tuple:
    """``"a,b,c"`` -> ("a", "b", "c"), each item ``cast``; a clear error naming ``what`` (the
    flag) on an empty item, an item ``cast`` refuses, a repeated item, or (``count``) another
    number of items."""
    items = [item.strip() for item in str(text).split(",")]
    if not items or any(not item for item in items):
        raise ValueError(f"{what}: empty item in {text!r} (give a comma-separated list)")
    try:
        values = tuple(cast(item) for item in items)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a comma-separated list of {cast.__name__}") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{what}: expected {count} comma-separated values, got {text!r}")
    if count is None and len(set(values)) != len(values):
        raise ValueError(f"{what}: repeated item in {text!r}")
    return values


def mean(values: Iterable[float]) -> float:
    return statistics.fmean(values)


def sd(values: Iterable[float]) -> float | None:
    """The sample standard deviation (None for a single value)."""
    values = list(values)
    return statistics.stdev(values) if len(values) > 1 else None


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return mean(values), sd(values)


def csv_text(header: list[str], rows: Iterable[list]) -> str:
    """A CSV file's text (``\\n`` line ends; None written as an empty field)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
