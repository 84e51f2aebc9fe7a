"""The network zoo: every family and variant against MXNet's parameter lists and counts, and its numerics.

Reference lists: tests/data/mxnet-params/<network>.txt (`arg|aux name shape`, as MXNet 1.9.1 builds
them; see the README there). Parameter counts are MXNet's arguments (running statistics not included);
the figures without a reference list are torchvision's for the same architecture where one exists, else
pinned."""
from __future__ import annotations

import argparse
import ast
import os

import pytest
import torch
import torch.nn.functional as F

import symbols
from common.checkpoint import mxnet_names
from common.cli import parse_image_shape
from symbols.layers import BatchNorm

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mxnet-params")
# What training scripts pass besides the network's own options: get_symbol must ignore it.
CLI_EXTRAS = dict(gpus="", lr=0.1, kv_store="device", num_epochs=1, dtype="float32")


# network, its options, native image shape, classes, parameter count, MXNet reference list, and the image
# shape of the real training step (None: too slow to run here). The native size is checked on the meta
# device (shapes only, no arithmetic); the real step runs at a smaller size wherever the network allows.
VARIANTS = [
    ("alexnet", {}, "3,224,224", 1000, 50_844_008, "alexnet", "3,224,224"),
    ("vgg", {"num_layers": 11}, "3,224,224", 1000, 132_863_336, None, "3,32,32"),
    ("vgg", {"num_layers": 13}, "3,224,224", 1000, 133_047_848, None, "3,32,32"),
    ("vgg", {"num_layers": 16}, "3,224,224", 1000, 138_357_544, "vgg_16", "3,32,32"),
    ("vgg", {"num_layers": 19}, "3,224,224", 1000, 143_667_240, None, "3,32,32"),
    ("vgg", {"num_layers": 11, "batch_norm": 1}, "3,224,224", 1000, 132_868_840, None, "3,32,32"),
    ("vgg", {"num_layers": 16, "batch_norm": 1}, "3,224,224", 1000, 138_365_992, None, "3,32,32"),
    ("googlenet", {}, "3,224,224", 1000, 6_998_552, "googlenet", "3,64,64"),
    ("inception-bn", {}, "3,224,224", 1000, 11_295_240, "inception-bn", "3,224,224"),
    ("inception-bn", {}, "3,28,28", 10, 1_652_826, None, "3,28,28"),
    ("inception-v3", {}, "3,299,299", 1000, 23_834_568, "inception-v3", "3,299,299"),
    ("inception-v4", {}, "3,299,299", 1000, 54_967_816, "inception-v4", "3,299,299"),
    ("inception-resnet-v2", {}, "3,299,299", 1000, 56_009_476, "inception-resnet-v2", "3,107,107"),
    ("resnet", {"num_layers": 18}, "3,224,224", 1000, 11_691_950, "resnet_18", "3,64,64"),
    ("resnet", {"num_layers": 34}, "3,224,224", 1000, 21_800_110, "resnet_34", "3,64,64"),
    ("resnet", {"num_layers": 50}, "3,224,224", 1000, 25_549_486, "resnet_50", "3,64,64"),
    ("resnet", {"num_layers": 101}, "3,224,224", 1000, 44_541_614, "resnet_101", "3,64,64"),
    ("resnet", {"num_layers": 152}, "3,224,224", 1000, 60_185_262, "resnet_152", "3,64,64"),
    ("resnet", {"num_layers": 200}, "3,224,224", 1000, 64_666_286, None, "3,64,64"),
    ("resnet", {"num_layers": 269}, "3,224,224", 1000, 102_065_838, None, None),
    ("resnet", {"num_layers": 20}, "3,28,28", 10, 272_544, None, "3,28,28"),
    ("resnet", {"num_layers": 32}, "3,28,28", 10, 466_976, None, "3,28,28"),
    ("resnet", {"num_layers": 44}, "3,28,28", 10, 661_408, None, "3,28,28"),
    ("resnet", {"num_layers": 56}, "3,28,28", 10, 855_840, None, "3,28,28"),
    ("resnet", {"num_layers": 110}, "3,28,28", 10, 1_730_784, "resnet_110", "3,28,28"),
    ("resnet", {"num_layers": 110}, "3,32,32", 10, 1_730_784, "resnet_110", "3,32,32"),  # MXNet raises here
    ("resnet", {"num_layers": 164}, "3,28,28", 10, 1_703_264, "resnet_164", "3,28,28"),
    ("resnet", {"num_layers": 1001}, "3,28,28", 10, 10_327_712, None, None),
    ("resnet-v1", {"num_layers": 18}, "3,224,224", 1000, 11_693_736, None, "3,64,64"),
    ("resnet-v1", {"num_layers": 50}, "3,224,224", 1000, 25_557_032, "resnet-v1_50", "3,64,64"),
    ("resnet-v1", {"num_layers": 101}, "3,224,224", 1000, 44_549_160, None, "3,64,64"),
    ("resnet-v1", {"num_layers": 110}, "3,32,32", 10, 1_731_002, None, "3,32,32"),
    ("resnext", {"num_layers": 50}, "3,224,224", 1000, 25_028_910, "resnext_50", "3,64,64"),
    ("resnext", {"num_layers": 101}, "3,224,224", 1000, 44_177_710, "resnext_101", "3,64,64"),
    ("resnext", {"num_layers": 152}, "3,224,224", 1000, 59_951_406, None, "3,64,64"),
    ("resnext", {"num_layers": 101, "num_group": 64, "width_per_group": 4}, "3,224,224", 1000, 83_455_278,
     None, "3,64,64"),
    ("mobilenet", {}, "3,224,224", 1000, 4_231_976, "mobilenet", "3,64,64"),
    ("mobilenet", {"alpha": 0.25}, "3,224,224", 1000, 470_072, None, "3,64,64"),
    ("mobilenet", {"alpha": 0.5}, "3,224,224", 1000, 1_331_592, None, "3,64,64"),
    ("mobilenet", {"alpha": 0.75}, "3,224,224", 1000, 2_585_560, None, "3,64,64"),
    ("mobilenetv2", {}, "3,224,224", 1000, 3_505_960, "mobilenetv2", "3,64,64"),
    ("mobilenetv2", {"multiplier": 0.5}, "3,224,224", 1000, 1_965_736, None, "3,64,64"),
    ("mobilenetv2", {"multiplier": 1.4}, "3,224,224", 1000, 6_099_079, None, "3,64,64"),
]
IDS = ["-".join([net, *map(str, kw.values()), shape.replace(",", "x")]) for net, kw, shape, *_ in VARIANTS]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are small: a second thread costs more in synchronisation than it gains, many times
    more on a machine shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(network: str, options: dict, image_shape: str, num_classes: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return symbols.create_model(network, num_classes, image_shape=image_shape, **options, **CLI_EXTRAS)


def read_reference(name: str) -> dict[str, tuple[int, ...]]:
    """{'arg:conv0_weight': (64, 3, 7, 7), ...} without the graph's inputs `data` and `softmax_label`."""
    tensors = {}
    with open(os.path.join(REFERENCE_DIR, name + ".txt")) as f:
        for line in f:
            kind, tensor, shape = line.split(" ", 2)
            if tensor not in ("data", "softmax_label"):
                tensors[f"{kind}:{tensor}"] = ast.literal_eval(shape)
    return tensors


def test_registry_has_every_family():
    assert symbols.list_networks() == list(symbols.FAMILIES)


@pytest.mark.parametrize("network, options, image_shape, num_classes, count, reference, step_shape", VARIANTS,
                         ids=IDS)
def test_variant(network, options, image_shape, num_classes, count, reference, step_shape):
    with torch.device("meta"):
        model = build(network, options, image_shape, num_classes)
        assert model(torch.empty(2, *parse_image_shape(image_shape))).shape == (2, num_classes)
    assert sum(p.numel() for p in model.parameters()) == count

    names = mxnet_names(model)
    state = model.state_dict()
    assert len(set(names.values())) == len(names), "two tensors share an MXNet name"
    assert all(key.endswith("num_batches_tracked") for key in set(state) - set(names))
    if reference:
        assert {mx: tuple(state[pt].shape) for pt, mx in names.items()} == read_reference(reference)
    if step_shape is not None:
        check_training_step(network, options, step_shape, num_classes)


def check_training_step(network: str, options: dict, image_shape: str, num_classes: int) -> None:
    """One backward step gives gradients to exactly the trainable tensors; the same seed builds the same
    weights and, with the same input, the same output."""
    model = build(network, options, image_shape, num_classes)
    again = build(network, options, image_shape, num_classes)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    x = torch.randn(1, *parse_image_shape(image_shape))
    outputs = []
    for m in (model, again):
        torch.manual_seed(1)  # the same dropout masks
        outputs.append(m.train()(x))
    assert outputs[0].shape == (1, num_classes)
    assert torch.equal(outputs[0], outputs[1])
    F.cross_entropy(outputs[0], torch.tensor([num_classes - 1])).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("network, options, eps, fix_gamma", [
    ("resnet", {"num_layers": 18}, 2e-5, False),
    ("resnet-v1", {"num_layers": 18}, 2e-5, False),
    ("resnext", {"num_layers": 50}, 2e-5, False),
    ("inception-bn", {}, 1e-10 + 1e-5, False),
    ("inception-v3", {}, 1e-3, True),
    ("inception-v4", {}, 1e-3, True),
    ("inception-resnet-v2", {}, 1e-3, True),
    ("vgg", {"num_layers": 11, "batch_norm": 1}, 1e-3, True),
    ("mobilenet", {}, 1e-3, True),
    ("mobilenetv2", {}, 1e-5, False),
])
def test_batchnorm_settings_follow_mxnet(network, options, eps, fix_gamma):
    model = symbols.create_model(network, 10, **options)
    layers = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    bn_data = layers.pop("bn_data", None)  # the input normalisation of resnet and resnext
    if network in ("resnet", "resnext"):
        assert bn_data.fix_gamma and bn_data.eps == 2e-5
    assert layers and all(isinstance(m, BatchNorm) for m in layers.values())
    assert {(m.eps, m.fix_gamma, m.momentum) for m in layers.values()} == {(eps, fix_gamma, 0.1)}


def test_fix_gamma_computes_with_one_and_never_trains():
    torch.manual_seed(0)
    bn = BatchNorm(4, eps=1e-3, fix_gamma=True)
    with torch.no_grad():
        bn.weight.fill_(5.0)
        bn.bias.fill_(0.5)
    x = torch.randn(8, 4, 3, 3) * 3 + 2
    y = bn(x)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    expected = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-3) + 0.5
    torch.testing.assert_close(y, expected)
    # MXNet's momentum 0.9 keeps 0.9 of the running mean (which starts at 0).
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    y.sum().backward()
    assert bn.weight.grad is None and bn.bias.grad is not None
    bn.eval()
    torch.testing.assert_close(bn(x), (x - bn.running_mean[:, None, None])
                               / torch.sqrt(bn.running_var[:, None, None] + 1e-3) + 0.5)


