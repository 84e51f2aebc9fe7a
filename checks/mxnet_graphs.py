"""MXNet graphs of every family of MXNet's `example/image-classification/symbols/` (MLP, LeNet, AlexNet,
VGG, GoogLeNet, Inception-BN, Inception-v3, Inception-v4, Inception-ResNet-v2, ResNet v2, ResNet v1,
ResNeXt, MobileNet, MobileNetV2) with the layer names, attributes and numerics of those files, imported only
under a Python that has MXNet 1.9.1: by checks/check_mxnet_logits.py and checks/make_import_fixtures.py,
which check our import of them, and as `checks.mxnet_graphs` by benchmarks/bench_score.py and
bench_cifar10.py, which time MXNet on them. The pip package of MXNet does not ship those example files, so
the graphs are written out here from their published structure. Layers the example leaves unnamed get
MXNet's automatic names (`convolution0`, `fullyconnected0`): `get_symbol` builds each graph under a fresh
`mx.name.NameManager`, so they are numbered from 0 as in a fresh process."""
from __future__ import annotations

import mxnet as mx

EPS = 2e-5
UNITS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def conv(x, name, num_filter, kernel, stride=1, pad=0, num_group=1):
    return mx.sym.Convolution(x, num_filter=num_filter, kernel=(kernel, kernel), stride=(stride, stride),
                              pad=(pad, pad), num_group=num_group, no_bias=True, name=name)


def bn(x, name, fix_gamma=False, eps=EPS):
    return mx.sym.BatchNorm(x, fix_gamma=fix_gamma, eps=eps, momentum=0.9, name=name)


def relu(x, name):
    return mx.sym.Activation(x, act_type="relu", name=name)


