"""Score a trained model on a validation `.rec` file, as MXNet's score.py does; classify one image; or
export a model to ONNX.

    python score.py --model imagenet1k-resnet-50 --data-val data/val_256_q90.rec --gpus 0
    python score.py --model imagenet1k-inception-bn --rgb-mean 123.68,116.779,103.939 --data-val data/val.rec
    python score.py --model model/caltech --load-epoch 30 --data-val data/caltech256-val.rec   # a checkpoint
    python score.py --model imagenet1k-resnet-50 --image cat.jpg         # the 5 most likely classes
    python score.py --model imagenet1k-resnet-50 --export onnx           # writes model/imagenet1k-resnet-50.onnx
    python score.py --model model/caltech --load-epoch 30 --data-val data/caltech256-val.rec \
        --predictions val.csv --confusion-matrix confusion.png     # each image's top 5; what is taken for what
    python score.py --model model/mosaic --load-epoch 10 --data-val data/mosaic_val.rec --label-width 4  # mAP

`--model` is a model zoo name (downloaded into --model-dir) or the prefix of a checkpoint, MXNet's or ours.
Class names come from PREFIX-synset.txt (training writes it when its data had a synset.txt) or synset.txt
beside the checkpoint, or a zoo model's published synset; without them classes are shown as numbers.
Validation images get MXNet's centred crop: enlarged only if smaller than --image-shape, then the centred
height x width; pack them with `tools/im2rec.py --resize 256` (or 480) as MXNet's data/imagenet1k-val.sh does.
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from common import checkpoint, cli, data, dist, inference, metrics, modelzoo, plotting
from common.augment import crop_box, cut, decode, resize_to_cover
from common.cli import UserError
from common.dist import DistInfo
from common.labels import beside, read_class_names
from common.metrics import evaluate
from common.mxnet_import import load_model

log = logging.getLogger("score")
INCEPTION_MEAN = "123.68,116.779,103.939"
INFERENCE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def get_args_parser(add_help: bool = True) -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="score a model on a dataset", add_help=add_help)
    model = parser.add_argument_group("Model")
    model.add_argument("--model", type=str, required=True,
                       help=f"a model zoo name ({', '.join(modelzoo.MODELS)}) or a checkpoint prefix "
                            "(with --load-epoch)")
    model.add_argument("--load-epoch", type=int, help="with a checkpoint prefix: load PREFIX-NNNN.params")
    model.add_argument("--model-dir", type=str, default="model/", help="where zoo models are downloaded")
    model.add_argument("--network", type=str,
                       help="the network of an MXNet checkpoint, if its graph is not recognised (see symbols/)")
    model.add_argument("--num-layers", type=int, help="with --network: its number of layers")
    val = parser.add_argument_group("Data", "the validation images and how they are normalised")
    val.add_argument("--data-val", type=str, help="the validation data: a .rec file or a folder of them")
    val.add_argument("--rgb-mean", type=str, default="0,0,0",
                     help="mean subtracted per channel. MXNet's ResNets normalise their input themselves "
                          f"(bn_data) and take 0,0,0; inception models need --rgb-mean {INCEPTION_MEAN}")
    val.add_argument("--rgb-std", type=str, default="1,1,1", help="std divided per channel, after the mean")
    val.add_argument("--image-shape", type=str, default="3,224,224", help="channels,height,width fed to the model")
    val.add_argument("--batch-size", type=int, default=64, help="images per batch, over all devices")
    val.add_argument("--data-nthreads", type=int, default=None,
                     help="number of processes decoding images (default: 4 on the CPU; with --gpus, the cores "
                          "shared by the GPU processes, at most 12 each)")
    val.add_argument("--max-num-examples", type=int, help="score only the first n images")
    val.add_argument("--label-width", type=int, default=1,
                     help="labels per image: N > 1 scores multi-label records (class numbers padded with -1) "
                          "by mAP and top-1-in-set accuracy, as training with --label-width N does")
    out = parser.add_argument_group("Outputs", "besides the metrics")
    out.add_argument("--predictions", type=str, metavar="CSV",
                     help="write one line per scored image, in record order: its id (the .lst index), true "
                          "label(s), and the 5 most likely classes with their probabilities")
    out.add_argument("--confusion-matrix", type=str, metavar="PNG",
                     help="draw the confusion matrix (rows: true class, normalised; columns: predicted), and "
                          "write its counts to the same name with .csv; with more than "
                          f"{metrics.CONFUSION_PLOT_CLASSES} classes the plot shows the most confused ones")
    run = parser.add_argument_group("Running")
    run.add_argument("--dtype", type=str, default="float32", choices=tuple(INFERENCE_DTYPES),
                     help="the precision the network computes in")
    run.add_argument("--compile", type=int, default=0,
                     help="1 compiles the network (torch.compile, weights frozen): about 10%% faster batches on "
                          "the CPU after 10-30 s of compiling; worth it for long runs")
    run.add_argument("--gpus", type=str, default="0" if torch.cuda.is_available() else "",
                     help="GPUs to use, e.g. 0 or 0,1 (one process each); empty means the CPU. "
                          "Default: GPU 0 if there is one")
    other = parser.add_argument_group("Instead of scoring")
    other.add_argument("--image", type=str, help="print the 5 most likely classes of this image file")
    other.add_argument("--export", type=str, choices=("onnx",),
                       help="write the model as PREFIX.onnx (needs `pip install onnx onnxscript`)")
    return parser


def main(args: argparse.Namespace) -> dict[str, float]:
    cli.setup_logging(0)
    if args.batch_size <= 0:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    if args.max_num_examples is not None and args.max_num_examples <= 0:
        raise UserError(f"--max-num-examples must be positive, got {args.max_num_examples}")
    if not (args.data_val or args.image or args.export):
        raise UserError("give --data-val (a .rec file) to score, --image to classify one image, or --export")
    if args.label_width < 1:
        raise UserError(f"--label-width must be at least 1, got {args.label_width}")
    if args.confusion_matrix and args.label_width > 1:
        raise UserError("--confusion-matrix is for one label per image; multi-label scoring reports mAP")
    for option, path in (("--predictions", args.predictions), ("--confusion-matrix", args.confusion_matrix)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UserError(f"{option} {path}: its folder does not exist")
    shape = cli.parse_image_shape(args.image_shape)
    prefix, epoch = modelzoo.resolve(args.model, args.load_epoch, args.model_dir)
    model, info = load_model(prefix, epoch, args.network, args.num_layers)
    model.eval()
    if args.export:
        return export_onnx(model, shape, prefix + ".onnx")
    mean, std = data.channel_mean_std(args, shape[0])
    if not info.normalises_input and not any(mean):
        log.warning("%s has no input BatchNorm: it was probably trained on mean-subtracted images "
                    "(inception models need --rgb-mean %s)", args.model, INCEPTION_MEAN)
    shows_names = args.image or args.predictions or args.confusion_matrix
    names = class_names(args, prefix, info.num_classes) if shows_names else [str(i) for i in range(info.num_classes)]
    if args.image:
        return predict(args.image, model, shape, mean, std, names, args.label_width > 1)
    return dist.run(args.gpus, "device", args.batch_size, Scoring(args, model, names, shape, mean, std))


@dataclass
class Scoring:
    """What each scoring process runs: its shard of the validation records through the model."""
    args: argparse.Namespace
    model: nn.Module
    names: list[str]  # one per class: its name, or its number when the names are unknown
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, info: DistInfo) -> dict[str, float]:
        args = self.args
        cli.setup_logging(info.rank)
        batch = data.rank_batch_size(args.batch_size, info)
        num_classes = len(self.names)
        loader = data.validation_batches(args.data_val, self.shape, batch, info,
                                         mean=self.mean, std=self.std,
                                         num_workers=dist.data_threads(args.data_nthreads, args.gpus),
                                         num_classes=num_classes, limit=args.max_num_examples,
                                         label_width=args.label_width)
        model = inference.prepare(self.model, info.device, INFERENCE_DTYPES[args.dtype], self.shape,
                                  compile=bool(args.compile))
        normalize = data.Normalizer(self.mean, self.std, info.device)
        outputs = Outputs(num_classes, args.label_width > 1, bool(args.predictions), bool(args.confusion_matrix),
                          info.device)
        tic = time.time()
        meter = evaluate(model, loader, normalize, info, top_k=min(5, num_classes), label_width=args.label_width,
                         desc="score", observe=outputs if outputs.wanted() else None)
        values = meter.total_values("")  # synchronises the device, so the time below is complete
        elapsed = time.time() - tic
        total = int(dist.all_reduce_sum(torch.tensor([meter.total_count], device=info.device), info).item())
        speed = total / elapsed
        if info.is_primary:
            log.info("Finished with %f images per second", speed)
            for pair in values:
                log.info("%s", pair)
        if args.predictions:
            outputs.write_predictions(args.predictions, self.names, info)
        if args.confusion_matrix:
            outputs.write_confusion_matrix(args.confusion_matrix, self.names, info)
        return {**dict(values), "images_per_sec": speed, "num_images": total}


class Outputs:
    """What scoring writes besides its metrics, collected batch by batch (a `metrics.BatchObserver`): each
    image's 5 most likely classes, and the confusion matrix. Every process collects its own images; the
    files are written by rank 0 with everyone's."""

    def __init__(self, num_classes: int, multi_label: bool, predictions: bool, confusion: bool,
                 device: torch.device):
        self.multi_label, self.predictions, self.confusion = multi_label, predictions, confusion
        self.top_k = min(5, num_classes)
        self.rows: list[tuple[torch.Tensor, ...]] = []  # (positions, ids, labels, top classes, probabilities)
        self.counts = metrics.ConfusionCounts(num_classes, device) if confusion else None

    def wanted(self) -> bool:
        return self.predictions or self.confusion

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, keys: data.RecordKeys) -> None:
        if self.counts is not None:
            self.counts.update(logits.argmax(1), labels)
        if self.predictions:
            top = metrics.class_probabilities(logits, self.multi_label).topk(self.top_k, dim=1)
            self.rows.append((keys.positions, keys.ids, labels.cpu(), top.indices.cpu(), top.values.cpu()))

    def write_predictions(self, path: str, names: list[str], info: DistInfo) -> None:
        """`path`: a CSV line per image in record order: id, label(s), then class_1, probability_1 ... for the
        5 most likely classes (a multi-label image's labels joined by '|'; probabilities are the sigmoids)."""
        with dist.collective("the predictions gather", info):
            everyone = dist.gather_concatenated([list(column) for column in zip(*self.rows)], info)
        if not info.is_primary:
            return
        positions, ids, labels, classes, probabilities = everyone or [torch.empty(0, dtype=torch.int64)] * 5
        order = positions.argsort()
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "labels" if self.multi_label else "label"] + [
                f"{column}_{i}" for i in range(1, self.top_k + 1) for column in ("class", "probability")])
            for row in order.tolist():
                true = [names[c] for c in labels[row].view(-1).tolist() if c >= 0]
                top = [cell for c, p in zip(classes[row].tolist(), probabilities[row].tolist())
                       for cell in (names[c], f"{p:.6f}")]
                writer.writerow([int(ids[row]), "|".join(true), *top])
        log.info("Wrote %s: %d images", path, len(order))

    def write_confusion_matrix(self, path: str, names: list[str], info: DistInfo) -> None:
        """The counts as CSV beside `path` (same name, .csv) and the row-normalised heat map as `path`."""
        with dist.collective("the confusion matrix all-reduce", info):
            counts = dist.all_reduce_sum(self.counts.counts, info).cpu()
        if not info.is_primary:
            return
        csv_path = os.path.splitext(path)[0] + ".csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *names])
            for name, row in zip(names, counts.tolist()):
                writer.writerow([name, *row])
        shown = metrics.most_confused_classes(counts, metrics.CONFUSION_PLOT_CLASSES)
        rows = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)
        title = f"{int(counts.sum())} images, accuracy {counts.trace() / max(1, int(counts.sum())):.4f}"
        if len(shown) < len(names):
            title += f"; the {len(shown)} most confused of {len(names)} classes"
        plotting.save_heat_map(rows[shown][:, shown].numpy(), [names[c] for c in shown], path, title,
                               xlabel="predicted class", ylabel="true class (cells: % of its images)")
        log.info("Wrote %s and %s", path, csv_path)


