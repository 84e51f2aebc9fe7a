"""Score a trained model on a validation `.rec` file, as MXNet's score.py does; classify one image; or
export a model to ONNX.

    python score.py --model imagenet1k-resnet-50 --data-val data/val_256_q90.rec --gpus 0
    python score.py --model imagenet1k-inception-bn --rgb-mean 123.68,116.779,103.939 --data-val data/val.rec
    python score.py --model model/caltech --load-epoch 30 --data-val data/caltech256-val.rec   # a checkpoint
    python score.py --model imagenet1k-resnet-50 --image cat.jpg         # the 5 most likely classes
    python score.py --model imagenet1k-resnet-50 --export onnx           # writes model/imagenet1k-resnet-50.onnx

`--model` is a model zoo name (downloaded into --model-dir) or the prefix of a checkpoint, MXNet's or ours.
Validation images get MXNet's centred crop: enlarged only if smaller than --image-shape, then the centred
height x width; pack them with `tools/im2rec.py --resize 256` (or 480) as MXNet's data/imagenet1k-val.sh does.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import cli, data, dist, inference, modelzoo
from common.augment import crop_box, cut, decode, resize_to_cover
from common.cli import UserError
from common.dist import DistInfo
from common.metrics import evaluate
from common.mxnet_import import ModelInfo, load_model

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
    val.add_argument("--data-nthreads", type=int, default=4, help="number of processes decoding images")
    val.add_argument("--max-num-examples", type=int, help="score only the first n images")
    run = parser.add_argument_group("Running")
    run.add_argument("--dtype", type=str, default="float32", choices=tuple(INFERENCE_DTYPES),
                     help="the precision the network computes in")
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
    if args.image:
        return predict(args.image, model, info, shape, mean, std, synset_path(args, prefix))
    return dist.run(args.gpus, "device", args.batch_size, Scoring(args, model, info.num_classes, shape, mean, std))


@dataclass
class Scoring:
    """What each scoring process runs: its shard of the validation records through the model."""
    args: argparse.Namespace
    model: nn.Module
    num_classes: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, info: DistInfo) -> dict[str, float]:
        args = self.args
        cli.setup_logging(info.rank)
        batch = data.rank_batch_size(args.batch_size, info)
        loader = data.validation_batches(args.data_val, self.shape, batch, info,
                                         mean=self.mean, std=self.std, num_workers=args.data_nthreads,
                                         num_classes=self.num_classes, limit=args.max_num_examples)
        model = inference.prepare(self.model, info.device, INFERENCE_DTYPES[args.dtype], self.shape)
        normalize = data.Normalizer(self.mean, self.std, info.device)
        tic = time.time()
        meter = evaluate(model, loader, normalize, info, top_k=min(5, self.num_classes), desc="score")
        metrics = meter.total_values("")  # synchronises the device, so the time below is complete
        elapsed = time.time() - tic
        total = int(dist.all_reduce_sum(torch.tensor([meter.total_count], device=info.device), info).item())
        speed = total / elapsed
        if info.is_primary:
            log.info("Finished with %f images per second", speed)
            for pair in metrics:
                log.info("%s", pair)
        return {**dict(metrics), "images_per_sec": speed, "num_images": total}


def synset_path(args: argparse.Namespace, prefix: str) -> str | None:
    """Class names for --image: PREFIX-synset.txt or synset.txt beside the checkpoint; for a zoo model,
    its published synset (downloaded; class numbers are shown if that fails)."""
    for path in (f"{prefix}-synset.txt", os.path.join(os.path.dirname(prefix) or ".", "synset.txt")):
        if os.path.exists(path):
            return path
    if args.model in modelzoo.MODELS:
        try:
            return modelzoo.download_synset(args.model, args.model_dir)
        except UserError as e:  # not in the zoo's records, or offline
            log.warning("no class names, showing class numbers: %s", e)
    return None


def read_synset(path: str | None, num_classes: int) -> list[str]:
    if path is None:
        return [str(i) for i in range(num_classes)]
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != num_classes:
        raise UserError(f"{path} names {len(names)} classes but the model has {num_classes}")
    return names


def predict(image_path: str, model: nn.Module, info: ModelInfo, shape: tuple[int, int, int],
            mean: tuple[float, ...], std: tuple[float, ...], synset: str | None) -> dict[str, float]:
    """Print the 5 most likely classes of one image: its short side resized to the model's input, then the
    centred crop, as `im2rec --resize` and the validation pipeline do."""
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
        probs = F.softmax(model(x).float(), dim=1)[0]
    names = read_synset(synset, info.num_classes)
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