def preact_unit(x, name, filters, stride, project, bottle_neck):
    act1 = relu(bn(x, name + "_bn1"), name + "_relu1")
    if bottle_neck:
        y = conv(act1, name + "_conv1", filters // 4, 1)
        y = conv(relu(bn(y, name + "_bn2"), name + "_relu2"), name + "_conv2", filters // 4, 3, stride, 1)
        y = conv(relu(bn(y, name + "_bn3"), name + "_relu3"), name + "_conv3", filters, 1)
    else:
        y = conv(act1, name + "_conv1", filters, 3, stride, 1)
        y = conv(relu(bn(y, name + "_bn2"), name + "_relu2"), name + "_conv2", filters, 3, 1, 1)
    shortcut = conv(act1, name + "_sc", filters, 1, stride) if project else x
    return y + shortcut


def postact_unit(x, name, filters, stride, project, bottle_neck, groups, sc_names):
    if bottle_neck:
        width = filters // 2 if groups > 1 else filters // 4
        first_stride, second_stride = (1, stride) if groups > 1 else (stride, 1)
        y = relu(bn(conv(x, name + "_conv1", width, 1, first_stride), name + "_bn1"), name + "_relu1")
        y = relu(bn(conv(y, name + "_conv2", width, 3, second_stride, 1, groups), name + "_bn2"), name + "_relu2")
        y = bn(conv(y, name + "_conv3", filters, 1), name + "_bn3")
    else:
        y = relu(bn(conv(x, name + "_conv1", filters, 3, stride, 1), name + "_bn1"), name + "_relu1")
        y = bn(conv(y, name + "_conv2", filters, 3, 1, 1), name + "_bn2")
    shortcut = bn(conv(x, name + sc_names[0], filters, 1, stride), name + sc_names[1]) if project else x
    return relu(y + shortcut, name + "_relu")


def mobilenet(num_classes: int = 1000, alpha: float = 1.0, resolution: int = 224):
    """MobileNet v1 of width `alpha` for `resolution`x`resolution` inputs: units `conv_<i>[_dw]` of
    convolution `_conv2d`, BatchNorm `_batchnorm` (MXNet's defaults: fixed gamma, eps 1e-3) and ReLU;
    average pooling `global_pool` of resolution/32 (7x7 at 224), stride 1; `fc`."""
    def unit(x, name, num_filter, kernel, stride, pad, num_group=1):
        x = conv(x, name + "_conv2d", num_filter, kernel, stride, pad, num_group)
        return relu(bn(x, name + "_batchnorm", fix_gamma=True, eps=1e-3), name + "_relu")

    base = int(32 * alpha)
    x = unit(mx.sym.Variable("data"), "conv_1", base, 3, 2, 1)
    channels = base
    plan = [(1, 2), (2, 4), (1, 4), (2, 8), (1, 8), (2, 16)] + [(1, 16)] * 5 + [(2, 32), (1, 32)]
    for i, (stride, width) in enumerate(plan, start=2):
        x = unit(x, f"conv_{i}_dw", channels, 3, stride, 1, num_group=channels)
        x = unit(x, f"conv_{i}", base * width, 1, 1, 0)
        channels = base * width
    pool = resolution // 32
    x = mx.sym.Pooling(x, kernel=(pool, pool), stride=(1, 1), pool_type="avg", name="global_pool")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=num_classes, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def inception_bn(num_classes: int = 1000, small: bool = False, classifier: str | None = "fc1"):
    """Inception-BN for 224x224 inputs or, `small`, the example's simpler network for images up to 28
    pixels high (`in3a` ... `in5b` of 1x1 + 3x3 units, two downsampling blocks): units `conv_<name>` (with
    bias), `bn_<name>` (eps 1e-10 + 1e-5, gamma used), ReLU; 7x7 average pooling `global_pool`. The
    classifier is named `fc1` by default, as in the zoo's Inception-BN, where MXNet 1.9.1's example leaves it
    unnamed (`classifier=None`: `fullyconnected0`): the importer loads either into the network's output
    layer."""
    def unit(x, name, num_filter, kernel=1, stride=1, pad=0):
        x = mx.sym.Convolution(x, num_filter=num_filter, kernel=(kernel, kernel), stride=(stride, stride),
                               pad=(pad, pad), name=f"conv_{name}")
        return relu(bn(x, f"bn_{name}", eps=1e-10 + 1e-5), f"relu_{name}")

    def block_a(x, name, n1x1, n3x3r, n3x3, nd3x3r, nd3x3, pool_type, proj):
        a = unit(x, f"{name}_1x1", n1x1)
        b = unit(unit(x, f"{name}_3x3_reduce", n3x3r), f"{name}_3x3", n3x3, 3, 1, 1)
        c = unit(unit(unit(x, f"{name}_double_3x3_reduce", nd3x3r), f"{name}_double_3x3_0", nd3x3, 3, 1, 1),
                 f"{name}_double_3x3_1", nd3x3, 3, 1, 1)
        d = mx.sym.Pooling(x, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type=pool_type)
        return mx.sym.Concat(a, b, c, unit(d, f"{name}_proj", proj))

    def block_b(x, name, n3x3r, n3x3, nd3x3r, nd3x3):
        b = unit(unit(x, f"{name}_3x3_reduce", n3x3r), f"{name}_3x3", n3x3, 3, 2, 1)
        c = unit(unit(unit(x, f"{name}_double_3x3_reduce", nd3x3r), f"{name}_double_3x3_0", nd3x3, 3, 1, 1),
                 f"{name}_double_3x3_1", nd3x3, 3, 2, 1)
        return mx.sym.Concat(b, c, mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max"))

    if small:
        def simple(x, name, n1x1, n3x3):
            return mx.sym.Concat(unit(x, f"{name}_1x1", n1x1), unit(x, f"{name}_3x3", n3x3, 3, 1, 1),
                                 name=f"{name}_ch_concat")

        def downsample(x, name, n3x3):
            pool = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max",
                                  name=f"{name}_pool")
            return mx.sym.Concat(unit(x, f"{name}_conv", n3x3, 3, 2, 1), pool, name=f"{name}_ch_concat")

        x = unit(mx.sym.Variable("data"), "1", 96, 3, 1, 1)
        x = simple(simple(x, "in3a", 32, 32), "in3b", 32, 48)
        x = downsample(x, "in3c", 80)
        for name, n1x1, n3x3 in (("in4a", 112, 48), ("in4b", 96, 64), ("in4c", 80, 80), ("in4d", 48, 96)):
            x = simple(x, name, n1x1, n3x3)
        x = downsample(x, "in4e", 96)
        x = simple(simple(x, "in5a", 176, 160), "in5b", 176, 160)
        x = mx.sym.Pooling(x, kernel=(7, 7), pool_type="avg", name="global_pool")
        x = mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=num_classes, name=classifier)
        return mx.sym.SoftmaxOutput(x, name="softmax")
    x = unit(mx.sym.Variable("data"), "1", 64, 7, 2, 3)
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool_1")
    x = unit(unit(x, "2_red", 64), "2", 192, 3, 1, 1)
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool_2")
    x = block_a(x, "3a", 64, 64, 64, 64, 96, "avg", 32)
    x = block_a(x, "3b", 64, 64, 96, 64, 96, "avg", 64)
    x = block_b(x, "3c", 128, 160, 64, 96)
    x = block_a(x, "4a", 224, 64, 96, 96, 128, "avg", 128)
    x = block_a(x, "4b", 192, 96, 128, 96, 128, "avg", 128)
    x = block_a(x, "4c", 160, 128, 160, 128, 160, "avg", 128)
    x = block_a(x, "4d", 96, 128, 192, 160, 192, "avg", 128)
    x = block_b(x, "4e", 128, 192, 192, 256)
    x = block_a(x, "5a", 352, 192, 320, 160, 224, "avg", 128)
    x = block_a(x, "5b", 352, 192, 320, 192, 224, "max", 128)
    x = mx.sym.Pooling(x, kernel=(7, 7), stride=(1, 1), pool_type="avg", name="global_pool")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=num_classes, name=classifier)
    return mx.sym.SoftmaxOutput(x, name="softmax")


