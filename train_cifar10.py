"""Train CIFAR-10 from record files (MXNet's defaults: resnet-110, batch 128, lr 0.05, steps 200,250, 300 epochs).

    python train_cifar10.py                                          # CPU; packs data/cifar10_*.rec first if missing
    python train_cifar10.py --network resnet --num-layers 20 --gpus 0 --dtype bfloat16
    python train_cifar10.py --gpus 0,1,2,3                           # one process per GPU, batch 128 in all
    python tools/launch.py -n 2 -H hosts python train_cifar10.py --gpus 0,1 --kv-store dist_device_sync
    python data/cifar10.py --train-folder DIR --val-folder DIR       # pack your own class folders instead

Unlike MXNet's script (28x28 centre crop, no mirror), the input is the full 32x32 image, padded by 4 and
randomly cropped and mirrored, normalised with CIFAR-10's mean and std: the recipe that reaches the ResNet
paper's accuracy.

MXNet's schedule stays the default. The fast recipe (README, "A fast CIFAR-10 recipe"; run end to end by
benchmarks/cifar10_recipe.py) trains resnet-20 to the paper's accuracy in 30 epochs (0.9150 with seed 0):

    python train_cifar10.py --network resnet --num-layers 20 --num-epochs 30 --lr 0.1 --warmup-epochs 1 \
        --lr-step-epochs cosine --optimizer nag --wd 5e-4 --label-smoothing 0.1 --ema-decay 0.999 \
        --dtype bfloat16 --model-prefix model/cifar10-r20
"""
import argparse
import os
import subprocess
import sys

from common import cli, data, fit
from symbols import add_network_args, create_model

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TRAIN_REC, VAL_REC = os.path.join(DATA_DIR, "cifar10_train.rec"), os.path.join(DATA_DIR, "cifar10_val.rec")


def get_args_parser(add_help: bool = True) -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="train cifar10", add_help=add_help)
    fit.add_fit_args(parser)
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    add_network_args(parser)
    data.set_data_aug_level(parser, 1)  # pad 4 + random crop + mirror
    parser.set_defaults(network="resnet", num_layers=110, data_train=TRAIN_REC, data_val=VAL_REC, num_classes=10,
                        num_examples=50000, image_shape="3,32,32", pad_size=4, fill_value=0,
                        rgb_mean="125.307,122.961,113.8575", rgb_std="62.9932,62.0887,66.7048",
                        batch_size=128, num_epochs=300, lr=0.05, lr_step_epochs="200,250")
    return parser


def ensure_default_data(args: argparse.Namespace) -> None:
    """With the default record files missing, download and pack CIFAR-10 (data/cifar10.py)."""
    if args.benchmark or args.test_io and os.path.exists(TRAIN_REC):
        return
    if (args.data_train, args.data_val) == (TRAIN_REC, VAL_REC) and not (
            os.path.exists(TRAIN_REC) and os.path.exists(VAL_REC)):
        subprocess.run([sys.executable, os.path.join(DATA_DIR, "cifar10.py"), "--data-dir", DATA_DIR], check=True)


def main(args: argparse.Namespace) -> dict:
    ensure_default_data(args)
    return fit.fit(args, create_model(args.network, **vars(args)), data.get_rec_iter)


if __name__ == "__main__":
    parser = get_args_parser()
    cli.run_main(lambda: main(parser.parse_args()))