def test_alexnet_lrn_is_mxnet_formula():
    from symbols.alexnet import lrn
    x = torch.randn(1, 7, 2, 2) * 10
    padded = F.pad(x.pow(2), (0, 0, 0, 0, 2, 2))
    window_sums = torch.stack([padded[:, c:c + 5].sum(1) for c in range(7)], 1)
    torch.testing.assert_close(lrn(x), x / (2 + 1e-4 / 5 * window_sums) ** 0.75)


def test_resnet_layout_follows_image_size():
    # ImageNet depths keep MXNet's layout at 32x32: ImageNet units behind the small 3x3 stem.
    small18 = symbols.create_model("resnet", 10, num_layers=18, image_shape="3,32,32")
    assert small18.conv0.kernel_size == (3, 3) and small18.bn0 is None and hasattr(small18, "stage4_unit2")
    cifar = symbols.create_model("resnet", 10, num_layers=20, image_shape=(3, 32, 32))
    assert cifar.conv0.kernel_size == (3, 3) and not hasattr(cifar, "stage4_unit1")
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("network, options, message", [
    ("resnet", {}, "--num-layers"),
    ("resnet", {"num_layers": 21, "image_shape": "3,28,28"}, "CIFAR ResNet"),
    ("resnet", {"num_layers": 21}, "ImageNet ResNet"),
    ("vgg", {"num_layers": 12}, "11, 13, 16 or 19"),
    ("mobilenet", {"alpha": 0.3}, "alpha"),
    ("mobilenetv2", {"multiplier": 0}, "multiplier"),
    ("alexnet", {"image_shape": "3,224"}, "channels,height,width"),
    ("alexnet", {"image_shape": "3,a,224"}, "channels,height,width"),
])
def test_bad_options_raise_clear_errors(network, options, message):
    with pytest.raises(ValueError, match=message):
        symbols.create_model(network, 10, **options)