def inception_v3(num_classes: int = 1000):
    """Inception-v3 for 299x299 inputs: units `<name>_conv2d` (no bias), `<name>_batchnorm` (MXNet's defaults:
    fixed gamma, eps 1e-3), ReLU; blocks `mixed` ... `mixed_10` concatenate towers `<block>_conv`,
    `<block>_tower[_1|_2]_...`; their stride-1 pooling pads by 1 (average pooling counts the padding, MXNet's
    default); 8x8 average pooling; `fc1`."""
    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    def unit(x, name, num_filter, kernel=1, stride=1, pad=0):
        x = mx.sym.Convolution(x, num_filter=num_filter, kernel=pair(kernel), stride=pair(stride), pad=pair(pad),
                               no_bias=True, name=name + "_conv2d")
        return relu(bn(x, name + "_batchnorm", fix_gamma=True, eps=1e-3), name + "_relu")

    def chain(x, name, *units):  # units: (suffix, num_filter[, kernel, stride, pad])
        for suffix, *spec in units:
            x = unit(x, name + suffix, *spec)
        return x

    def pooled(x, pool_type, stride=1, pad=1):
        return mx.sym.Pooling(x, kernel=(3, 3), stride=(stride, stride), pad=(pad, pad), pool_type=pool_type)

    def block_a(x, name, proj):
        return mx.sym.Concat(
            unit(x, name + "_conv", 64),
            chain(x, name + "_tower", ("_conv", 48), ("_conv_1", 64, 5, 1, 2)),
            chain(x, name + "_tower_1", ("_conv", 64), ("_conv_1", 96, 3, 1, 1), ("_conv_2", 96, 3, 1, 1)),
            unit(pooled(x, "avg"), name + "_tower_2_conv", proj))

    def block_b(x, name):
        return mx.sym.Concat(
            unit(x, name + "_conv", 384, 3, 2),
            chain(x, name + "_tower", ("_conv", 64), ("_conv_1", 96, 3, 1, 1), ("_conv_2", 96, 3, 2)),
            pooled(x, "max", 2, 0))

    def block_c(x, name, width):
        row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
        return mx.sym.Concat(
            unit(x, name + "_conv", 192),
            chain(x, name + "_tower", ("_conv", width), ("_conv_1", width, *row), ("_conv_2", 192, *col)),
            chain(x, name + "_tower_1", ("_conv", width), ("_conv_1", width, *col), ("_conv_2", width, *row),
                  ("_conv_3", width, *col), ("_conv_4", 192, *row)),
            unit(pooled(x, "avg"), name + "_tower_2_conv", 192))

    def block_d(x, name):
        return mx.sym.Concat(
            chain(x, name + "_tower", ("_conv", 192), ("_conv_1", 320, 3, 2)),
            chain(x, name + "_tower_1", ("_conv", 192), ("_conv_1", 192, (1, 7), 1, (0, 3)),
                  ("_conv_2", 192, (7, 1), 1, (3, 0)), ("_conv_3", 192, 3, 2)),
            pooled(x, "max", 2, 0))

    def block_e(x, name, pool_type):
        tower = unit(x, name + "_tower_conv", 384)
        tower_1 = chain(x, name + "_tower_1", ("_conv", 448), ("_conv_1", 384, 3, 1, 1))
        return mx.sym.Concat(
            unit(x, name + "_conv", 320),
            unit(tower, name + "_tower_mixed_conv", 384, (1, 3), 1, (0, 1)),
            unit(tower, name + "_tower_mixed_conv_1", 384, (3, 1), 1, (1, 0)),
            unit(tower_1, name + "_tower_1_mixed_conv", 384, (1, 3), 1, (0, 1)),
            unit(tower_1, name + "_tower_1_mixed_conv_1", 384, (3, 1), 1, (1, 0)),
            unit(pooled(x, pool_type), name + "_tower_2_conv", 192))

    x = mx.sym.identity(mx.sym.Variable("data"), name="id")
    x = chain(x, "conv", ("", 32, 3, 2), ("_1", 32, 3), ("_2", 64, 3, 1, 1))
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool")
    x = chain(x, "conv", ("_3", 80), ("_4", 192, 3))
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool1")
    x = block_a(block_a(block_a(x, "mixed", 32), "mixed_1", 64), "mixed_2", 64)
    x = block_b(x, "mixed_3")
    for name, width in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        x = block_c(x, name, width)
    x = block_e(block_e(block_d(x, "mixed_8"), "mixed_9", "avg"), "mixed_10", "max")
    x = mx.sym.Pooling(x, kernel=(8, 8), stride=(1, 1), pool_type="avg", name="global_pool")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=num_classes, name="fc1")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def mlp(num_classes: int = 10):
    """MLP: Flatten, `fc1` 128, `fc2` 64 (each with ReLU `relu1`, `relu2`), `fc3`."""
    x = mx.sym.Flatten(mx.sym.Variable("data"))
    x = relu(mx.sym.FullyConnected(x, num_hidden=128, name="fc1"), "relu1")
    x = relu(mx.sym.FullyConnected(x, num_hidden=64, name="fc2"), "relu2")
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes, name="fc3"), name="softmax")


