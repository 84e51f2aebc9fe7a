"""common/inference.prepare: the prepared network gives the eager network's logits (float32: equal up to
rounding; bfloat16: close, the same top-1 class), for networks whose BatchNorms fold in different places;
the folding itself; and the model handed in is left as it was."""
import copy
import platform

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import inference
from conftest import run_script
from symbols import create_model

CPU = torch.device("cpu")
# (network, options, image side): a pre-activation ResNet (BatchNorms after additions stay), ResNet v1
# (all fold), MobileNet (depthwise convolutions) and Inception-BN (units inside concatenated towers).
NETWORKS = [("resnet", dict(num_layers=18), 64), ("resnet-v1", dict(num_layers=18), 64),
            ("mobilenet", dict(alpha=0.25), 64), ("inception-bn", {}, 28)]


@pytest.fixture(autouse=True)
def malloc_left_alone(monkeypatch):
    """prepare's process-wide malloc setting stays out of the test process (its own test runs apart)."""
    monkeypatch.setattr(inference, "keep_freed_memory", lambda: False)


def trained_looking(name: str, options: dict, side: int) -> nn.Module:
    """The network in eval mode with BatchNorm statistics and affine parameters far from the identity, so
    that a wrong fold shows."""
    torch.manual_seed(0)
    model = create_model(name, 10, image_shape=f"3,{side},{side}", **options).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.5)
    return model


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name,options,side", NETWORKS, ids=[n for n, _, _ in NETWORKS])
def test_prepared_float32_gives_the_eager_logits(name, options, side):
    model = trained_looking(name, options, side)
    x = torch.randn(4, 3, side, side)
    with torch.inference_mode():
        expected = model(x)
        got = inference.prepare(model, CPU, torch.float32, (3, side, side))(x)
    assert got.dtype == torch.float32
    assert relative_error(got, expected) < 1e-4


@pytest.mark.parametrize("name,options,side", NETWORKS[:2], ids=[n for n, _, _ in NETWORKS[:2]])
def test_prepared_bfloat16_gives_close_logits_and_the_same_classes(name, options, side):
    model = trained_looking(name, options, side)
    x = torch.randn(8, 3, side, side)
    with torch.inference_mode():
        expected = model(x)
        got = inference.prepare(model, CPU, torch.bfloat16, (3, side, side))(x)
    assert got.dtype == torch.float32
    assert relative_error(got, expected) < 0.05
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_batchnorms_fold_only_where_a_convolution_feeds_them_alone():
    model = trained_looking("resnet", dict(num_layers=18), 64)
    graph = inference.trace(model)
    # per unit bn2 follows conv1; bn0 follows conv0. bn_data (the input), each unit's bn1 (an addition's
    # output, or the stem's pooling) and the last bn1 stay.
    assert inference.fold_batchnorm(graph) == 8 + 1
    kept = {name for name, m in graph.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert kept == {"bn_data", "bn1"} | {f"stage{s}_unit{u}.bn1" for s in range(1, 5) for u in (1, 2)}


def test_a_convolution_used_or_called_elsewhere_keeps_its_batchnorm():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y + self.bn(self.conv(y))  # conv's output used twice; conv called twice

    model = Shared().eval()
    model.bn.running_mean.fill_(0.5)
    graph = inference.trace(model)
    assert inference.fold_batchnorm(graph) == 0
    x = torch.randn(2, 3, 4, 4)
    with torch.inference_mode():
        assert torch.allclose(graph(x), model(x))


def test_prepare_leaves_the_model_as_it_was():
    model = trained_looking("resnet", dict(num_layers=18), 64)
    before = copy.deepcopy(model.state_dict())
    inference.prepare(model, CPU, torch.float32, (3, 64, 64))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_a_network_that_cannot_be_traced_is_scored_as_it_is():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            x = x.mean((2, 3))
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    model = DataDependent().eval()
    assert inference.trace(model) is None
    x = torch.randn(2, 3, 4, 4)
    with torch.inference_mode():
        assert torch.allclose(inference.prepare(model, CPU, torch.float32, (3, 4, 4))(x), model(x))


def test_relu_runs_in_place_only_on_a_fresh_tensor_used_once():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            y = self.conv(x)
            return F.relu(self.conv(x)) + F.relu(y) + y + F.relu(x)  # only the first may run in place

    model = Shared().eval()
    graph = inference.trace(model)
    assert inference.inplace_relu(graph) == 1
    x = torch.randn(2, 3, 4, 4)
    with torch.inference_mode():
        expected = model(x)
        assert torch.allclose(graph(x), expected)


def test_compiled_pads_a_smaller_batch_to_the_size_it_was_compiled_for(monkeypatch):
    shapes = []

    def fake_compile(model, **options):
        assert options["options"] == {"freezing": True}

        def compiled(x):
            shapes.append(tuple(x.shape))
            return model(x)
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = trained_looking("resnet", dict(num_layers=18), 64)
    prepared = inference.prepare(model, CPU, torch.float32, (3, 64, 64), compile=True)
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = model(x)
        prepared(x)
        last = prepared(x[:3])
    assert shapes == [(4, 3, 64, 64)] * 2
    assert last.shape == (3, 10) and relative_error(last, expected[:3]) < 1e-4


def test_a_failed_compilation_scores_uncompiled(monkeypatch, caplog):
    def broken_compile(model, **options):
        def compiled(x):
            raise RuntimeError("no C++ compiler\nmore detail")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = trained_looking("resnet", dict(num_layers=18), 64)
    prepared = inference.prepare(model, CPU, torch.float32, (3, 64, 64), compile=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        assert relative_error(prepared(x), expected) < 1e-4
        assert relative_error(prepared(x[:1]), expected[:1]) < 1e-4
    assert "torch.compile failed, scoring uncompiled: no C++ compiler" in caplog.text


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_memory_is_kept_with_glibc():
    done = run_script("-c", "from common import inference; print(inference.keep_freed_memory())")
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
