"""Training: the training options, initialisation, optimizer, learning-rate schedule, the one training
loop, and its checkpoints and resume.

`train_*.py` scripts set defaults and pick a data loader, then call `fit(args, network, data_loader)`.
Log lines are MXNet's (docs/formats.md section 7), so tools that parse MXNet logs keep working.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from torch.nn.parallel import DistributedDataParallel

from common import checkpoint, dist
from common.cli import UserError, setup_logging
from common.data import Batches, LoaderFactory, Normalizer
from common.dist import DistInfo
from common.checkpoint import Position
from common.ema import WeightAverage
from common.interrupt import PREEMPTED_EXIT_CODE, Interruptions, Preempted
from common.labels import training_class_names
from common.metrics import Meter, classification_loss, evaluate, format_metrics, make_meter
from common.metrics_log import MetricsLog, tensorboard_available
from common.mixup import MixedBatch, batch_rng, mix
from symbols.layers import synchronize_batchnorm

log = logging.getLogger("fit")

OPTIMIZERS = ("sgd", "nag", "adam", "adamw", "rmsprop", "adagrad")
INITIALIZERS = ("default", "xavier", "msra", "normal", "uniform")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
KV_STORES = ("local", "device", "nccl", "dist_sync", "dist_device_sync", "dist_sync_device", "dist_async")


class FitError(UserError):
    """A user-facing training error (bad option, diverged loss); printed as one line."""


def add_fit_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """MXNet's training options with MXNet's defaults, plus --seed, --warmup-epochs and --log-file."""
    train = parser.add_argument_group("Training", "model, optimizer, schedule and checkpoints")
    train.add_argument("--network", type=str, help="the neural network to use (see symbols/)")
    train.add_argument("--num-layers", type=int,
                       help="number of layers in the neural network, required by some networks such as resnet")
    train.add_argument("--gpus", type=str, default="",
                       help="list of gpus to run, e.g. 0 or 0,2,5; empty means using the cpu")
    train.add_argument("--kv-store", type=str, default="device", choices=KV_STORES,
                       help="how gradients are combined: local/device/nccl on one machine, dist_* across machines")
    train.add_argument("--num-epochs", type=int, default=100, help="max num of epochs")
    train.add_argument("--lr", type=float, default=0.1, help="initial learning rate")
    train.add_argument("--lr-factor", type=float, default=0.1, help="the ratio to reduce lr on each step")
    train.add_argument("--lr-step-epochs", type=str,
                       help="the epochs to reduce the lr, e.g. 30,60; 'powN' for polynomial decay of power N to 0 "
                            "at the end of --num-epochs ('pow1': linear); 'cosine' for a half cosine from --lr "
                            "after the warm-up to 0 at the end of --num-epochs")
    train.add_argument("--warmup-epochs", type=int, default=0,
                       help="epochs over which the lr rises linearly from 0 to --lr (0: no warm-up)")
    train.add_argument("--initializer", type=str, default="default", choices=INITIALIZERS,
                       help="the initializer type (default: Xavier gaussian, factor in, magnitude 2)")
    train.add_argument("--optimizer", type=str, default="sgd", choices=OPTIMIZERS, help="the optimizer type")
    train.add_argument("--mom", type=float, default=0.9, help="momentum for sgd and nag")
    train.add_argument("--wd", type=float, default=0.0001,
                       help="weight decay for sgd (applied to weights and gammas, as MXNet does)")
    train.add_argument("--batch-size", type=int, default=128, help="the batch size, over all devices")
    train.add_argument("--disp-batches", type=int, default=20, help="show progress for every n batches")
    train.add_argument("--model-prefix", type=str, help="model prefix: checkpoints go to PREFIX-NNNN.params")
    train.add_argument("--save-period", type=int, default=1, help="save a checkpoint every n epochs")
    train.add_argument("--load-epoch", type=int,
                       help="resume from PREFIX-NNNN.params (and .states) saved after this epoch")
    train.add_argument("--resume", action="store_true",
                       help="continue from the newest checkpoint under --model-prefix (an epoch's or a mid-epoch "
                            "one), or start from the beginning (or --load-epoch) when there is none")
    train.add_argument("--checkpoint-interval", type=float, default=0, metavar="MINUTES",
                       help="also checkpoint in the middle of an epoch every this many minutes, e.g. 10 (0: off); "
                            "PREFIX-NNNN-BBBBBB.* files, removed once the epoch's own checkpoint is written")
    train.add_argument("--keep-checkpoints", type=int, default=0, metavar="K",
                       help="keep only the last K epoch checkpoints (0: all, as MXNet)")
    train.add_argument("--dist-timeout", type=float, default=300, metavar="SECONDS",
                       help="with several processes: how long a collective waits for the others before the run "
                            "stops with an error naming it (a process that hangs)")
    train.add_argument("--top-k", type=int, default=0, help="report the top-k accuracy; 0 means no report")
    train.add_argument("--loss", type=str, default="", choices=("", "ce", "nll_loss"),
                       help="also report the loss: ce (cross-entropy) or nll_loss")
    train.add_argument("--test-io", type=int, default=0, help="1 means test reading speed without training")
    train.add_argument("--dtype", type=str, default="float32", choices=tuple(DTYPES),
                       help="precision: float16/bfloat16 run under autocast with float32 master weights; on a GPU, "
                            "float32 convolutions and matmuls run in TF32")
    train.add_argument("--compile", type=int, default=0, help="1 compiles the network with torch.compile")
    train.add_argument("--seed", type=int, default=0, help="random seed: same seed, same run")
    train.add_argument("--log-file", type=str, help="also append the log lines to this file")
    train.add_argument("--log-dir", type=str,
                       help="write metrics.jsonl here (with --model-prefix it goes to PREFIX-metrics.jsonl)")
    train.add_argument("--tensorboard", type=str, metavar="DIR",
                       help="also write TensorBoard scalars to DIR (needs the tensorboard package)")
    recipe = parser.add_argument_group("Recipe", "regularisation and averaging of modern recipes, all off by "
                                       "default (MXNet has none; the names are timm's)")
    recipe.add_argument("--label-smoothing", type=float, default=0.0,
                        help="train towards 1 - E on the label and E spread over all classes (0: off)")
    recipe.add_argument("--mixup", type=float, default=0.0,
                        help="mixup alpha: blend each batch with itself reversed, ratio ~ Beta(A, A) (0: off)")
    recipe.add_argument("--cutmix", type=float, default=0.0,
                        help="CutMix alpha: paste a box of the reversed batch, area ~ Beta(A, A) (0: off); "
                             "with --mixup too, each batch takes one of the two at random")
    recipe.add_argument("--mixup-off-epochs", type=int, default=0,
                        help="train the last K epochs without mixup and CutMix")
    recipe.add_argument("--ema-decay", type=float, default=0.0,
                        help="keep an exponential moving average of the weights with this decay per step, e.g. "
                             "0.999; validated as Validation-ema-*, saved as PREFIX-ema-NNNN.params (0: off)")
    recipe.add_argument("--sync-bn", type=int, default=0,
                        help="1: BatchNorm statistics over the batch of all processes, not each process's share")
    return train


# --- set-up ----------------------------------------------------------------------------------------------

def check_args(args: argparse.Namespace) -> None:
    if args.batch_size is None or args.batch_size <= 0:
        raise FitError(f"--batch-size must be positive, got {args.batch_size}")
    if args.num_epochs < 0:
        raise FitError(f"--num-epochs must be >= 0, got {args.num_epochs}")
    if args.disp_batches <= 0:
        raise FitError(f"--disp-batches must be positive, got {args.disp_batches}")
    for option, given in (("--load-epoch", args.load_epoch is not None), ("--resume", args.resume),
                          ("--checkpoint-interval", args.checkpoint_interval), ("--keep-checkpoints", args.keep_checkpoints)):
        if given and not args.model_prefix:
            raise FitError(f"{option} needs --model-prefix, where the checkpoints are")
    if args.checkpoint_interval < 0 or args.keep_checkpoints < 0:
        raise FitError("--checkpoint-interval and --keep-checkpoints must be >= 0")
    if args.tensorboard and not tensorboard_available():
        raise FitError("--tensorboard needs the tensorboard package: pip install tensorboard")
    if args.kv_store == "dist_async":
        raise FitError("--kv-store dist_async is not supported: training is synchronous "
                       "(use dist_sync or dist_device_sync)")
    if args.lr_step_epochs and args.lr_step_epochs != "cosine" and not args.lr_step_epochs.startswith("pow"):
        try:
            [int(e) for e in args.lr_step_epochs.split(",")]
        except ValueError:
            raise FitError(f"--lr-step-epochs '{args.lr_step_epochs}' must be epochs like 30,60, "
                           "cosine or pow2") from None
    if not 0 <= args.label_smoothing < 1:
        raise FitError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if not 0 <= args.ema_decay < 1:
        raise FitError(f"--ema-decay must be in [0, 1), got {args.ema_decay}")
    for option in ("mixup", "cutmix", "mixup_off_epochs"):
        if getattr(args, option) < 0:
            raise FitError(f"--{option.replace('_', '-')} must be >= 0, got {getattr(args, option)}")
    if label_width(args) < 1:
        raise FitError(f"--label-width must be at least 1, got {args.label_width}")
    if label_width(args) > 1:
        for option, value in (("--mixup", args.mixup), ("--cutmix", args.cutmix),
                              ("--label-smoothing", args.label_smoothing), ("--top-k", args.top_k)):
            if value:
                raise FitError(f"{option} is for one label per image; multi-label training (--label-width "
                               f"{args.label_width}) does not support it")


@torch.no_grad()
def initialize(model: nn.Module, name: str, network: str | None = None) -> None:
    """MXNet's initializers, applied by MXNet parameter name: weights get `name`'s distribution, biases and
    betas 0, gammas 1, moving means 0, moving variances 1. 'default' is Xavier gaussian (factor in,
    magnitude 2), except Normal for alexnet and Xavier for vgg, as MXNet's fit.py chooses."""
    if name == "default":
        name = {"alexnet": "normal", "vgg": "xavier"}.get(network or "", "default")
    state = model.state_dict()
    for torch_name, mx_name in checkpoint.mxnet_names(model).items():
        t = state[torch_name]
        if mx_name.endswith(("_bias", "_beta", "_moving_mean")):
            t.zero_()
        elif mx_name.endswith(("_gamma", "_moving_var")):
            t.fill_(1.0)
        elif mx_name.endswith("_weight"):
            _init_weight(t, name)