def lenet(num_classes: int = 10):
    """LeNet, every layer unnamed (`convolution0`, `fullyconnected1`, ...): 5x5 convolutions of 20 and 50
    filters, each followed by tanh and 2x2 stride-2 max-pooling, then 500 hidden units with tanh and the
    classifier."""
    x = mx.sym.Variable("data")
    for num_filter in (20, 50):
        x = mx.sym.Convolution(x, kernel=(5, 5), num_filter=num_filter)
        x = mx.sym.Activation(x, act_type="tanh")
        x = mx.sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2))
    x = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=500), act_type="tanh")
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes), name="softmax")


def alexnet(num_classes: int = 1000):
    """AlexNet: convolutions `conv1` (11x11 stride 4) ... `conv5` with bias and ReLU; after the ReLU of conv1
    and conv2 a local response normalisation (alpha 1e-4, beta 0.75, knorm 2, nsize 5) and then 3x3 stride-2
    max-pooling; max-pooling after conv5; `fc1`, `fc2` (4096, ReLU, dropout 0.5), `fc3`. Only the
    convolutions and classifiers are named."""
    def conv_relu(x, name, num_filter, kernel, stride=1, pad=0):
        x = mx.sym.Convolution(x, kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad),
                               num_filter=num_filter, name=name)
        return mx.sym.Activation(x, act_type="relu")

    def lrn_pool(x):
        x = mx.sym.LRN(x, alpha=0.0001, beta=0.75, knorm=2, nsize=5)
        return mx.sym.Pooling(x, pool_type="max", kernel=(3, 3), stride=(2, 2))

    x = lrn_pool(conv_relu(mx.sym.Variable("data"), "conv1", 96, 11, 4))
    x = lrn_pool(conv_relu(x, "conv2", 256, 5, pad=2))
    for name, num_filter in (("conv3", 384), ("conv4", 384), ("conv5", 256)):
        x = conv_relu(x, name, num_filter, 3, pad=1)
    x = mx.sym.Flatten(mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max"))
    for name in ("fc1", "fc2"):
        x = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=4096, name=name), act_type="relu")
        x = mx.sym.Dropout(x, p=0.5)
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes, name="fc3"), name="softmax")


VGG_SPEC = {11: [1, 1, 2, 2, 2], 13: [2, 2, 2, 2, 2], 16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}


def vgg(num_classes: int = 1000, num_layers: int = 16, batch_norm: bool = False):
    """VGG: 3x3 convolutions `conv<stage>_<i>` (pad 1, with bias), with `batch_norm` a BatchNorm
    `bn<stage>_<i>` of MXNet's defaults (fixed gamma, eps 1e-3), ReLU `relu<stage>_<i>`; 2x2 max-pooling
    `pool<stage>`; `fc6`, `fc7` (4096, ReLU, dropout 0.5 `drop6`, `drop7`), `fc8`."""
    x = mx.sym.Variable("data")
    widths = [64, 128, 256, 512, 512]
    for stage, (num_convs, num_filter) in enumerate(zip(VGG_SPEC[num_layers], widths), start=1):
        for i in range(1, num_convs + 1):
            x = mx.sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=num_filter,
                                   name=f"conv{stage}_{i}")
            if batch_norm:
                x = mx.sym.BatchNorm(x, name=f"bn{stage}_{i}")
            x = relu(x, f"relu{stage}_{i}")
        x = mx.sym.Pooling(x, pool_type="max", kernel=(2, 2), stride=(2, 2), name=f"pool{stage}")
    x = mx.sym.Flatten(x, name="flatten")
    for n in (6, 7):
        x = mx.sym.FullyConnected(x, num_hidden=4096, name=f"fc{n}")
        x = mx.sym.Dropout(relu(x, f"relu{n}"), p=0.5, name=f"drop{n}")
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes, name="fc8"), name="softmax")


