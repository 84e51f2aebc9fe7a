"""MXNet graphs of ResNet v2, ResNet v1, ResNeXt, MobileNet, Inception-BN and Inception-v3 with the layer names,
attributes and numerics of MXNet's `example/image-classification/symbols/`, imported only under a Python that
has MXNet 1.9.1: by checks/check_mxnet_logits.py, which checks our import of them, and as `checks.mxnet_graphs`
by benchmarks/bench_score.py and bench_cifar10.py, which time MXNet on them. The pip package of MXNet does not
ship those example files, so the graphs are written out here from their published structure."""
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


def mobilenet(num_classes: int = 1000):
    """MobileNet v1 (alpha 1) for 224x224 inputs: units `conv_<i>[_dw]` of convolution `_conv2d`, BatchNorm
    `_batchnorm` (MXNet's defaults: fixed gamma, eps 1e-3) and ReLU; 7x7 average pooling; `fc`."""
    def unit(x, name, num_filter, kernel, stride, pad, num_group=1):
        x = conv(x, name + "_conv2d", num_filter, kernel, stride, pad, num_group)
        return relu(bn(x, name + "_batchnorm", fix_gamma=True, eps=1e-3), name + "_relu")

    x = unit(mx.sym.Variable("data"), "conv_1", 32, 3, 2, 1)
    channels = 32
    plan = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
    for i, (stride, width) in enumerate(plan, start=2):
        x = unit(x, f"conv_{i}_dw", channels, 3, stride, 1, num_group=channels)
        x = unit(x, f"conv_{i}", width, 1, 1, 0)
        channels = width
    x = mx.sym.Pooling(x, kernel=(7, 7), stride=(1, 1), pool_type="avg", name="pool6")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=num_classes, name="fc")
    return mx.sym.SoftmaxOutput(x, name="softmax")


def inception_bn(num_classes: int = 1000):
    """Inception-BN for 224x224 inputs: units `conv_<name>` (with bias), `bn_<name>` (eps 1e-10 + 1e-5, gamma
    used), ReLU. The classifier is named `fc1` here, as in the zoo's Inception-BN, where MXNet 1.9.1's example
    leaves it `fullyconnected0`: the importer loads either into the network's output layer."""
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
    x = mx.sym.FullyConnected(mx.sym.Flatten(x, name="flatten"), num_hidden=num_classes, name="fc1")
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


def get_symbol(family: str, num_layers: int | None, num_classes: int = 1000, num_group: int = 32):
    """`family`: resnet (v2), resnet-v1 or resnext (ImageNet layout, 224x224 inputs), mobilenet,
    inception-bn or inception-v3 (299x299 inputs)."""
    if family == "mobilenet":
        return mobilenet(num_classes)
    if family == "inception-bn":
        return inception_bn(num_classes)
    if family == "inception-v3":
        return inception_v3(num_classes)
    bottle_neck = num_layers >= 50
    filters = [64, 256, 512, 1024, 2048] if bottle_neck else [64, 64, 128, 256, 512]
    x = mx.sym.Variable("data")
    if family != "resnet-v1":
        x = bn(x, "bn_data", fix_gamma=True)
    x = relu(bn(conv(x, "conv0", filters[0], 7, 2, 3), "bn0"), "relu0")
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max", name="pool0")
    for i, units in enumerate(UNITS[num_layers]):
        for j in range(units):
            name, stride = f"stage{i + 1}_unit{j + 1}", (2 if i > 0 and j == 0 else 1)
            if family == "resnet":
                x = preact_unit(x, name, filters[i + 1], stride, j == 0, bottle_neck)
            elif family == "resnet-v1":
                x = postact_unit(x, name, filters[i + 1], stride, j == 0, bottle_neck, 1, ("_conv1sc", "_sc"))
            else:
                x = postact_unit(x, name, filters[i + 1], stride, j == 0, bottle_neck, num_group, ("_sc", "_sc_bn"))
    if family == "resnet":
        x = relu(bn(x, "bn1"), "relu1")
    x = mx.sym.Pooling(x, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    x = mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=num_classes, name="fc1")
    return mx.sym.SoftmaxOutput(x, name="softmax")
