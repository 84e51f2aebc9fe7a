"""Checkpoints: `prefix-symbol.json`, `prefix-NNNN.params` and `prefix-NNNN.states` (docs/formats.md section 6).

- `-symbol.json`: what rebuilds the network (its `--network` name and keyword arguments).
- `-NNNN.params`: the weights in MXNet's NDArray list format, named as MXNet names them
  (`arg:stage1_unit1_conv1_weight`, `aux:bn_data_moving_mean`), so MXNet users recognise and can load them.
- `-synset.txt`: the class names, when the training data had them (line i names class i).
- `-NNNN.states`: what an exact resume needs besides the weights (optimizer, scaler, RNG, epoch), a torch
  file read with `torch.load(weights_only=True)`, with the sha256 of the `.params` bytes it belongs with.
Every file is written to a temporary name and renamed, so an interrupted save leaves the old files whole.
A checkpoint writes its `.states` before its `.params`: a save interrupted between the two leaves either no
new `.params` or a `.states` whose digest names other weights, and resuming from such a pair is an error.
With --ema-decay the weight average is a checkpoint of its own, `prefix-ema-symbol.json` and
`prefix-ema-NNNN.params`, written before the `.states`, which keeps its digest too.
A checkpoint written in the middle of an epoch (--checkpoint-interval, preemption) is the same set of files
named `prefix-NNNN-BBBBBB.*`: NNNN epochs and BBBBBB batches of the next one done.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from common import mxnet_params
from common.cli import UserError
from common.download import file_digest
from common.labels import class_names_text

SYMBOL_FORMAT = "image-classification-torch/1"
PARAMS_DIGEST = "params_sha256"  # the .states key holding the sha256 (hex) of its .params file's bytes
EMA_DIGEST = "ema_params_sha256"  # ... and of the weight average's .params

_BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_var"}
_SKIPPED_BUFFERS = {"num_batches_tracked"}


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def mxnet_names(model: nn.Module) -> dict[str, str]:
    """Map each tensor of `model.state_dict()` to its MXNet name (`arg:...` for parameters, `aux:...` for
    running statistics). Module paths join with '_': `stage1_unit1.bn1.weight` -> `arg:stage1_unit1_bn1_gamma`."""
    saved = set(model.state_dict().keys())  # leaves out non-persistent buffers
    names = {}
    for path, module in model.named_modules():
        layer = path.replace(".", "_")
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for kind, tensors in (("arg", module.named_parameters(recurse=False)),
                              ("aux", module.named_buffers(recurse=False))):
            for name, _ in tensors:
                torch_name = f"{path}.{name}" if path else name
                if name in _SKIPPED_BUFFERS or torch_name not in saved:
                    continue
                suffix = _BN_NAMES.get(name, name) if is_bn else name
                names[torch_name] = f"{kind}:{layer}_{suffix}" if layer else f"{kind}:{suffix}"
    return names


def to_mxnet_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's weights as {MXNet name: float32/float16 array}, in MXNet's naming."""
    state = model.state_dict()
    return {mx: state[pt].detach().cpu().float().numpy() if state[pt].is_floating_point()
            else state[pt].detach().cpu().numpy() for pt, mx in mxnet_names(model).items()}


def load_mxnet_arrays(model: nn.Module, arrays: dict[str, np.ndarray], source: str) -> None:
    """Copy `arrays` (MXNet names) into `model`. Every missing, unexpected or mis-shaped tensor is listed
    by name in one CheckpointError. Names without an `arg:`/`aux:` prefix are accepted too."""
    names = mxnet_names(model)
    bare = {k.split(":", 1)[-1]: v for k, v in arrays.items()}
    state = model.state_dict()
    wanted = {mx.split(":", 1)[1]: pt for pt, mx in names.items()}
    missing = sorted(set(wanted) - set(bare))
    extra = sorted(set(bare) - set(wanted))
    misshaped = [f"{k} {tuple(bare[k].shape)} (network wants {tuple(state[wanted[k]].shape)})"
                 for k in sorted(set(wanted) & set(bare)) if tuple(bare[k].shape) != tuple(state[wanted[k]].shape)]
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if extra:
        problems.append("unexpected: " + ", ".join(extra))
    if misshaped:
        problems.append("wrong shape: " + ", ".join(misshaped))
    if problems:
        raise CheckpointError(f"{source} does not fit the network; " + "; ".join(problems))
    with torch.no_grad():
        for mx_name, pt_name in wanted.items():
            state[pt_name].copy_(torch.from_numpy(np.asarray(bare[mx_name])).to(state[pt_name].dtype))


def atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Call `write(binary_file)` on a temporary file beside `path`, then rename it over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Position(NamedTuple):
    """Where a checkpoint stands: `epoch` epochs done, and `batch` batches of the next (0: an epoch's end)."""
    epoch: int
    batch: int = 0

    def __str__(self) -> str:
        return f"epoch {self.epoch}" + (f", batch {self.batch}" if self.batch else "")


def _name(prefix: str, epoch: int, batch: int) -> str:
    return f"{prefix}-{epoch:04d}" + (f"-{batch:06d}" if batch else "")


def params_path(prefix: str, epoch: int, batch: int = 0) -> str:
    return _name(prefix, epoch, batch) + ".params"


def states_path(prefix: str, epoch: int, batch: int = 0) -> str:
    return _name(prefix, epoch, batch) + ".states"


def saved_positions(prefix: str) -> list[Position]:
    """The positions of the checkpoints under `prefix` whose .params and .states both exist, newest first.
    (Whether the two belong together is `load_states`'s check.)"""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"-(\d{4,})(?:-(\d{6,}))?\.states")
    positions = []
    for path in glob.glob(glob.escape(prefix) + "-*.states"):
        if (match := pattern.fullmatch(os.path.basename(path))) is not None:
            position = Position(int(match[1]), int(match[2] or 0))
            if os.path.exists(params_path(prefix, *position)):
                positions.append(position)
    return sorted(positions, reverse=True)


def remove_checkpoint(prefix: str, position: Position) -> None:
    """Delete the files of the checkpoint at `position` (its weight average's too), those that exist."""
    for path in (params_path(prefix, *position), states_path(prefix, *position),
                 params_path(ema_prefix(prefix), *position)):
        if os.path.exists(path):
            os.unlink(path)


def ema_prefix(prefix: str) -> str:
    """Where the weight average of a run saving to `prefix` goes: a checkpoint prefix of its own."""
    return f"{prefix}-ema"


def symbol_path(prefix: str) -> str:
    return f"{prefix}-symbol.json"


def save_symbol(prefix: str, network: str, kwargs: dict[str, Any]) -> None:
    doc = {"format": SYMBOL_FORMAT, "network": network, "kwargs": kwargs}
    atomic_write(symbol_path(prefix), lambda f: f.write(json.dumps(doc, indent=2, sort_keys=True).encode()))


def class_names_path(prefix: str) -> str:
    return f"{prefix}-synset.txt"


def save_class_names(prefix: str, names: list[str]) -> None:
    """`PREFIX-synset.txt`: the class names, line i naming class i, as score.py reads them."""
    atomic_write(class_names_path(prefix), lambda f: f.write(class_names_text(names).encode()))


def read_symbol_file(prefix: str) -> Any:
    """The parsed JSON of `prefix-symbol.json`, ours or an MXNet graph (parsed as data, never executed)."""
    path = symbol_path(prefix)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def load_symbol(prefix: str) -> dict[str, Any]:
    """Read our `-symbol.json` ({"network", "kwargs"}). MXNet graphs (with "nodes") are the importer's."""
    path = symbol_path(prefix)
    doc = read_symbol_file(prefix)
    if not isinstance(doc, dict) or doc.get("format") != SYMBOL_FORMAT:
        raise CheckpointError(f"{path} was not written by this suite (no '{SYMBOL_FORMAT}' format tag)")
    return doc


