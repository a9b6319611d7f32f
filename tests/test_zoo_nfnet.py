"""NFNet: the normalizer-free parts (scaled WS conv, scaled activations, β/α bookkeeping, SkipInit,
stochastic depth without rescaling), signal propagation at init, and the F-series sizes."""
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.layers import NF_ACT_GAMMAS, ScaledActivation, WSConv2d
from zoo.nfnet import NFNET_VARIANTS, NFBlock

ALPHA = 0.2


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def f0():
    torch.manual_seed(0)
    return zoo.create_model("nfnet_f0").eval()


def _blocks(model):
    return [block for stage in model.stages for block in stage]


def _with_skip_gain(block: NFBlock, gain: float, x: torch.Tensor) -> torch.Tensor:
    """The block's forward output with its skip gain set to ``gain`` (restored afterwards)."""
    kept = block.skip_gain.detach().clone()
    block.skip_gain.fill_(gain)
    try:
        return block(x)
    finally:
        block.skip_gain.copy_(kept)


def _residual_branch(block: NFBlock, x: torch.Tensor) -> torch.Tensor:
    """The residual branch as forward adds it (before skip gain and α), measured through forward:
    the output at skip gain 1/α minus the output at skip gain 0, which is the shortcut alone."""
    return _with_skip_gain(block, 1 / block.alpha, x) - _with_skip_gain(block, 0.0, x)


# --- golden counts and sizes -----------------------------------------------------------------------

def test_f0_golden_counts(f0):
    assert _n_params(f0) == 71_489_284  # timm's dm_nfnet_f0 built without weights
    ten = zoo.create_model("nfnet_f0", num_classes=10)
    assert _n_params(ten) == 71_489_284 - 3073 * 990


def test_f_series_depths_sizes_and_dropout():
    base = (1, 2, 6, 3)
    for k, name in enumerate(("nfnet_f0", "nfnet_f1", "nfnet_f2", "nfnet_f3")):
        spec = NFNET_VARIANTS[name]
        assert spec.depths == tuple((k + 1) * d for d in base)
        assert zoo.get_model_info(name).native_size == spec.test_size
    assert [NFNET_VARIANTS[n].train_size for n in NFNET_VARIANTS] == [192, 224, 256, 320]
    assert [NFNET_VARIANTS[n].drop_rate for n in NFNET_VARIANTS] == [0.2, 0.3, 0.4, 0.4]
    assert zoo.resolve_name("nfnet") == "nfnet_f0"


def test_f1_to_f3_param_counts():
    # Built on the meta device: shapes only, so the 255 M-parameter F3 costs no memory or init time.
    # Targets: timm dm_nfnet_f1..f3 (132.6 M / 193.8 M / 254.9 M).
    expected = {"nfnet_f1": 132_634_256, "nfnet_f2": 193_779_228, "nfnet_f3": 254_924_200}
    with torch.device("meta"):
        for name, count in expected.items():
            model = zoo.create_model(name)
            assert len(_blocks(model)) == sum(NFNET_VARIANTS[name].depths)
            assert _n_params(model) == count


def test_f0_macs_match_paper():
    with torch.device("meta"):
        model = zoo.create_model("nfnet_f0").eval()
        for size, gmacs in ((256, 12.38), (192, 6.98)):
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                model(torch.randn(1, 3, size, size))
            # 12.38 G is the paper's count_flops figure at 256; 6.98 G the same count at the train size.
            assert counter.get_total_flops() / 2 / 1e9 == pytest.approx(gmacs, rel=0.005)


