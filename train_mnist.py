"""Train MNIST with a multi-layer perceptron or LeNet, as MXNet's example does.

    python train_mnist.py                                   # MLP on the CPU, on the MNIST copy in data/mnist/
    python train_mnist.py --network lenet --gpus 0          # LeNet on the first GPU
    python train_mnist.py --data-dir ~/datasets/mnist --num-epochs 1    # MNIST files already on disk
    python train_mnist.py --model-prefix model/mnist --load-epoch 10   # resume after epoch 10
"""
import argparse

from common import cli, data, fit
from symbols import add_network_args, create_model


def get_args_parser(add_help: bool = True) -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description="train mnist", add_help=add_help)
    mnist = parser.add_argument_group("Data", "MNIST, read from the four IDX gz files")
    mnist.add_argument("--data-dir", type=str, default=None,
                       help="folder of the MNIST files (or a same-format set such as Fashion-MNIST); missing "
                            "files are downloaded into it. Default: the copy of MNIST in data/mnist/")
    mnist.add_argument("--num-classes", type=int, default=10, help="the number of classes")
    mnist.add_argument("--num-examples", type=int, default=60000, help="the number of training examples")
    fit.add_fit_args(parser)
    add_network_args(parser)
    parser.set_defaults(network="mlp", gpus="", batch_size=64, disp_batches=100, num_epochs=20,
                        lr=0.05, lr_step_epochs="10")
    return parser


def main(args: argparse.Namespace) -> dict:
    network = create_model(args.network, **vars(args))
    return fit.fit(args, network, data.get_mnist_iter)


if __name__ == "__main__":
    parser = get_args_parser()
    cli.run_main(lambda: main(parser.parse_args()))