def save_params(prefix: str, epoch: int, model: nn.Module, data: bytes | None = None, batch: int = 0) -> str:
    """Write the weights alone as `prefix-NNNN.params` (training writes them with `save_checkpoint`);
    `data` is their bytes when already made."""
    path = params_path(prefix, epoch, batch)
    data = mxnet_params.dumps(to_mxnet_arrays(model)) if data is None else data
    atomic_write(path, lambda f: f.write(data))
    return path


def save_checkpoint(prefix: str, epoch: int, model: nn.Module, states: dict[str, Any],
                    average: nn.Module | None = None, batch: int = 0) -> str:
    """Write the weight average `average` if given (`prefix-ema-NNNN.params`), then `prefix-NNNN.states`
    (`states` plus the sha256 of the weights' bytes and of the average's), then `prefix-NNNN.params`; return
    the .params path. In this order an interrupted save never leaves a `.params` without the `.states`
    written for it, and a `.states` left beside older weights names other bytes than theirs, which
    `load_states` and `load_params` report."""
    digests = {}
    if average is not None:
        average_data = mxnet_params.dumps(to_mxnet_arrays(average))
        save_params(ema_prefix(prefix), epoch, average, average_data, batch)
        digests[EMA_DIGEST] = hashlib.sha256(average_data).hexdigest()
    data = mxnet_params.dumps(to_mxnet_arrays(model))
    save_states(prefix, epoch, {**states, **digests, PARAMS_DIGEST: hashlib.sha256(data).hexdigest()}, batch)
    return save_params(prefix, epoch, model, data, batch)


def read_params(path: str) -> dict[str, np.ndarray]:
    """The arrays of a .params file by name; CheckpointError when it is missing, ParamsFormatError when it
    is malformed."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path} not found")
    return mxnet_params.load(path)


def load_params(model: nn.Module, prefix: str, epoch: int, sha256: str | None = None, batch: int = 0) -> None:
    """Load `prefix-NNNN.params` into `model`; with `sha256`, only if the file's bytes have that digest."""
    path = params_path(prefix, epoch, batch)
    if sha256 is not None and os.path.exists(path) and file_digest(path) != sha256:
        raise CheckpointError(f"{path} is not the file its checkpoint was saved with (a save interrupted "
                              "between the files?): resume from another epoch")
    load_mxnet_arrays(model, read_params(path), path)


def save_states(prefix: str, epoch: int, states: dict[str, Any], batch: int = 0) -> None:
    atomic_write(states_path(prefix, epoch, batch), lambda f: torch.save(states, f))


def load_states(prefix: str, epoch: int, batch: int = 0) -> dict[str, Any]:
    """The training state saved with `prefix-NNNN.params`. CheckpointError when it is missing, unreadable,
    or written for other weights than that .params holds (a save interrupted between the two files).
    A .states without a digest (written before the suite stored one) is taken as it is."""
    path = states_path(prefix, epoch, batch)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} not found: without it training cannot resume exactly")
    try:
        states = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise CheckpointError(f"{path} cannot be read: {e}") from None
    if not isinstance(states, dict):
        raise CheckpointError(f"{path} is not a training state (a dict), but {type(states).__name__}")
    expected = states.get(PARAMS_DIGEST)
    if expected is not None:
        params = params_path(prefix, epoch, batch)
        if not os.path.exists(params):
            raise CheckpointError(f"{params} not found (its {os.path.basename(path)} is there: a save "
                                  "interrupted before the weights were written?)")
        if file_digest(params) != expected:
            raise CheckpointError(
                f"{path} was saved with other weights than {params} holds (a save interrupted between "
                f"the two files?): resume from another epoch, or delete {os.path.basename(path)} to "
                "continue from these weights with a fresh optimizer")
    return states