def _init_weight(t: torch.Tensor, name: str) -> None:
    if name == "normal":
        t.normal_(0, 0.01)
        return
    if name == "uniform":
        t.uniform_(-0.07, 0.07)
        return
    receptive = math.prod(t.shape[2:]) if t.dim() > 2 else 1
    fan_in = t.shape[1] * receptive if t.dim() > 1 else t.shape[0]
    fan_out = t.shape[0] * receptive
    # (distribution, factor, magnitude) of mx.init.Xavier variants
    gaussian, factor, magnitude = {
        "default": (True, fan_in, 2.0),
        "xavier": (False, (fan_in + fan_out) / 2, 3.0),
        "msra": (True, (fan_in + fan_out) / 2, 2.0 / (1 + 0.25 ** 2)),
    }[name]
    scale = math.sqrt(magnitude / factor)
    t.normal_(0, scale) if gaussian else t.uniform_(-scale, scale)


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """MXNet applies weight decay to `_weight` and `_gamma` tensors only, not to biases and betas."""
    names = checkpoint.mxnet_names(model)
    params = dict(model.named_parameters())
    decay = [p for n, p in params.items() if p.requires_grad and names[n].endswith(("_weight", "_gamma"))]
    no_decay = [p for n, p in params.items() if p.requires_grad and not names[n].endswith(("_weight", "_gamma"))]
    groups = [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
    opt, lr = args.optimizer, args.lr
    if opt in ("sgd", "nag"):  # fused: one kernel for all tensors, on the CPU as on GPUs
        return torch.optim.SGD(groups, lr=lr, momentum=args.mom, nesterov=opt == "nag" and args.mom > 0, fused=True)
    if opt == "adam":
        return torch.optim.Adam(groups, lr=lr, fused=True)
    if opt == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    if opt == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=1e-8)  # MXNet's gamma1=0.9
    return torch.optim.Adagrad(groups, lr=lr, eps=1e-7)


