"""The tables the tools print (tools/parse_log.py, benchmark.py): an aligned Markdown table or CSV, with
one way of writing numbers and missing cells."""
from __future__ import annotations

import csv
import io

Row = list[str | int | float | None]


def _cell(value: str | int | float | None, column: str, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.1f}" if column in ("time", "samples/sec") else f"{value:.6f}"
    return str(value)


def format_table(header: list[str], rows: list[Row], fmt: str) -> str:
    """`fmt` 'markdown' (columns padded to their widest cell, '-' for a missing value) or 'csv' (an empty
    cell for it). Floats get 1 decimal in the `time` and `samples/sec` columns, 6 elsewhere; strings are
    written as they are."""
    cells = [[_cell(v, column, "-" if fmt == "markdown" else "") for v, column in zip(row, header)]
             for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *cells])
        return out.getvalue()
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *cells]
    return "".join("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |\n" for line in lines)