def test_odd_input_sizes_and_classifier(f0):
    with torch.no_grad():
        for size in (33, 47):  # strided convs and the ceil-mode shortcut pool agree on odd sizes
            assert f0(torch.randn(1, 3, size, size)).shape == (1, 1000)
    # The final classifier (excluded from AGC) is the only Linear; it starts at N(0, 0.01), bias 0,
    # also after reset_classifier (same shape here, so the shared fixture is unchanged in kind).
    linears = [m for m in f0.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [f0.head.fc] and f0.num_features == 3072
    f0.reset_classifier(1000)
    assert f0.head.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(f0.head.fc.bias == 0)


# --- layers -----------------------------------------------------------------------------------------

def test_ws_conv_standardises_each_output_channel():
    conv = WSConv2d(8, 16, 3, groups=2)
    with torch.no_grad():
        conv.weight.mul_(7.0).add_(torch.linspace(-3, 3, 16).view(16, 1, 1, 1))  # off-centre, badly scaled
        conv.gain.copy_(torch.rand(16, 1, 1, 1) + 0.5)
    w = conv.standardized_weight()
    torch.testing.assert_close(w.mean((1, 2, 3)), torch.zeros(16), atol=1e-6, rtol=0)
    # ‖Ŵ_i‖² = gain_i², i.e. Var over the fan-in N = 4·3·3 is gain²/N.
    torch.testing.assert_close(w.square().sum((1, 2, 3)), conv.gain.view(-1).square(), atol=1e-5, rtol=1e-5)
    assert conv.fan_in == 36


def test_ws_conv_is_invariant_to_weight_shift_and_scale_and_preserves_variance():
    conv = WSConv2d(512, 64, 1)
    x = torch.randn(64, 512, 4, 4)
    with torch.no_grad():
        y = conv(x)
        assert y.var().item() == pytest.approx(1.0, abs=0.1)
        conv.weight.mul_(5.0).add_(2.0)
        torch.testing.assert_close(conv(x), y, atol=1e-4, rtol=1e-4)
        conv.weight.fill_(0.3)  # zero variance: eps keeps the weight finite (all zeros)
        assert torch.all(conv.standardized_weight() == 0)


@pytest.mark.parametrize("eps_mode", ["bound", "add"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_ws_conv_hand_written_backward_matches_autograd(eps_mode, layout):
    conv = WSConv2d(8, 6, 3, groups=2, eps_mode=eps_mode).to(memory_format=layout)
    with torch.no_grad():
        conv.weight[0].fill_(0.3)  # a degenerate channel: the bound holds its scale (no gradient through Var)
        conv.weight[1].mul_(1e-3)  # and one just under the bound in "bound" mode
        conv.gain.copy_(torch.rand(6, 1, 1, 1) + 0.5)
    weight, gain = conv.weight.detach().clone().requires_grad_(), conv.gain.detach().clone().requires_grad_()
    var, mean = torch.var_mean(weight, dim=(1, 2, 3), correction=0, keepdim=True)
    n_var = var * conv.fan_in
    scale = torch.rsqrt(n_var.clamp(min=conv.eps) if eps_mode == "bound" else n_var + conv.fan_in * conv.eps)
    reference = (weight - mean) * scale * gain
    grad_out = torch.randn(6, 4, 3, 3)
    reference.backward(grad_out)
    conv.standardized_weight().backward(grad_out)
    torch.testing.assert_close(conv.weight.grad, weight.grad, atol=1e-5, rtol=1e-4)
    # dgain = scale·(ΣdY·W − mean·ΣdY) cancels on the constant channel, where scale is 1/√eps = 100.
    torch.testing.assert_close(conv.gain.grad, gain.grad, atol=1e-4, rtol=1e-4)
    assert conv.weight.grad.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("kind", sorted(NF_ACT_GAMMAS))
def test_scaled_activation_has_unit_variance_on_unit_gaussian(kind):
    x = torch.randn(2_000_000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    act = ScaledActivation(kind)
    # Monte-Carlo error of the variance at n=2e6 is ~0.2 %; the official γ are ~0.2 % high.
    assert act(x).var().item() == pytest.approx(1.0, abs=0.01)
    assert (act(x) / act.gamma).var().item() < 0.4  # the unscaled nonlinearity is far from it


def test_relu_gamma_matches_closed_form():
    closed_form = math.sqrt(2 / (1 - 1 / math.pi))
    assert NF_ACT_GAMMAS["relu"] == pytest.approx(closed_form, rel=1e-3)


# --- β, α, SkipInit, stochastic depth -----------------------------------------------------------------

def test_beta_follows_expected_variance_reset_at_each_stage(f0):
    # Expected variance before block i is 1 + k_i·α²: +α² per block, reset to 1 + α² after a stage's first.
    k = [0, 1, 1, 2, 1, 2, 3, 4, 5, 6, 1, 2]
    betas = [b.beta for b in _blocks(f0)]
    assert betas == pytest.approx([1 / math.sqrt(1 + ki * ALPHA ** 2) for ki in k], rel=1e-12)
    assert all(b.alpha == ALPHA for b in _blocks(f0))


def test_stochastic_depth_rates_and_no_rescale_setting(f0):
    blocks = _blocks(f0)
    assert [b.drop_path.p for b in blocks] == pytest.approx([0.25 * i / 12 for i in range(12)])
    assert not any(b.drop_path.scale_by_keep for b in blocks)


def test_skip_gain_starts_at_zero_so_blocks_are_their_shortcut(f0):
    torch.manual_seed(1)
    x = torch.randn(2, 128, 8, 8)
    with torch.no_grad():
        for block in _blocks(f0):
            assert block.skip_gain.item() == 0.0
            out = block(x)
            conv2 = block.conv2.weight
            kept = conv2.clone()
            conv2.add_(torch.randn_like(conv2))  # a different residual branch changes nothing at skip gain 0
            try:
                torch.testing.assert_close(block(x), out, atol=0, rtol=0)
            finally:
                conv2.copy_(kept)
            x = out
        identity = _blocks(f0)[2]
        assert identity.shortcut is None and torch.equal(identity(x[:, :512]), x[:, :512])


def test_stochastic_depth_drops_to_shortcut_without_rescaling():
    torch.manual_seed(2)
    block = NFBlock(256, 256, 1, beta=1.0, alpha=ALPHA, drop_path=0.5)
    with torch.no_grad():
        block.skip_gain.fill_(1.0)
        x = torch.randn(32, 256, 4, 4)
        kept_out = block.eval()(x)  # eval: no drop, no rescale
        trained = block.train()(x)
    dropped = [torch.equal(t, s) for t, s in zip(trained, x)]
    kept = [torch.allclose(t, k, atol=1e-6) for t, k in zip(trained, kept_out)]
    assert all(d != k for d, k in zip(dropped, kept)), "every sample is either dropped or kept unscaled"
    assert 4 < sum(dropped) < 28


# --- signal propagation at init ------------------------------------------------------------------------

def test_residual_branch_returns_unit_variance_for_expected_variance_input(f0):
    # β is chosen so each branch sees unit variance; WS, γ and the doubled SE keep it there.
    torch.manual_seed(3)
    with torch.no_grad():
        for block in _blocks(f0):
            x = torch.randn(2, block.conv0.in_channels, 16, 16) / block.beta  # 16 px: few zero-padded borders
            branch_out = _residual_branch(block, x).std().item()
            assert 0.8 < branch_out < 1.25, branch_out  # ~0.90-0.95
            if block.shortcut is None:  # with the skip gain trained to 1, variance grows by α² per block
                grown = _with_skip_gain(block, 1.0, x).std().item()
                assert grown == pytest.approx(math.sqrt(1 / block.beta ** 2 + ALPHA ** 2), rel=0.02)


def test_signal_propagation_through_f0_at_init(f0):
    # Per-block output std on i.i.d. N(0, 1) images, F0 at 64 px. Measured: stem 0.94; blocks
    # 0.945 | 0.46 0.46 | 0.208 ×6 | 0.084 ×3. The std is flat within a stage (SkipInit) and kept by the
    # unstrided projection; each strided transition halves it, because its shortcut 2×2-averages
    # activations that are spatially uncorrelated for white-noise input (natural images are not).
    torch.manual_seed(4)
    x = torch.randn(8, 3, 64, 64)
    stds = []
    hooks = [b.register_forward_hook(lambda mod, inp, out: stds.append(out.std().item())) for b in _blocks(f0)]
    try:
        with torch.no_grad():
            stem_std = f0.stem(x).std().item()
            f0(x)
    finally:
        for hook in hooks:
            hook.remove()
    assert 0.8 < stem_std < 1.25
    assert 0.8 < stds[0] / stem_std < 1.25  # stage 1: 128 → 256 projection, no pool
    strided = {1, 3, 9}
    for i in range(1, 12):
        ratio = stds[i] / stds[i - 1]
        if i in strided:
            assert 0.4 < ratio < 0.6, (i, stds)
        else:
            assert ratio == pytest.approx(1.0, rel=1e-6), (i, stds)