def learning_rate(args: argparse.Namespace, step: int, steps_per_epoch: int) -> float:
    """The lr of update number `step` (0-based): optional linear warm-up, then MXNet's multi-factor steps
    at the epochs of --lr-step-epochs, or polynomial decay for 'powN'. A pure function of the step, so a
    resumed run continues the same schedule. 'cosine' falls from --lr after the warm-up to 0 at the end."""
    total = max(1, args.num_epochs * steps_per_epoch)
    warmup = args.warmup_epochs * steps_per_epoch
    if step < warmup:
        return args.lr * (step + 1) / warmup
    spec = args.lr_step_epochs or ""
    if spec == "cosine":
        progress = min(step - warmup, total - warmup) / max(1, total - warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if spec.startswith("pow"):
        power = float(spec[3:].lstrip("- ") or 2)
        return args.lr * (1 - min(step, total) / total) ** power
    if args.lr_factor >= 1 or not spec:
        return args.lr
    passed = sum(step >= int(e) * steps_per_epoch for e in spec.split(","))
    return args.lr * args.lr_factor ** passed


# --- the loop --------------------------------------------------------------------------------------------

@dataclass
class Training:
    """What the loop works with, built once by `_train`."""
    args: argparse.Namespace
    model: nn.Module  # what runs: possibly compiled and wrapped in DistributedDataParallel
    network: nn.Module  # the network itself, whose weights are saved
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], ContextManager]
    normalize: Normalizer
    info: DistInfo
    metrics: MetricsLog
    steps_per_epoch: int
    interruptions: Interruptions
    global_step: int = 0
    ema: WeightAverage | None = None

    def mixing(self, epoch: int) -> bool:
        """Whether batches of `epoch` are mixed (--mixup/--cutmix, until the last --mixup-off-epochs)."""
        args = self.args
        return (args.mixup > 0 or args.cutmix > 0) and epoch < args.num_epochs - args.mixup_off_epochs