def class_names(args: argparse.Namespace, prefix: str, num_classes: int) -> list[str]:
    """The model's class names: PREFIX-synset.txt (written by training) or synset.txt beside the checkpoint;
    for a zoo model, its published synset (downloaded). Class numbers when there are none."""
    path = next((p for p in (checkpoint.class_names_path(prefix), beside(prefix)) if os.path.exists(p)), None)
    if path is None and args.model in modelzoo.MODELS:
        try:
            path = modelzoo.download_synset(args.model, args.model_dir)
        except UserError as e:  # not in the zoo's records, or offline
            log.warning("no class names, showing class numbers: %s", e)
    return read_class_names(path, num_classes) if path else [str(i) for i in range(num_classes)]


def predict(image_path: str, model: nn.Module, shape: tuple[int, int, int], mean: tuple[float, ...],
            std: tuple[float, ...], names: list[str], multi_label: bool) -> dict[str, float]:
    """Print the 5 most likely classes of one image: its short side resized to the model's input, then the
    centred crop, as `im2rec --resize` and the validation pipeline do. Multi-label models give each class
    its own probability (the sigmoid), the others share 1 (the softmax)."""
    try:
        with open(image_path, "rb") as f:
            img = decode(f.read(), shape[0])
    except OSError as e:
        raise UserError(f"{image_path}: {e.strerror}") from None
    if img is None:
        raise UserError(f"{image_path}: not an image OpenCV can decode")
    img = resize_to_cover(img, shape[1], shape[2])
    img = cut(img, crop_box(*img.shape[:2], shape[1], shape[2], None))
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)[::-1] if shape[0] == 3 else
                                              img.transpose(2, 0, 1))).float().unsqueeze(0)
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.inference_mode():
        logits = model(x).float()[0]
    probs = metrics.class_probabilities(logits, multi_label)
    top = probs.topk(min(5, len(probs)))
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"probability={p:f}, class={names[i]}")
    return {names[i]: p for p, i in zip(top.values.tolist(), top.indices.tolist())}


def export_onnx(model: nn.Module, shape: tuple[int, int, int], path: str) -> dict[str, float]:
    """Write `model` as ONNX (input `data`: N x C x H x W normalised images, output `logits`), batch size free."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError("--export onnx needs the onnx and onnxscript packages: pip install onnx onnxscript") from None
    torch.onnx.export(model, (torch.zeros(2, *shape),), path, input_names=["data"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    log.info("Exported %s", path)
    return {}


if __name__ == "__main__":
    parser = get_args_parser()
    cli.run_main(lambda: main(parser.parse_args()))