def googlenet(num_classes: int = 1000):
    """GoogLeNet: units `conv_<name>` (with bias) and ReLU `relu_<name>`, no BatchNorm; inception blocks
    `in3a` ... `in5b` of 1x1, 3x3, 5x5 and max-pool + 1x1 towers; unnamed 3x3 stride-2 max-poolings; 7x7
    stride-1 average pooling (so 256x256 inputs: at 224 MXNet's shapes do not fit); the classifier unnamed
    (`fullyconnected0`)."""
    def unit(x, name, num_filter, kernel=1, stride=1, pad=0):
        x = mx.sym.Convolution(x, num_filter=num_filter, kernel=(kernel, kernel), stride=(stride, stride),
                               pad=(pad, pad), name=f"conv_{name}")
        return relu(x, f"relu_{name}")

    def inception(x, name, n1x1, n3x3r, n3x3, n5x5r, n5x5, proj):
        c1x1 = unit(x, f"{name}_1x1", n1x1)
        c3x3 = unit(unit(x, f"{name}_3x3_reduce", n3x3r), f"{name}_3x3", n3x3, 3, 1, 1)
        c5x5 = unit(unit(x, f"{name}_5x5_reduce", n5x5r), f"{name}_5x5", n5x5, 5, 1, 2)
        pool = mx.sym.Pooling(x, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="max",
                              name=f"max_pool_{name}_pool")
        return mx.sym.Concat(c1x1, c3x3, c5x5, unit(pool, f"{name}_proj", proj),
                             name=f"ch_concat_{name}_chconcat")

    def max_pool(x):
        return mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max")

    x = max_pool(unit(mx.sym.Variable("data"), "conv1", 64, 7, 2, 3))
    x = max_pool(unit(unit(x, "conv2", 64), "conv3", 192, 3, 1, 1))
    x = max_pool(inception(inception(x, "in3a", 64, 96, 128, 16, 32, 32), "in3b", 128, 128, 192, 32, 96, 64))
    for spec in (("in4a", 192, 96, 208, 16, 48, 64), ("in4b", 160, 112, 224, 24, 64, 64),
                 ("in4c", 128, 128, 256, 24, 64, 64), ("in4d", 112, 144, 288, 32, 64, 64),
                 ("in4e", 256, 160, 320, 32, 128, 128)):
        x = inception(x, *spec)
    x = max_pool(x)
    x = inception(inception(x, "in5a", 256, 160, 320, 32, 128, 128), "in5b", 384, 192, 384, 48, 128, 128)
    x = mx.sym.Flatten(mx.sym.Pooling(x, kernel=(7, 7), stride=(1, 1), pool_type="avg"))
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes), name="softmax")