def train_one_epoch(t: Training, epoch: int, loader: Batches, start: int = 0, meter: Meter | None = None) -> Meter:
    """One pass over `loader` (from batch `start`, with `meter` holding the batches before it, when resuming
    in the middle of the epoch); logs MXNet's Speedometer lines every --disp-batches; checkpoints and stops
    when `t.interruptions` says so (raising Preempted to stop); returns the epoch's meter. Advances
    `t.global_step`."""
    args, info = t.args, t.info
    meter = meter or make_meter(label_width(args), args.top_k, info)
    last_line = (start - 1) // args.disp_batches * args.disp_batches  # the Speedometer line before `start`
    window_start, epoch_start = last_line + 1 if last_line > 0 else 0, time.time()
    t.model.train()
    loader.set_epoch(epoch, start)
    mixing = t.mixing(epoch)
    bar = tqdm(total=len(loader), initial=start, desc=f"Epoch {epoch}", leave=False,
               disable=None if info.is_primary else True)
    for nbatch, (images, labels) in enumerate(loader, start):
        images = t.normalize(images)
        labels = labels.to(info.device, non_blocking=True)
        mixed = mix(images, labels, args.mixup, args.cutmix, batch_rng(args.seed, t.global_step, info.rank)) \
            if mixing else None
        lr = learning_rate(args, t.global_step, t.steps_per_epoch)
        for group in t.optimizer.param_groups:
            group["lr"] = lr
        with t.autocast():
            logits = t.model(images if mixed is None else mixed.images)
            loss = training_loss(logits.float(), labels, mixed, args.label_smoothing)
        t.optimizer.zero_grad(set_to_none=True)
        with dist.collective("the gradient all-reduce", info):  # DDP's, during backward
            t.scaler.scale(loss).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
        t.global_step += 1
        if t.ema is not None:
            t.ema.update()
        meter.update(logits, labels if mixed is None else mixed.dominant_labels, loss)
        bar.update(1)
        if nbatch == start:
            tic, tic_batch = time.time(), nbatch  # as MXNet's Speedometer, time from the end of the first batch
        if nbatch % args.disp_batches == 0 and nbatch > 0:
            _check_finite(meter, epoch, window_start)
            speed = (nbatch - tic_batch) * args.batch_size / (time.time() - tic)
            window = meter.close_window(args.loss)
            log.info("Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\t%s", epoch, nbatch - args.disp_batches,
                     nbatch, speed, format_metrics(window))
            t.metrics.log_batch(epoch, nbatch, speed, lr, dict(window), time.time() - epoch_start)
            bar.set_postfix_str(f"{speed:.0f} samples/sec")
            window_start = nbatch + 1
            tic, tic_batch = time.time(), nbatch
        checkpoint_now, stop = t.interruptions.poll(nbatch + 1)
        if checkpoint_now and (stop or nbatch + 1 < len(loader)):  # at the end, the epoch's own comes next
            save(t, Position(epoch, nbatch + 1), meter)
        if stop:
            raise Preempted
    _check_finite(meter, epoch, window_start)
    bar.close()
    return meter


