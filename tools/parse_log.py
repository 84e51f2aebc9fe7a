#!/usr/bin/env python
"""Print the per-epoch table of training logs, as MXNet's tools/parse_log.py did.

    python tools/parse_log.py train.log
    python tools/parse_log.py model/mnist-metrics.jsonl --format csv
    python tools/parse_log.py mxnet-run.log our-run.log --metric-names accuracy,top_k_accuracy_5

Reads our log lines, MXNet's (`INFO:root:Epoch[0] Train-accuracy=0.9`) and metrics files of JSON lines,
told apart by content. As in MXNet's tool, epochs count from 1 (the log's `Epoch[0]` is epoch 1); `time` is
the epoch's `Time cost` in seconds and `samples/sec` the mean of its logged speeds. A run resumed into the
same file shows the epochs as the resumed run trained them.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.metrics_log import EpochSummary, MetricsLogError, read_epochs  # noqa: E402
from common.tables import Row, format_table  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logfile", nargs="+", metavar="LOGFILE",
                        help="a training log (ours or MXNet's) or a metrics file; several make one table "
                             "with a 'log' column")
    group = parser.add_argument_group("Output")
    group.add_argument("--format", choices=["markdown", "csv"], default="markdown",
                       help="markdown table (default) or CSV")
    group.add_argument("--metric-names", type=metric_names, default=["accuracy"], metavar="NAMES",
                       help="comma-separated metrics to show for train and validation, as named in the log "
                            "(default: accuracy; e.g. accuracy,top_k_accuracy_5,cross-entropy)")
    return parser


def metric_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one metric name")
    return names


def check_metric_names(path: str, summaries: list[EpochSummary], names: list[str]) -> None:
    """A misspelt name would only give an empty column: say which names the log has instead."""
    found = sorted(set().union(*(s.train.keys() | s.validation.keys() for s in summaries)))
    unknown = [name for name in names if name not in found]
    if found and unknown:
        raise MetricsLogError(f"{path}: no metric {', '.join(map(repr, unknown))} in it "
                              f"(it has: {', '.join(found)})")


def epoch_rows(summaries: list[EpochSummary], names: list[str]) -> list[Row]:
    return [[s.epoch + 1, *(s.train.get(n) for n in names), *(s.validation.get(n) for n in names),
             s.time_cost, s.mean_speed] for s in summaries]


def main(args: argparse.Namespace) -> str:
    """Print and return the table."""
    names = args.metric_names
    header = (["epoch"] + [f"train-{n}" for n in names] + [f"val-{n}" for n in names]
              + ["time", "samples/sec"])
    several = len(args.logfile) > 1
    rows: list[Row] = []
    for path in args.logfile:
        summaries = read_epochs(path)
        check_metric_names(path, summaries, names)
        rows += [[path, *row] if several else row for row in epoch_rows(summaries, names)]
    table = format_table(["log", *header] if several else header, rows, args.format)
    print(table, end="")
    return table


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except MetricsLogError as e:
        sys.exit(f"parse_log.py: error: {e}")