def test_network_extras_arguments():
    parser = argparse.ArgumentParser()
    symbols.add_network_args(parser)
    args = parser.parse_args([])
    assert vars(args) == dict(num_group=32, width_per_group=None, batch_norm=0, alpha=1.0, multiplier=1.0)
    args = parser.parse_args("--num-group 64 --width-per-group 4 --batch-norm 1 --alpha 0.5".split())
    model = symbols.create_model("resnext", 10, num_layers=101, image_shape="3,224,224", **vars(args))
    assert model.stage1_unit1.conv2.weight.shape == (256, 4, 3, 3)  # 64 groups of 4 channels: 64x4d
    with pytest.raises(SystemExit):
        parser.parse_args(["--alpha", "0.3"])


# Small members of the structural kinds: nested modules (resnet), flat units with towers (inception-bn),
# flat units with residual objects (mobilenetv2), nested towers (inception-v3 blocks run alone).
SMALL = [("resnet", {"num_layers": 20}, "3,32,32"), ("inception-bn", {}, "3,28,28"),
         ("mobilenetv2", {"multiplier": 0.25}, "3,64,64")]


@pytest.mark.parametrize("network, options, image_shape", SMALL, ids=[s[0] for s in SMALL])
def test_channels_last_gives_the_same_output(network, options, image_shape):
    model = build(network, options, image_shape, 10).eval()
    x = torch.randn(2, *parse_image_shape(image_shape))
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("network, options, image_shape", SMALL, ids=[s[0] for s in SMALL])
def test_compiles_as_one_graph(network, options, image_shape):
    """torch.compile captures forward and backward without graph breaks (the aot_eager backend checks the
    capture without inductor's slow code generation on this CPU)."""
    torch._dynamo.reset()
    model = build(network, options, image_shape, 10)
    x = torch.randn(2, *parse_image_shape(image_shape))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, build(network, options, image_shape, 10)(x), rtol=1e-4, atol=1e-4)


def test_inception_v3_block_compiles_with_inductor():
    from symbols.inception_v3 import block_e
    from symbols.layers import Towers
    torch._dynamo.reset()
    torch.manual_seed(0)
    block = Towers(16, block_e("max")).eval()
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(block)(x), block(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("network, options, layer, std", [
    ("resnet", {"num_layers": 20, "image_shape": "3,28,28"}, "stage1_unit1.conv1", (2 / (16 * 9)) ** 0.5),
    ("alexnet", {}, "conv2", 0.01),
    ("vgg", {"num_layers": 11, "image_shape": "3,32,32"}, "conv3_1", (2 / ((128 + 256) * 9)) ** 0.5),
])
def test_default_initializer_per_network_as_mxnet_fit(network, options, layer, std):
    from common.fit import initialize
    torch.manual_seed(0)
    model = symbols.create_model(network, 10, **options)
    initialize(model, "default", network)
    conv = model.get_submodule(layer)
    assert conv.weight.std().item() == pytest.approx(std, rel=0.1)
    assert conv.bias is None or not conv.bias.any()
