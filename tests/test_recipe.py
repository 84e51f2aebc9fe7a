"""The recipe options: cosine schedule, label smoothing, mixup and CutMix, the weight average (EMA) and
synchronised BatchNorm, each against a hand computation; their bad values as one-line errors."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import fit
from common.ema import WeightAverage
from common.mixup import batch_rng, mix
from conftest import run_script
from symbols.layers import BatchNorm, synchronize_batchnorm
from test_fit import one_line_error, schedule_args


def test_cosine_schedule_at_known_steps():
    args = schedule_args(lr=0.4, lr_step_epochs="cosine", warmup_epochs=1, num_epochs=5)
    lr = [fit.learning_rate(args, step, steps_per_epoch=10) for step in range(50)]
    assert lr[:10] == pytest.approx([0.04 * (i + 1) for i in range(10)])  # warm-up to 0.4
    assert lr[10] == pytest.approx(0.4)                                    # the cosine starts at --lr
    assert lr[20] == pytest.approx(0.4 * (1 + math.cos(math.pi / 4)) / 2)  # a quarter of 40 steps
    assert lr[30] == pytest.approx(0.2)                                    # half way
    assert lr[40] == pytest.approx(0.4 * (1 + math.cos(3 * math.pi / 4)) / 2)
    assert lr[49] == pytest.approx(0.4 * (1 + math.cos(math.pi * 39 / 40)) / 2)
    assert fit.learning_rate(args, 50, 10) == pytest.approx(0.0, abs=1e-12)  # 0 at the end
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_label_smoothing_loss_against_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 2])
    log_p = logits - torch.logsumexp(logits, 1, keepdim=True)
    e = 0.3  # target: 1 - e + e/3 on the label, e/3 on the others
    by_hand = -sum((1 - e) * log_p[i, labels[i]] + e / 3 * log_p[i].sum() for i in range(2)) / 2
    assert fit.training_loss(logits, labels, None, e).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert fit.training_loss(logits, labels, None, 0.0).item() == pytest.approx(
        -(log_p[0, 0] + log_p[1, 2]).item() / 2, rel=1e-6)


@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixed_targets_sum_to_one_and_weigh_the_two_labels(mixup, cutmix):
    images, labels = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    for step in range(20):
        mixed = mix(images, labels, mixup, cutmix, batch_rng(0, step, 0))
        targets = mixed.targets(7, smoothing=0.1)
        assert torch.allclose(targets.sum(1), torch.ones(6))
        assert 0 <= mixed.lam <= 1
        # image i is mixed with image 5 - i: its target weighs label i by lam, label 5 - i by 1 - lam
        for i in range(6):
            assert targets[i, i].item() == pytest.approx(0.9 * mixed.lam + 0.1 / 7, abs=1e-6)
            assert targets[i, 5 - i].item() == pytest.approx(0.9 * (1 - mixed.lam) + 0.1 / 7, abs=1e-6)
        assert torch.equal(mixed.dominant_labels, labels if mixed.lam >= 0.5 else labels.flip(0))


def test_cutmix_pastes_a_box_whose_area_is_one_minus_lam():
    images = torch.zeros(2, 1, 16, 16)
    images[1] = 1.0
    mixed = mix(images, torch.tensor([0, 1]), 0.0, 1.0, batch_rng(3, 7, 0))
    pasted = mixed.images[0].sum().item()  # image 0 is zeros; what it holds of image 1 counts ones
    assert pasted == pytest.approx((1 - mixed.lam) * 256)
    assert mixed.images[1].sum().item() == pytest.approx(mixed.lam * 256)


@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0)])
def test_a_batch_of_one_image_repeated_is_unchanged_by_mixing(mixup, cutmix):
    images = torch.randn(1, 3, 8, 8).expand(4, 3, 8, 8).contiguous()
    labels = torch.full((4,), 2)
    mixed = mix(images, labels, mixup, cutmix, batch_rng(1, 2, 0))
    assert torch.allclose(mixed.images, images, atol=1e-6)
    assert torch.equal(mixed.targets(5), F.one_hot(labels, 5).float())


def test_mixing_draws_depend_only_on_seed_step_and_rank():
    images, labels = torch.randn(4, 3, 8, 8), torch.arange(4)
    a, b = (mix(images, labels, 0.4, 1.0, batch_rng(5, 100, 1)) for _ in range(2))
    assert a.lam == b.lam and torch.equal(a.images, b.images)
    assert mix(images, labels, 0.4, 1.0, batch_rng(5, 101, 1)).lam != a.lam


def test_weight_average_after_n_steps_against_a_hand_computation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    average = WeightAverage(net, decay=0.9)
    values = [float(v) for v in (1.0, -2.0, 0.5, 4.0)]
    for v in values:  # each "step" sets every tensor of the network to v (the counter to 7)
        with torch.no_grad():
            for name, t in net.state_dict().items():
                t.fill_(7 if name.endswith("num_batches_tracked") else v)
        average.update()
    for name, t in average.module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert t.item() == 7  # copied, not averaged
            continue
        expected = start[name] * 0.9 ** 4 + sum(0.1 * 0.9 ** (3 - k) * v for k, v in enumerate(values))
        assert torch.allclose(t, expected, atol=1e-6), name
    assert not any(p.requires_grad for p in average.module.parameters())


def sync_bn_worker(rank: int, init_file: str, out: str) -> None:
    """One of two gloo processes: its half of the batch through a synchronised BatchNorm, forward and
    backward of a fixed weighting of the outputs; saves output, gradients and running statistics."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    x, weights, bn = sync_bn_case()
    synchronize_batchnorm(bn)
    half = x[4 * rank: 4 * rank + 4].clone().requires_grad_(True)
    y = bn(half)
    (y * weights[4 * rank: 4 * rank + 4]).sum().backward()
    torch.save({"y": y.detach(), "dx": half.grad, "dgamma": bn.weight.grad, "dbeta": bn.bias.grad,
                "mean": bn.running_mean, "var": bn.running_var}, f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def sync_bn_case() -> tuple[torch.Tensor, torch.Tensor, BatchNorm]:
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1) + 2
    weights = torch.randn(8, 3, 5, 5)
    bn = BatchNorm(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return x, weights, bn


def test_sync_bn_in_two_gloo_processes_equals_one_process_on_the_whole_batch(tmp_path):
    out = str(tmp_path / "half")
    torch.multiprocessing.spawn(sync_bn_worker, args=(str(tmp_path / "init"), out), nprocs=2)
    halves = [torch.load(f"{out}.{rank}") for rank in range(2)]
    x, weights, bn = sync_bn_case()
    x.requires_grad_(True)
    y = bn(x)
    (y * weights).sum().backward()
    assert torch.allclose(torch.cat([h["y"] for h in halves]), y.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([h["dx"] for h in halves]), x.grad, atol=1e-5)
    for name, whole in (("dgamma", bn.weight.grad), ("dbeta", bn.bias.grad)):  # DDP would sum/average these
        assert torch.allclose(halves[0][name] + halves[1][name], whole, atol=1e-4), name
    for half in halves:
        assert torch.allclose(half["mean"], bn.running_mean, atol=1e-6)
        assert torch.allclose(half["var"], bn.running_var, atol=1e-5)


@pytest.mark.parametrize("option, value, message", [
    ("--label-smoothing", "-0.1", "--label-smoothing must be in [0, 1)"),
    ("--ema-decay", "1", "--ema-decay must be in [0, 1)"),
    ("--ema-decay", "-0.5", "--ema-decay must be in [0, 1)"),
    ("--mixup", "-1", "--mixup must be >= 0"),
    ("--cutmix", "-0.2", "--cutmix must be >= 0"),
    ("--lr-step-epochs", "cosin", "--lr-step-epochs 'cosin' must be epochs like 30,60, cosine or pow2"),
])
def test_bad_recipe_values_are_one_line_errors(fake_mnist, option, value, message):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), option, value)
    one_line_error(result, message)
    assert result.returncode == 2


def test_sync_bn_with_one_process_trains(fake_mnist):
    result = run_script("train_mnist.py", "--data-dir", str(fake_mnist), "--sync-bn", "1",
                        "--num-epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "--sync-bn: one process" in result.stderr
