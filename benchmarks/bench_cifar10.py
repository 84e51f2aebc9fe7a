"""CIFAR-10 training speed on the CPU: train_cifar10.py against MXNet 1.9.1 on the same record file.

    python data/cifar10.py --data-dir /tmp/c10 --train-folder $IMAGECLS_DATASETS/cifar10/train
    python benchmarks/bench_cifar10.py --rec /tmp/c10/cifar10_train.rec --mxnet-python /tmp/mxvenv/bin/python

Both train resnet-20 (pre-activation, MXNet's CIFAR layout) at batch 128 on 3x32x32 crops of the 4-padded
images with mirroring, 2 decoding threads (ours one epoch, MXNet --batches batches); the figure is the median Speedometer line
after the first. MXNet runs in its own virtualenv (`python -m venv /tmp/mxvenv && /tmp/mxvenv/bin/pip install
mxnet==1.9.1 "numpy<1.24"`), with the network written out below from MXNet's published structure.
"""
import argparse
import os
import subprocess
import sys

from bench_mnist import median_speed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MXNET_SCRIPT = r'''
import logging, sys
import mxnet as mx
sys.path.insert(0, sys.argv[3])
from checks.mxnet_graphs import bn, conv, preact_unit, relu
logging.basicConfig(level=logging.INFO, format="%(message)s")
rec, batches = sys.argv[1], int(sys.argv[2])
x = bn(mx.sym.Variable("data"), "bn_data", fix_gamma=True)
x = conv(x, "conv0", 16, 3, 1, 1)
for stage, filters in enumerate((16, 32, 64)):
    for unit in range(3):
        x = preact_unit(x, f"stage{stage + 1}_unit{unit + 1}", filters, 2 if stage and not unit else 1, unit == 0, False)
x = relu(bn(x, "bn1"), "relu1")
x = mx.sym.Pooling(x, global_pool=True, kernel=(8, 8), pool_type="avg", name="pool1")
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=10, name="fc1"), name="softmax")
train = mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 32, 32), batch_size=128, pad=4, rand_crop=True,
                              rand_mirror=True, shuffle=True, preprocess_threads=2, num_parts=1, part_index=0)
module = mx.mod.Module(net, context=mx.cpu())
class Stop(Exception): pass
def stop(param):
    if param.nbatch >= batches: raise Stop
try:
    module.fit(train, num_epoch=1, optimizer="sgd", optimizer_params={"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-4},
               initializer=mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2),
               batch_end_callback=[mx.callback.Speedometer(128, 20), stop])
except Stop:
    pass
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rec", required=True, help="CIFAR-10 training .rec (data/cifar10.py writes one)")
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--mxnet-python", help="a Python with MXNet 1.9.1; without it only ours is measured")
    args = parser.parse_args()
    ours = subprocess.run([sys.executable, "train_cifar10.py", "--network", "resnet", "--num-layers", "20",
                           "--data-train", args.rec, "--data-val", "", "--data-nthreads", "2", "--disp-batches", "20",
                           "--num-epochs", "1"],
                          cwd=ROOT, capture_output=True, text=True)
    if ours.returncode:
        raise SystemExit(ours.stderr[-2000:])
    print(f"train_cifar10.py resnet-20, batch 128, CPU: {median_speed(ours.stderr):.1f} samples/sec")
    if args.mxnet_python:
        mx = subprocess.run([args.mxnet_python, "-c", MXNET_SCRIPT, args.rec, str(args.batches), ROOT],
                            capture_output=True, text=True)
        print(f"MXNet 1.9.1 same network and data:   {median_speed(mx.stdout + mx.stderr):.1f} samples/sec")


if __name__ == "__main__":
    main()
