"""Train ImageNet from record files (MXNet's defaults: resnet-50, 224x224, 1000 classes, steps 30,60, 80 epochs).

    python train_imagenet.py --data-train train.rec --data-val val.rec --gpus 0,1,2,3 --dtype bfloat16
    python train_imagenet.py --use-imagenet-data-augmentation 1 ...     # the standard recipe, see below
    python train_imagenet.py --benchmark 1 --batch-size 32 --gpus ''    # synthetic data: training speed only
    python tools/launch.py -n 2 -H hosts python train_imagenet.py --gpus 0,1,2,3 --kv-store dist_device_sync ...

`--use-imagenet-data-augmentation 1` sets random resized crop (area 0.08-1, ratio 3/4-4/3), mirror, colour
jitter 0.4, PCA noise 0.1 and ImageNet's mean/std as defaults; options given on the command line still win.
(MXNet's script applied it after parsing, so it was silently ignored.) `data/imagenet1k-val.sh` packs the
validation set as MXNet did.
"""
import argparse

from common import cli, data, fit
from symbols import add_network_args, create_model

IMAGENET_AUGMENTATION = dict(rgb_mean="123.68,116.779,103.939", rgb_std="58.393,57.12,57.375", random_crop=0,
                             random_resized_crop=1, random_mirror=1, min_random_area=0.08,
                             min_random_aspect_ratio=3 / 4, max_random_aspect_ratio=4 / 3,
                             brightness=0.4, contrast=0.4, saturation=0.4, pca_noise=0.1,
                             # instead of, not on top of, the level-3 defaults
                             max_random_h=0, max_random_s=0, max_random_l=0, max_random_rotate_angle=0,
                             max_random_shear_ratio=0)


def get_args_parser(add_help: bool = True) -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="train imagenet-1k", add_help=add_help)
    fit.add_fit_args(parser)
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    add_network_args(parser)
    parser.add_argument("--use-imagenet-data-augmentation", type=int, default=0, action=cli.PresetAction,
                        settings=lambda on: IMAGENET_AUGMENTATION if on else {},
                        help="1: the standard ImageNet augmentation as defaults (see the script's docstring)")
    data.set_data_aug_level(parser, 3)
    parser.set_defaults(network="resnet", num_layers=50, num_classes=1000, num_examples=1281167,
                        image_shape="3,224,224", min_random_scale=1, num_epochs=80, lr_step_epochs="30,60",
                        dtype="float32")
    return parser


def main(args: argparse.Namespace) -> dict:
    return fit.fit(args, create_model(args.network, **vars(args)), data.get_rec_iter)


if __name__ == "__main__":
    parser = get_args_parser()
    cli.run_main(lambda: main(parser.parse_args()))
