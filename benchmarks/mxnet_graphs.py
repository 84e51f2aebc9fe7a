"""MXNet graphs of ResNet v2, ResNet v1, ResNeXt, MobileNet and Inception-BN with the layer names, attributes and numerics of MXNet's
`example/image-classification/symbols/` (imported only under a Python that has MXNet 1.9.1, by
check_mxnet_logits.py and bench_score.py). The pip package of MXNet does not ship those example files, so
the graphs are written out here from their published structure."""
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


def get_symbol(family: str, num_layers: int | None, num_classes: int = 1000, num_group: int = 32):
    """`family`: resnet (v2), resnet-v1 or resnext (ImageNet layout, 224x224 inputs), mobilenet or
    inception-bn."""
    if family == "mobilenet":
        return mobilenet(num_classes)
    if family == "inception-bn":
        return inception_bn(num_classes)
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