def training_loss(logits: torch.Tensor, labels: torch.Tensor, mixed: MixedBatch | None,
                  label_smoothing: float) -> torch.Tensor:
    """The loss against the labels (`classification_loss`), or the cross-entropy against the mixed batch's
    blended targets."""
    if mixed is None:
        return classification_loss(logits, labels, label_smoothing)
    return F.cross_entropy(logits, mixed.targets(logits.shape[1], label_smoothing))


def label_width(args: argparse.Namespace) -> int:
    """--label-width; 1 for scripts without it (MNIST)."""
    return getattr(args, "label_width", 1)


def _check_finite(meter: Meter, epoch: int, window_start: int) -> None:
    """Stop on a NaN or infinite loss in the meter's current window, naming the batch."""
    if (bad := meter.first_nonfinite()) >= 0:
        raise FitError(f"the loss became NaN or infinite at epoch {epoch}, batch {window_start + bad}; "
                       "try a lower --lr or check the input data")


def test_io(args: argparse.Namespace, loader: Batches, info: DistInfo) -> None:
    """--test-io 1: read the training data only and log the reading speed (MXNet's format)."""
    loader.set_epoch(0)
    tic = time.time()
    for nbatch, (images, labels) in enumerate(loader):
        images.to(info.device, non_blocking=True)
        if (nbatch + 1) % args.disp_batches == 0:  # MXNet's numbering: "Batch [19]" after 20 batches
            log.info("Batch [%d]\tSpeed: %.2f samples/sec", nbatch, args.disp_batches * args.batch_size / (time.time() - tic))
            tic = time.time()


def fit(args: argparse.Namespace, network: nn.Module, data_loader: LoaderFactory,
        initialized: bool = False) -> dict[str, float]:
    """Train `network` with the data of `data_loader(args, info) -> (train, val or None)`, in every process
    `--gpus` and the environment ask for (see common/dist.py). `initialized=True` keeps the weights the
    network holds (pre-trained ones, for fine-tuning) instead of applying --initializer. Returns rank 0's
    last-epoch metrics ({'accuracy': ..., 'validation-accuracy': ...})."""
    check_args(args)
    return dist.run(args.gpus, args.kv_store, args.batch_size, _TrainingRun(args, network, data_loader, initialized),
                    timeout=args.dist_timeout)


