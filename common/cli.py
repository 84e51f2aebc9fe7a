"""What every command-line script shares: the user-error types, MXNet's log-line prefix, option parsing
(presets, `--image-shape`), and `run_main`, which turns a user's mistake into one line on stderr and exit
code 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

from tqdm import tqdm


class UserError(ValueError):
    """A mistake the user can fix: a bad option, a bad or missing file, an unreachable host. `run_main`
    prints it as one line; every other exception is a bug and keeps its traceback.

    (It derives from ValueError so that callers which catch ValueError around a parse keep working.)"""


class DataError(UserError):
    """Bad or missing input data; the message names the file."""


def parse_image_shape(image_shape: str | Sequence[int]) -> tuple[int, int, int]:
    """`--image-shape` as given ('3,224,224' or '(3, 224, 224)') or a sequence -> (channels, height, width),
    with 1 or 3 channels (what decoding gives) and positive sizes."""
    try:
        values = image_shape.strip("()[] ").split(",") if isinstance(image_shape, str) else image_shape
        shape = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) <= 0:
        raise DataError(f"--image-shape '{image_shape}': expected channels,height,width with 1 or 3 channels")
    return shape


class _TqdmHandler(logging.Handler):
    """Writes log lines above a live progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(rank: int, log_file: str | None = None) -> None:
    """MXNet's log line prefix (`time Node[rank] message`), to stderr and optionally a file."""
    fmt = logging.Formatter(f"%(asctime)-15s Node[{rank}] %(message)s")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_cli_handler", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [_TqdmHandler()]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler._cli_handler = True
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.INFO)


class PresetAction(argparse.Action):
    """An option whose value sets the defaults of other options (`--data-aug-level 2`): `settings(value)`
    gives those defaults. Options given explicitly win, wherever they stand on the command line; see
    `ArgumentParser.parse_known_args`."""

    def __init__(self, option_strings, dest, settings: Callable[[object], dict], **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.settings = settings

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with presets (`PresetAction`) and `--help` that shows the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        """Parse twice: first to read the presets given, then with their settings standing in for the
        defaults, so that the result does not depend on the order of the options."""
        presets = [a for a in self._actions if isinstance(a, PresetAction)]
        if not presets:
            return super().parse_known_args(args, namespace)
        args = sys.argv[1:] if args is None else list(args)
        given = vars(namespace) if namespace is not None else {}
        first, _ = super().parse_known_args(args, argparse.Namespace(**given))
        preset_values: dict = {}
        for action in presets:
            value = getattr(first, action.dest, None)
            if value is not None:
                preset_values.update(action.settings(value))
        # argparse fills in a default only where the namespace has no value yet; given options still win
        parsed, extras = super().parse_known_args(args, argparse.Namespace(**{**preset_values, **given}))
        # the attributes in the order a plain parse gives them (the order of the options), as they are logged
        values = vars(parsed)
        order = [a.dest for a in self._actions if a.dest in values]
        return argparse.Namespace(**{k: values[k] for k in [*order, *values]}), extras


def run_main(main: Callable[[], object]) -> None:
    """Run a script's main(): a UserError (or an OS error about a file) prints one line and exits 2,
    Ctrl-C exits 130; anything else is a bug and shows its traceback. IMAGECLS_DEBUG=1 shows the traceback
    of user errors too."""
    prog = os.path.basename(sys.argv[0])
    try:
        main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except (UserError, OSError) as e:
        if os.environ.get("IMAGECLS_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        if getattr(e, "leave_at_once", False):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)  # skips the interpreter's teardown, which can wait forever (see DistTimeoutError)
        sys.exit(2)
