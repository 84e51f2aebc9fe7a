"""Fine-tune a pre-trained model on another data set, as MXNet's fine-tune.py: the network's last
fully-connected layer is replaced by a new one with --num-classes outputs (initialised by --initializer),
every other layer keeps its pre-trained weights, and the whole network is trained.

    bash data/caltech256.sh                                   # Caltech-256 as .rec files in data/
    python fine-tune.py --pretrained-model imagenet11k-resnet-152 --gpus 0,1,2,3,4,5,6,7 \\
        --data-train data/caltech256-train.rec --data-val data/caltech256-val.rec \\
        --batch-size 128 --num-classes 256 --num-examples 15240 --model-prefix model/caltech
    python fine-tune.py --pretrained-model model/mine --pretrained-epoch 10 ...   # our or MXNet's checkpoint

MXNet's defaults for fine-tuning: 30 epochs, lr 0.01 divided by 10 after epoch 20, no weight decay, no
momentum, 224x224 inputs, augmentation level 1 (random crop and mirror). Checkpoints (--model-prefix)
rebuild the fine-tuned network: score them with `score.py --model PREFIX --load-epoch N`.
"""
from __future__ import annotations

import argparse
import logging

import torch
import torch.nn as nn

from common import cli, data, fit, modelzoo
from common.cli import UserError
from common.mxnet_import import ModelInfo, load_model
from symbols import create_model

log = logging.getLogger("fine-tune")


def get_args_parser(add_help: bool = True) -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="fine-tune a dataset", add_help=add_help)
    fit.add_fit_args(parser)
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    pretrained = parser.add_argument_group("Pre-trained model")
    pretrained.add_argument("--pretrained-model", type=str, required=True,
                            help=f"a model zoo name ({', '.join(modelzoo.MODELS)}) or a checkpoint prefix "
                                 "(with --pretrained-epoch)")
    pretrained.add_argument("--pretrained-epoch", type=int,
                            help="with a checkpoint prefix: use PREFIX-NNNN.params (--load-epoch resumes the "
                                 "fine-tuning itself, from --model-prefix)")
    pretrained.add_argument("--layer-before-fullc", type=str, default="flatten0",
                            help="the layer before the last fully-connected layer, which is replaced (MXNet's "
                                 "graph name: flatten0 for ResNets)")
    pretrained.add_argument("--model-dir", type=str, default="model/", help="where zoo models are downloaded")
    data.set_data_aug_level(parser, 1)
    parser.set_defaults(image_shape="3,224,224", num_epochs=30, lr=0.01, lr_step_epochs="20", wd=0.0, mom=0.0)
    return parser


def replace_classifier(model: nn.Module, info: ModelInfo, num_classes: int, layer_before_fullc: str,
                       initializer: str) -> nn.Linear:
    """Swap the network's last fully-connected layer for a new one of `num_classes` outputs, initialised as
    fit.py initialises networks; it keeps its attribute, so checkpoints keep the network's layer names."""
    if info.layer_before_fullc is not None and layer_before_fullc != info.layer_before_fullc:
        raise UserError(f"--layer-before-fullc {layer_before_fullc}: in this model the last fully-connected "
                         f"layer {info.classifier} follows '{info.layer_before_fullc}'; fine-tuning replaces "
                         f"that layer, so give --layer-before-fullc {info.layer_before_fullc}")
    path = next(p for p, _ in model.named_modules() if p.replace(".", "_") == info.classifier)
    parent_path, _, attribute = path.rpartition(".")
    parent = model.get_submodule(parent_path)
    old = getattr(parent, attribute)
    new = nn.Linear(old.in_features, num_classes)
    holder = nn.Module()  # named so that fit.initialize sees `fc_weight` and `fc_bias`
    holder.fc = new
    fit.initialize(holder, initializer)
    setattr(parent, attribute, new)
    log.info("Replaced %s (%d -> %d) with a new layer of %d outputs", info.classifier, old.in_features,
             old.out_features, num_classes)
    return new


def check_rebuilds(model: nn.Module, info: ModelInfo, num_classes: int, kwargs: dict, image_shape: str) -> None:
    """The checkpoints fit.py writes rebuild the network from the options, --image-shape included: make sure
    that gives this network, not one of another layout (ResNets choose theirs by image size)."""
    rebuilt = create_model(info.network, num_classes, **kwargs, image_shape=image_shape)
    want = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    have = {name: tuple(t.shape) for name, t in rebuilt.state_dict().items()}
    if want != have:
        raise UserError(f"at --image-shape {image_shape} {info.network} has another layout than the pre-trained "
                         f"network (built for {info.kwargs.get('image_shape')}); use larger images")


def main(args: argparse.Namespace) -> dict[str, float]:
    cli.setup_logging(0)
    if args.num_classes is None:
        raise UserError("--num-classes is required: the number of classes of the new data set")
    prefix, epoch = modelzoo.resolve(args.pretrained_model, args.pretrained_epoch, args.model_dir,
                                     "--pretrained-epoch")
    model, info = load_model(prefix, epoch, args.network, args.num_layers)
    torch.manual_seed(args.seed)  # the new classifier's initial weights follow --seed
    replace_classifier(model, info, args.num_classes, args.layer_before_fullc, args.initializer)
    kwargs = {k: v for k, v in info.kwargs.items() if k != "image_shape"}
    vars(args).update(network=info.network, **kwargs)
    check_rebuilds(model, info, args.num_classes, kwargs, args.image_shape)
    return fit.fit(args, model, data.get_rec_iter, initialized=True)


if __name__ == "__main__":
    parser = get_args_parser()
    cli.run_main(lambda: main(parser.parse_args()))