@dataclass
class _TrainingRun:
    """What each training process runs (a picklable callable, for the processes started per GPU)."""
    args: argparse.Namespace
    network: nn.Module
    data_loader: LoaderFactory
    initialized: bool = False

    def __call__(self, info: DistInfo) -> dict[str, float]:
        return _train(self.args, self.network, self.data_loader, info, self.initialized)


def _train(args: argparse.Namespace, model: nn.Module, data_loader: LoaderFactory, info: DistInfo,
           initialized: bool) -> dict[str, float]:
    setup_logging(info.rank, args.log_file if info.is_primary else None)
    if not info.is_primary:
        logging.getLogger().setLevel(logging.WARNING)  # rank 0 logs for everyone
    log.info("start with arguments %s", args)
    torch.manual_seed(args.seed)  # the same initial weights in every process

    class_names = training_class_names(getattr(args, "class_names", None), getattr(args, "data_train", None),
                                       args.num_classes)
    train, val = data_loader(args, info)
    if args.test_io:
        test_io(args, train, info)
        return {}

    begin, states = resume(args, model)
    if begin == Position(0) and not initialized:
        initialize(model, args.initializer, args.network)
    if info.device.type == "cpu":
        # weights and gradients that decay into denormal floats slow CPU arithmetic several times over
        # (MNIST's MLP: 91,000 -> 53,000 samples/sec from its second epoch); flushing them to zero does not
        # change what the network learns
        torch.set_flush_denormal(True)
    model.to(info.device, memory_format=torch.channels_last)
    if args.sync_bn:
        if info.distributed:
            log.info("--sync-bn: %d BatchNorm layers use the statistics of all %d processes",
                     synchronize_batchnorm(model), info.world_size)
        else:
            log.info("--sync-bn: one process, its BatchNorm statistics are already the whole batch's")
    trained = torch.compile(model) if args.compile else model  # weights loaded, then compile, then DDP
    if info.distributed:
        trained = DistributedDataParallel(trained, device_ids=[info.device] if info.device.type == "cuda" else None)

    dtype = DTYPES[args.dtype]
    t = Training(
        args, trained, model, build_optimizer(args, model),
        scaler=torch.amp.GradScaler(info.device.type, enabled=dtype == torch.float16),
        autocast=(lambda: torch.autocast(info.device.type, dtype=dtype)) if dtype != torch.float32
        else contextlib.nullcontext,
        normalize=Normalizer(train.mean, train.std, info.device), info=info, metrics=MetricsLog(metrics_path(args) if info.is_primary else None,
                                      args.tensorboard if info.is_primary else None, len(train)),
        steps_per_epoch=len(train), interruptions=Interruptions(args.checkpoint_interval, info, args.disp_batches),
        global_step=begin.epoch * len(train), ema=WeightAverage(model, args.ema_decay) if args.ema_decay else None)
    if states is not None:
        t.optimizer.load_state_dict(states["optimizer"])
        t.scaler.load_state_dict(states["scaler"])
        _set_rng_state(states["rng"], info)
        t.global_step = states["global_step"]
    if t.ema is not None and begin != Position(0):
        restore_average(args, t.ema, begin, states)
    if args.model_prefix and info.is_primary:
        prefixes = [args.model_prefix] + ([checkpoint.ema_prefix(args.model_prefix)] if t.ema is not None else [])
        for prefix in prefixes:
            checkpoint.save_symbol(prefix, args.network, _json_args(args))
            if class_names is not None:
                checkpoint.save_class_names(prefix, class_names)

    results: dict[str, float] = {}
    with t.metrics, t.interruptions:
        for epoch in range(begin.epoch, args.num_epochs):
            tic = time.time()
            start, meter = 0, None
            if epoch == begin.epoch and begin.batch:  # resuming in the middle of this epoch
                start, meter = begin.batch, make_meter(label_width(args), args.top_k, info)
                meter.load_state_dict(states["meters"][info.rank])
            try:
                train_values = train_one_epoch(t, epoch, train, start, meter).total_values(args.loss)
            except Preempted:
                if not args.model_prefix:
                    log.warning("stopped without a checkpoint: there is no --model-prefix")
                log.info("stopped; exiting with code %d: the same command with --resume continues",
                         PREEMPTED_EXIT_CODE)
                raise SystemExit(PREEMPTED_EXIT_CODE) from None
            for name, value in train_values:
                log.info("Epoch[%d] Train-%s=%f", epoch, name, value)
            time_cost = time.time() - tic
            log.info("Epoch[%d] Time cost=%.3f", epoch, time_cost)
            if args.model_prefix and ((epoch + 1) % args.save_period == 0 or epoch + 1 == args.num_epochs):
                save(t, Position(epoch + 1))
            val_values = validate(t, t.model, val, epoch, "") + validate(t, t.ema and t.ema.module, val, epoch, "ema-")
            t.metrics.log_epoch(epoch, len(train) * args.batch_size / time_cost,
                                learning_rate(args, t.global_step - 1, t.steps_per_epoch),
                                dict(train_values), dict(val_values), time_cost)
            results = {**dict(train_values), **{f"validation-{k}": v for k, v in val_values}}
    return results


