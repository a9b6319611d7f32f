"""Optimizers and gradient transforms against steps computed by hand on tiny problems."""
import pytest
import torch
import torch.nn as nn

from harness.config import build_config
from harness.optim import SAM, Lamb, RMSpropTF, adaptive_clip_grad_
from harness.recipes import GradientClipping, build_optimizer, param_groups
from zoo.layers import ClassifierHead

W0 = torch.tensor([0.5, -1.0, 2.0])


def one_param(value=W0):
    return nn.Parameter(value.clone())


def quartic(w):  # a loss whose gradient changes with w, so SAM's second gradient differs from the first
    return (w ** 4).sum() / 4 + w[0] * w[1]


def grad_of(w):
    w = w.clone().requires_grad_(True)
    quartic(w).backward()
    return w.grad


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(W0.clone().view(1, 3))

    def forward(self, x):
        return x @ self.weight.t()


def test_sgd_nesterov_and_adamw_from_the_config_match_hand_steps():
    cfg = build_config({"recipe": "seed", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                        "weight_decay": 0.0})
    model = Tiny()
    opt = build_optimizer(cfg, model)
    g = torch.tensor([[1.0, 2.0, -3.0]])
    model.weight.grad = g.clone()
    opt.step()
    assert torch.allclose(model.weight.data, W0.view(1, 3) - 0.1 * (g + 0.9 * g))  # buf = g; g + μ·buf

    cfg = build_config({"recipe": "seed", "optimizer": "adamw", "lr": 0.01, "weight_decay": 0.5, "opt_eps": 1e-8})
    model = Tiny()
    opt = build_optimizer(cfg, model)
    model.weight.grad = g.clone()
    opt.step()
    decayed = W0.view(1, 3) * (1 - 0.01 * 0.5)
    assert torch.allclose(model.weight.data, decayed - 0.01 * g / (g.abs() + 1e-8), atol=1e-6)


def test_rmsprop_tf_puts_epsilon_inside_the_root_and_starts_the_mean_square_at_one():
    w = one_param()
    opt = RMSpropTF([w], lr=0.1, alpha=0.9, eps=1.0, momentum=0.5)
    expected, ms, buf = W0.clone(), torch.ones(3), torch.zeros(3)
    for _ in range(2):
        g = grad_of(w.data)
        w.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g ** 2
        buf = 0.5 * buf + 0.1 * g / torch.sqrt(ms + 1.0)
        expected = expected - buf
    assert torch.allclose(w.data, expected, atol=1e-6)


def test_lamb_scales_the_update_by_the_trust_ratio():
    w = one_param()
    opt = Lamb([w], lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.2)
    g = grad_of(W0)
    w.grad = g.clone()
    opt.step()
    update = g / (g.abs() + 1e-6) + 0.2 * W0  # first step: m̂ = g, v̂ = g²
    trust = W0.norm() / update.norm()
    assert torch.allclose(w.data, W0 - 0.1 * trust * update, atol=1e-6)


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_takes_the_second_gradient_at_the_perturbed_weights(adaptive):
    w = one_param()
    rho, lr = 0.3, 0.1
    opt = SAM(torch.optim.SGD([w], lr=lr), rho=rho, adaptive=adaptive)

    def closure():
        opt.zero_grad()
        loss = quartic(w)
        loss.backward()
        return loss
    opt.step(closure)
    g = grad_of(W0)
    e = rho * W0 ** 2 * g / (W0.abs() * g).norm() if adaptive else rho * g / g.norm()
    assert torch.allclose(w.data, W0 - lr * grad_of(W0 + e), atol=1e-6)  # perturbation removed before the step


def test_sam_second_pass_leaves_batchnorm_statistics_to_the_first():
    from harness.train import StepTools, train_step
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    model(x)  # materialise the lazy layer
    model[1].reset_running_stats()
    reference = nn.BatchNorm2d(4)
    reference.load_state_dict(model[1].state_dict())
    reference(model[0](x))  # one pass of statistics at the starting weights
    cfg = build_config({"recipe": "seed", "optimizer": "sgd", "lr": 0.1, "sam": True})
    opt = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    train_step(model, x, y, opt, scaler, None, cfg, (), StepTools(GradientClipping(cfg, model)))
    assert torch.allclose(model[1].running_mean, reference.running_mean)
    assert model[1].num_batches_tracked.item() == 1


def test_agc_clips_each_unit_to_its_formula_and_spares_the_classifier():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 1)
            self.head = ClassifierHead(3, 2)
    net = Net()
    with torch.no_grad():
        net.conv.weight.copy_(torch.tensor([1.0, 0.0, 2.0, 2.0, 1e-5, 0.0]).view(3, 2, 1, 1))
    for p in net.parameters():
        p.grad = torch.full_like(p, 10.0)
    net.conv.weight.grad[0] = 0.001  # small enough to pass unclipped
    before = {n: p.grad.clone() for n, p in net.named_parameters()}
    cfg = build_config({"recipe": "seed", "agc_clip": 0.01, "agc_eps": 1e-3})
    GradientClipping(cfg, net)()
    w, g = net.conv.weight.detach(), before["conv.weight"]
    for unit in range(3):
        w_norm, g_norm = max(w[unit].norm().item(), 1e-3), g[unit].norm().item()
        expected = g[unit] * (0.01 * w_norm / g_norm if g_norm / w_norm > 0.01 else 1.0)
        assert torch.allclose(net.conv.weight.grad[unit], expected, rtol=1e-5), unit
    bias_scale = 0.01 * max(net.conv.bias.norm().item(), 1e-3) / before["conv.bias"].norm().item()
    assert torch.allclose(net.conv.bias.grad, before["conv.bias"] * bias_scale, rtol=1e-5)  # a vector: one unit
    for name in ("head.fc.weight", "head.fc.bias"):
        assert torch.equal(dict(net.named_parameters())[name].grad, before[name])


def test_agc_leaves_small_gradients_alone():
    w = one_param()
    w.grad = torch.full_like(w, 1e-6)
    adaptive_clip_grad_([w], 0.01)
    assert torch.equal(w.grad, torch.full_like(w, 1e-6))


def test_weight_decay_skips_the_kinds_a_recipe_names():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.norm = nn.BatchNorm2d(4)
            self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
            self.skip_gain = nn.Parameter(torch.zeros(()))
    net = Net()
    names = {id(p): n for n, p in net.named_parameters()}
    decay, skip = param_groups(net, 0.1)
    assert {names[id(p)] for p in decay["params"]} == {"conv.weight"}
    decay, _ = param_groups(net, 0.1, no_decay=[])
    assert len(decay["params"]) == 7
    decay, _ = param_groups(net, 0.1, no_decay=["norm", "bias"])
    assert {names[id(p)] for p in decay["params"]} == {"conv.weight", "pos_embed", "cls_token", "skip_gain"}