def inception_v4(num_classes: int = 1000):
    """Inception-v4 for 299x299 inputs: units `<block>_<conv>_conv2d` (no bias), `_batchnorm` (MXNet's
    defaults: fixed gamma, eps 1e-3), `_relu`, with the example's names (`in_stem_conv1_3*3`, `in1B_conv5_1*7`
    for a 7x1 kernel); stride-1 average poolings pad by 1; 8x8 average pooling `global_avgpool` padded by 1
    (3x3 positions left); dropout 0.2; `fc1`."""
    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    def unit(x, name, num_filter, kernel=1, stride=1, pad=0):
        x = mx.sym.Convolution(x, num_filter=num_filter, kernel=pair(kernel), stride=pair(stride),
                               pad=pair(pad), no_bias=True, name=name + "_conv2d")
        return relu(mx.sym.BatchNorm(x, name=name + "_batchnorm", fix_gamma=True), name + "_relu")

    def chain(x, name, *units):  # units: (conv name, num_filter[, kernel, stride, pad])
        for conv, *spec in units:
            x = unit(x, f"{name}_{conv}", *spec)
        return x

    def max_pool(x, name):
        return mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name=name)

    def avg_pool(x, name):
        return mx.sym.Pooling(x, kernel=(3, 3), pad=(1, 1), pool_type="avg", name=name)

    row7, col7 = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))  # (kernel, stride, pad)
    row3, col3 = ((1, 3), 1, (0, 1)), ((3, 1), 1, (1, 0))

    def stem(x, n):
        x = chain(x, n, ("conv1_3*3", 32, 3, 2), ("conv2_3*3", 32, 3), ("conv3_3*3", 64, 3, 1, 1))
        x = mx.sym.Concat(max_pool(x, f"{n}_maxpool_1"), unit(x, f"{n}_conv4_3*3", 96, 3, 2),
                          name=f"{n}_concat_1")
        x = mx.sym.Concat(chain(x, n, ("conv5_1*1", 64), ("conv6_3*3", 96, 3)),
                          chain(x, n, ("conv7_1*1", 64), ("conv8_7*1", 64, *col7), ("conv9_1*7", 64, *row7),
                                ("conv10_3*3", 96, 3)), name=f"{n}_concat_2")
        return mx.sym.Concat(unit(x, f"{n}_conv11_3*3", 192, 3, 2), max_pool(x, f"{n}_maxpool_2"),
                             name=f"{n}_concat_3")

    def block_a(x, n):
        return mx.sym.Concat(
            unit(avg_pool(x, f"{n}_avgpool_1"), f"{n}_conv1_1*1", 96), unit(x, f"{n}_conv2_1*1", 96),
            chain(x, n, ("conv3_1*1", 64), ("conv4_3*3", 96, 3, 1, 1)),
            chain(x, n, ("conv5_1*1", 64), ("conv6_3*3", 96, 3, 1, 1), ("conv7_3*3", 96, 3, 1, 1)),
            name=f"{n}_concat_1")

    def reduction_a(x, n):
        return mx.sym.Concat(
            max_pool(x, f"{n}_maxpool_1"), unit(x, f"{n}_conv1_3*3", 384, 3, 2),
            chain(x, n, ("conv2_1*1", 192), ("conv3_3*3", 224, 3, 1, 1), ("conv4_3*3", 256, 3, 2)),
            name=f"{n}_concat_1")

    def block_b(x, n):
        return mx.sym.Concat(
            unit(avg_pool(x, f"{n}_avgpool_1"), f"{n}_conv1_1*1", 128), unit(x, f"{n}_conv2_1*1", 384),
            chain(x, n, ("conv3_1*1", 192), ("conv4_1*7", 224, *row7), ("conv5_1*7", 256, *col7)),
            chain(x, n, ("conv6_1*1", 192), ("conv7_1*7", 192, *row7), ("conv8_7*1", 224, *col7),
                  ("conv9_1*7", 224, *row7), ("conv10_7*1", 256, *col7)),
            name=f"{n}_concat_1")

    def reduction_b(x, n):
        return mx.sym.Concat(
            max_pool(x, f"{n}_maxpool_1"), chain(x, n, ("conv1_1*1", 192), ("conv2_3*3", 192, 3, 2)),
            chain(x, n, ("conv3_1*1", 256), ("conv4_1*7", 256, *row7), ("conv5_7*1", 320, *col7),
                  ("conv6_3*3", 320, 3, 2)),
            name=f"{n}_concat_1")

    def block_c(x, n):  # in the example's order of creation, which is the order of the parameters
        c1 = unit(avg_pool(x, f"{n}_avgpool_1"), f"{n}_conv1_1*1", 256)
        c2 = unit(x, f"{n}_conv2_1*1", 256)
        c3 = unit(x, f"{n}_conv3_1*1", 384)
        c3_1, c3_2 = unit(c3, f"{n}_conv4_3*1", 256, *row3), unit(c3, f"{n}_conv5_1*3", 256, *col3)
        c4 = chain(x, n, ("conv6_1*1", 384), ("conv7_1*3", 448, *row3), ("conv8_3*1", 512, *col3))
        c4_1, c4_2 = unit(c4, f"{n}_conv9_1*3", 256, *col3), unit(c4, f"{n}_conv10_3*1", 256, *row3)
        return mx.sym.Concat(c1, c2, c3_1, c3_2, c4_1, c4_2, name=f"{n}_concat")

    x = stem(mx.sym.identity(mx.sym.Variable("data"), name="id"), "in_stem")
    for i in range(1, 5):
        x = block_a(x, f"in{i}A")
    x = reduction_a(x, "re1A")
    for i in range(1, 8):
        x = block_b(x, f"in{i}B")
    x = reduction_b(x, "re1B")
    for i in range(1, 4):
        x = block_c(x, f"in{i}C")
    x = mx.sym.Pooling(x, kernel=(8, 8), pad=(1, 1), pool_type="avg", name="global_avgpool")
    x = mx.sym.Flatten(mx.sym.Dropout(x, p=0.2), name="flatten")
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes, name="fc1"), name="softmax")