def validate(t: Training, model: nn.Module | None, val: Batches | None, epoch: int,
             prefix: str) -> list[tuple[str, float]]:
    """Evaluate `model` on `val` and log `Validation-<prefix><name>=value` lines; [] without either."""
    if model is None or val is None:
        return []
    values = evaluate(model, val, t.normalize, t.info, top_k=t.args.top_k, label_width=label_width(t.args),
                      autocast=t.autocast,
                      desc=f"Validation {prefix}{epoch}").total_values(t.args.loss)
    values = [(prefix + name, value) for name, value in values]
    for name, value in values:
        log.info("Epoch[%d] Validation-%s=%f", epoch, name, value)
    return values


def resume(args: argparse.Namespace, model: nn.Module) -> tuple[Position, dict | None]:
    """Where training starts, with the weights loaded into `model` and the training state saved with them:
    the newest complete checkpoint with --resume, else --load-epoch's, else the beginning (Position(0),
    None). (tools/launch.py --max-restarts appends --resume to a command that may hold --load-epoch.)"""
    if args.resume:
        for position in checkpoint.saved_positions(args.model_prefix):
            try:
                states = restore(args, model, position)
            except checkpoint.CheckpointError as e:  # a save interrupted between its files
                log.warning("--resume: skipping the checkpoint at %s: %s", position, e)
                continue
            log.info("--resume: continuing from %s", position)
            return position, states
        log.info("--resume: no checkpoint under %s yet, starting from the %s", args.model_prefix,
                 "--load-epoch" if args.load_epoch else "beginning")
    if args.load_epoch:
        return Position(args.load_epoch), restore(args, model, Position(args.load_epoch))
    return Position(0), None


def restore(args: argparse.Namespace, model: nn.Module, position: Position) -> dict | None:
    """Load the weights saved at `position`; return the training state saved with them, if there is one
    (CheckpointError when it was saved with other weights). The state is read first, so that a checkpoint
    that does not hold together leaves `model` untouched."""
    states_path = checkpoint.states_path(args.model_prefix, *position)
    states = checkpoint.load_states(args.model_prefix, *position) if os.path.exists(states_path) else None
    checkpoint.load_params(model, args.model_prefix, position.epoch, batch=position.batch)
    log.info("Loaded %s", checkpoint.params_path(args.model_prefix, *position))
    if states is None:
        log.warning("no optimizer state %s: continuing with a fresh optimizer", states_path)
    return states


