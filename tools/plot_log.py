#!/usr/bin/env python
"""Plot training curves: train accuracy, validation accuracy and samples/sec against epoch, one line per
run, so two runs (or a run and MXNet's log of the same training) can be compared at a glance.

    python tools/plot_log.py train.log -o curves.png
    python tools/plot_log.py mxnet-run.log model/mnist-metrics.jsonl --labels mxnet,pytorch -o curves.png

Reads the same files as tools/parse_log.py (our logs, MXNet's, metrics files); epochs count from 1 as in
its table. The image is 15 x 4 inches at --dpi (1500 x 400 pixels by default); the format follows the
extension of -o (png, svg, pdf).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.metrics_log import EpochSummary, MetricsLogError, read_epochs  # noqa: E402
from common.plotting import Panel, Series, save_line_plots  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logfile", nargs="+", metavar="LOGFILE",
                        help="training logs (ours or MXNet's) or metrics files, one line each in the plots")
    group = parser.add_argument_group("Output")
    group.add_argument("-o", "--output", default="curves.png",
                       help="image file to write (default: curves.png)")
    group.add_argument("--labels", type=lambda text: text.split(","), metavar="NAMES",
                       help="comma-separated legend names, one per LOGFILE (default: the file names)")
    group.add_argument("--metric", default="accuracy",
                       help="metric to plot, as named in the logs (default: accuracy)")
    group.add_argument("--title", help="a title above the plots")
    group.add_argument("--dpi", type=int, default=100, help="pixels per inch of the image (default: 100)")
    return parser


def default_labels(paths: list[str]) -> list[str]:
    """File names without extension; the paths as given where two names would be the same."""
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def curve_panels(runs: list[tuple[str, list[EpochSummary]]], metric: str) -> list[Panel]:
    """Train metric, validation metric and speed against epoch; each run keeps one colour in all three."""
    panels = [Panel(f"Train {metric}", "epoch", metric, integer_x=True),
              Panel(f"Validation {metric}", "epoch", metric, integer_x=True),
              Panel("Training speed", "epoch", "samples/sec (mean over the epoch)", integer_x=True,
                    y_from_zero=True)]
    for i, (label, summaries) in enumerate(runs):
        values = ([s.train.get(metric) for s in summaries], [s.validation.get(metric) for s in summaries],
                  [s.mean_speed for s in summaries])
        for panel, ys in zip(panels, values):
            points = [(s.epoch + 1, y) for s, y in zip(summaries, ys) if y is not None]
            panel.series.append(Series(label, [x for x, _ in points], [y for _, y in points], color=f"C{i}"))
    return panels


def main(args: argparse.Namespace) -> str:
    """Write the plot; returns its path."""
    labels = args.labels or default_labels(args.logfile)
    runs = [(label, read_epochs(path)) for label, path in zip(labels, args.logfile)]
    if not any(args.metric in s.train or args.metric in s.validation for _, run in runs for s in run):
        raise MetricsLogError(f"no metric '{args.metric}' in {', '.join(args.logfile)} (see --metric)")
    try:
        save_line_plots(curve_panels(runs, args.metric), args.output, title=args.title, dpi=args.dpi)
    except (OSError, ValueError) as e:  # unwritable path, unknown image format
        raise MetricsLogError(f"cannot write {args.output}: {e}") from None
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    parser = get_args_parser()
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.logfile):
        parser.error(f"--labels names {len(args.labels)} runs but {len(args.logfile)} LOGFILEs are given")
    if args.dpi <= 0:
        parser.error("--dpi must be a positive number of pixels per inch")
    try:
        main(args)
    except MetricsLogError as e:
        sys.exit(f"plot_log.py: error: {e}")