def inception_resnet_v2(num_classes: int = 1000):
    """Inception-ResNet-v2, every layer unnamed: units of a Convolution with bias (`convolution<n>`), a
    BatchNorm of MXNet's defaults (`batchnorm<n>`: fixed gamma, eps 1e-3) and ReLU; residual blocks add
    `scale` times a linear 1x1 unit to their input (10 x block35 at 0.17, 20 x block17 at 0.1 with the
    example's 129 channels and (1, 2)/(2, 1) paddings, 9 x block8 at 0.2 and one more without the final
    ReLU); global average pooling, dropout 0.2, the classifier `fullyconnected0`."""
    def unit(x, num_filter, kernel, stride=(1, 1), pad=(0, 0), act=True):
        x = mx.sym.Convolution(x, num_filter=num_filter, kernel=kernel, stride=stride, pad=pad)
        x = mx.sym.BatchNorm(x)
        return mx.sym.Activation(x, act_type="relu") if act else x

    def residual(net, channels, towers, scale, act=True):
        out = unit(mx.sym.Concat(*towers), channels, (1, 1), act=False)
        net = net + scale * out
        return mx.sym.Activation(net, act_type="relu") if act else net

    def block35(net):
        t0 = unit(net, 32, (1, 1))
        t1 = unit(unit(net, 32, (1, 1)), 32, (3, 3), pad=(1, 1))
        t2 = unit(unit(unit(net, 32, (1, 1)), 48, (3, 3), pad=(1, 1)), 64, (3, 3), pad=(1, 1))
        return residual(net, 320, (t0, t1, t2), 0.17)

    def block17(net):
        t0 = unit(net, 192, (1, 1))
        t1 = unit(unit(unit(net, 129, (1, 1)), 160, (1, 7), pad=(1, 2)), 192, (7, 1), pad=(2, 1))
        return residual(net, 1088, (t0, t1), 0.1)

    def block8(net, scale=0.2, act=True):
        t0 = unit(net, 192, (1, 1))
        t1 = unit(unit(unit(net, 192, (1, 1)), 224, (1, 3), pad=(0, 1)), 256, (3, 1), pad=(1, 0))
        return residual(net, 2080, (t0, t1), scale, act)

    def max_pool(x):
        return mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max")

    x = unit(mx.sym.Variable("data"), 32, (3, 3), (2, 2))
    x = max_pool(unit(unit(x, 32, (3, 3)), 64, (3, 3), pad=(1, 1)))
    x = max_pool(unit(unit(x, 80, (1, 1)), 192, (3, 3)))
    t0 = unit(x, 96, (1, 1))
    t1 = unit(unit(x, 48, (1, 1)), 64, (5, 5), pad=(2, 2))
    t2 = unit(unit(unit(x, 64, (1, 1)), 96, (3, 3), pad=(1, 1)), 96, (3, 3), pad=(1, 1))
    t3 = unit(mx.sym.Pooling(x, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg"), 64, (1, 1))
    x = mx.sym.Concat(t0, t1, t2, t3)
    for _ in range(10):
        x = block35(x)
    t0 = unit(x, 384, (3, 3), (2, 2))
    t1 = unit(unit(unit(x, 256, (1, 1)), 256, (3, 3), pad=(1, 1)), 384, (3, 3), (2, 2))
    x = mx.sym.Concat(t0, t1, max_pool(x))
    for _ in range(20):
        x = block17(x)
    t0 = unit(unit(x, 256, (1, 1)), 384, (3, 3), (2, 2))
    t1 = unit(unit(x, 256, (1, 1)), 288, (3, 3), (2, 2))
    t2 = unit(unit(unit(x, 256, (1, 1)), 288, (3, 3), pad=(1, 1)), 320, (3, 3), (2, 2))
    x = mx.sym.Concat(t0, t1, t2, max_pool(x))
    for _ in range(9):
        x = block8(x)
    x = unit(block8(x, 1.0, act=False), 1536, (1, 1))
    x = mx.sym.Pooling(x, kernel=(1, 1), global_pool=True, stride=(2, 2), pool_type="avg")
    x = mx.sym.Dropout(mx.sym.Flatten(x), p=0.2)
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=num_classes), name="softmax")