def restore_average(args: argparse.Namespace, ema: WeightAverage, position: Position, states: dict | None) -> None:
    """Load the weight average saved with the checkpoint at `position`; without one (a run that had no
    --ema-decay), the average starts from the loaded weights."""
    prefix = checkpoint.ema_prefix(args.model_prefix)
    digest = (states or {}).get(checkpoint.EMA_DIGEST)
    if digest is None:
        log.warning("no weight average was saved at %s: it starts from the loaded weights", position)
        return
    checkpoint.load_params(ema.module, prefix, position.epoch, digest, position.batch)
    log.info("Loaded %s", checkpoint.params_path(prefix, *position))


def save(t: Training, position: Position, meter: Meter | None = None) -> None:
    """Checkpoint at `position` (and the weight average, with --ema-decay), from rank 0, once all processes
    are known to agree. A mid-epoch checkpoint (`position.batch` > 0) also holds every process's `meter`;
    it replaces the previous mid-epoch one, and an epoch's checkpoint replaces them all. Every process's
    RNG state is saved, so that each continues its own sequence."""
    with dist.collective("the checkpoint agreement", t.info):
        check_replicas_agree(t.network, t.info)
        states = {"epoch": position.epoch, "batch": position.batch, "global_step": t.global_step,
                  "optimizer": t.optimizer.state_dict(), "scaler": t.scaler.state_dict(),
                  "rng": dist.gather_objects(_rng_state(t.info), t.info)}
        if meter is not None:
            states["meters"] = dist.gather_objects(meter.state_dict(), t.info)
    t.interruptions.checkpointed()
    if not t.info.is_primary:
        return
    prefix = t.args.model_prefix
    path = checkpoint.save_checkpoint(prefix, position.epoch, t.network, states, t.ema and t.ema.module,
                                      position.batch)
    log.info('Saved checkpoint to "%s"', path)
    saved = checkpoint.saved_positions(prefix)
    for old in saved:
        if old.batch and old < position:
            checkpoint.remove_checkpoint(prefix, old)
    if not position.batch and t.args.keep_checkpoints:
        for old in [p for p in saved if not p.batch][t.args.keep_checkpoints:]:
            checkpoint.remove_checkpoint(prefix, old)


def _rng_state(info: DistInfo) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if info.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(info.device)
    return state


def _set_rng_state(saved: list[dict[str, torch.Tensor]] | torch.Tensor, info: DistInfo) -> None:
    """This process's RNG state from a checkpoint (one per process; older checkpoints hold rank 0's alone)."""
    if isinstance(saved, torch.Tensor):
        torch.set_rng_state(saved)
        return
    mine = saved[info.rank % len(saved)]
    torch.set_rng_state(mine["cpu"])
    if "cuda" in mine and info.device.type == "cuda":
        torch.cuda.set_rng_state(mine["cuda"], info.device)


def metrics_path(args: argparse.Namespace) -> str | None:
    """`PREFIX-metrics.jsonl` beside the checkpoints, else `LOG_DIR/metrics.jsonl`, else none."""
    if args.model_prefix:
        return f"{args.model_prefix}-metrics.jsonl"
    return os.path.join(args.log_dir, "metrics.jsonl") if args.log_dir else None


@torch.no_grad()
def check_replicas_agree(model: nn.Module, info: DistInfo) -> None:
    """Before saving, make sure every process holds the same weights (what DDP promises), so that the
    checkpoint rank 0 writes is everyone's."""
    if not info.distributed:
        return
    local = torch.stack([p.detach().double().sum() for p in model.parameters()])
    spread = dist.all_reduce_sum(torch.stack((local, local.square())), info)
    mean = spread[0] / info.world_size
    if not torch.allclose(spread[1] / info.world_size, mean.square(), rtol=1e-9, atol=1e-12):
        raise FitError("the processes hold different weights; the checkpoint would not be everyone's")


def _json_args(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}