def mobilenetv2(num_classes: int = 1000, multiplier: float = 1.0):
    """MobileNetV2 (224x224 configuration): units `<prefix>-conv2d` (no bias), `<prefix>-batchnorm` (gamma
    used, eps 1e-5) and ReLU6 as `clip(0, 6)` `<prefix>-relu6`; sequences `seq-<i>` of inverted residual
    blocks `-block<j>` (`-exp`, `-depthwise`, linear `-linear`; every block but the first adds its input,
    `-shortcut`); `last-1x1-conv` of 1280 channels (times `multiplier` above 1); global average pooling
    `global_pool`; `fc`."""
    def unit(x, prefix, num_filter, kernel=1, stride=1, pad=0, num_group=1, act=True):
        x = mx.sym.Convolution(x, num_filter=num_filter, kernel=(kernel, kernel), num_group=num_group,
                               stride=(stride, stride), pad=(pad, pad), no_bias=True, name=f"{prefix}-conv2d")
        x = mx.sym.BatchNorm(x, name=f"{prefix}-batchnorm", fix_gamma=False, use_global_stats=False, eps=1e-5)
        return mx.sym.clip(x, 0, 6, name=f"{prefix}-relu6") if act else x

    channels = int(round(32 * multiplier))
    x = unit(mx.sym.Variable("data"), "first-3x3-conv", channels, 3, 2, 1)
    sequences = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1)]  # expansion t, channels c, blocks n, first stride s
    for i, (t, c, n, s) in enumerate(sequences):
        out = int(round(c * multiplier))
        for j in range(n):
            prefix = f"seq-{i}-block{j}"
            expanded = int(round(channels * t))
            y = unit(x, f"{prefix}-exp", expanded)
            y = unit(y, f"{prefix}-depthwise", expanded, 3, s if j == 0 else 1, 1, num_group=expanded)
            y = unit(y, f"{prefix}-linear", out, act=False)
            x = mx.sym.elemwise_add(x, y, name=f"{prefix}-shortcut") if j > 0 else y
            channels = out
    x = unit(x, "last-1x1-conv", int(1280 * multiplier) if multiplier > 1.0 else 1280)
    x = mx.sym.Pooling(x, kernel=(7, 7), stride=(1, 1), pool_type="avg", name="global_pool", global_pool=True)
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=num_classes, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def get_symbol(family: str, num_layers: int | None = None, num_classes: int = 1000, num_group: int = 32,
               height: int = 224, **options):
    """The graph of `family` (a name of symbols/__init__.py's FAMILIES) as the example's `get_symbol` builds
    it for images `height` pixels high, under a fresh name manager. `height` picks the CIFAR layout of the
    ResNets (up to 28 pixels, 32 for ResNeXt: 6n+2 basic or 9n+2 >= 164 bottleneck depths), the small
    Inception-BN (up to 28) and MobileNet's pooling (height / 32); Inception-v3 and v4 want 299. `options`:
    `batch_norm` (vgg), `alpha` (mobilenet), `multiplier` (mobilenetv2), `classifier` (inception-bn: the
    classifier's name, default `fc1`; None for the example's `fullyconnected0`)."""
    with mx.name.NameManager():
        if family == "mlp":
            return mlp(num_classes)
        if family == "lenet":
            return lenet(num_classes)
        if family == "alexnet":
            return alexnet(num_classes)
        if family == "vgg":
            return vgg(num_classes, num_layers, bool(options.get("batch_norm", False)))
        if family == "googlenet":
            return googlenet(num_classes)
        if family == "inception-bn":
            return inception_bn(num_classes, small=height <= 28, classifier=options.get("classifier", "fc1"))
        if family == "inception-v3":
            return inception_v3(num_classes)
        if family == "inception-v4":
            return inception_v4(num_classes)
        if family == "inception-resnet-v2":
            return inception_resnet_v2(num_classes)
        if family == "mobilenet":
            return mobilenet(num_classes, options.get("alpha", 1.0), height)
        if family == "mobilenetv2":
            return mobilenetv2(num_classes, options.get("multiplier", 1.0))
        if family in ("resnet", "resnet-v1", "resnext"):
            return resnet(family, num_layers, num_classes, num_group, height)
    raise ValueError(f"no MXNet graph of {family}")


def resnet(family: str, num_layers: int, num_classes: int = 1000, num_group: int = 32, height: int = 224):
    """ResNet v2 (`resnet`), v1 (`resnet-v1`) or ResNeXt (`resnext`, bottlenecks of `num_group` groups), the
    CIFAR layout (3x3 `conv0`, three stages of 16/32/64 or 64/128/256 channels) for images up to 28 pixels
    high (32 for ResNeXt), the ImageNet layout above."""
    if height <= (32 if family == "resnext" else 28):
        if num_layers >= 164 and (num_layers - 2) % 9 == 0:
            units, filters, bottle_neck = [(num_layers - 2) // 9] * 3, [16, 64, 128, 256], True
        elif num_layers < 164 and (num_layers - 2) % 6 == 0:
            units, filters, bottle_neck = [(num_layers - 2) // 6] * 3, [16, 16, 32, 64], False
        else:
            raise ValueError(f"no CIFAR ResNet has {num_layers} layers")
        cifar = True
    else:
        units, bottle_neck, cifar = UNITS[num_layers], num_layers >= 50, False
        filters = [64, 256, 512, 1024, 2048] if bottle_neck else [64, 64, 128, 256, 512]
    x = mx.sym.Variable("data")
    if family != "resnext":
        x = mx.sym.identity(x, name="id")
    if family != "resnet-v1":
        x = bn(x, "bn_data", fix_gamma=True)
    if cifar:
        x = conv(x, "conv0", filters[0], 3, 1, 1)
        if family == "resnet-v1":
            x = bn(x, "bn0")  # no ReLU: the example's CIFAR stem
    else:
        x = relu(bn(conv(x, "conv0", filters[0], 7, 2, 3), "bn0"), "relu0")
        x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max", name="pool0")
    for i, num_units in enumerate(units):
        for j in range(num_units):
            name, stride = f"stage{i + 1}_unit{j + 1}", (2 if i > 0 and j == 0 else 1)
            if family == "resnet":
                x = preact_unit(x, name, filters[i + 1], stride, j == 0, bottle_neck)
            elif family == "resnet-v1":
                x = postact_unit(x, name, filters[i + 1], stride, j == 0, bottle_neck, 1, ("_conv1sc", "_sc"))
            else:
                x = postact_unit(x, name, filters[i + 1], stride, j == 0, bottle_neck, num_group,
                                 ("_sc", "_sc_bn"))
    if family == "resnet":
        x = relu(bn(x, "bn1"), "relu1")
    x = mx.sym.Pooling(x, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=num_classes, name="fc1")
    return mx.sym.SoftmaxOutput(x, name="softmax")
