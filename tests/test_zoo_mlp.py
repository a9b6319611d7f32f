"""MLP-Mixer, ResMLP, gMLP and SdP-Net: what is particular to these families."""
import math

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.gmlp import SpatialGatingUnit
from zoo.layers import KeLU, TransformerBlock, kelu
from zoo.sdpnet import ConvMixer, SdPNet, angular_drop_path_rates


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- golden counts (not in test_zoo's walk)

@pytest.mark.parametrize("name, num_classes, expected", [
    ("mixer_s32_224", 1000, 19_104_624),
    ("mixer_b32_224", 1000, 60_293_428),
    ("resmlp_24", 1000, 30_020_680),
    ("sdpnet_xxs", 1000, 6_430_912),
    ("sdpnet_s", 1000, 22_084_032),
    ("sdpnet_cifar", 100, 8_216_420),
])
def test_golden_counts(name, num_classes, expected):
    assert _n_params(zoo.create_model(name, num_classes=num_classes)) == expected


def test_sdpnet_part_counts_match_the_spec_formulas():
    # Counted from the layers of y-akbal/SdP-Net (biases off): a conv mixer has C·k² + 9C² + 4C params;
    # an encoder layer (C=768, ratio 4, 8 heads, QK-norm) 7,085,184.
    assert _n_params(ConvMixer(768, 3, nn.GELU)) == 768 * 9 + 9 * 768 ** 2 + 4 * 768 == 5_318_400
    encoder = TransformerBlock(768, 8, 4.0, qkv_bias=False, proj_bias=False, qk_norm=True)
    assert _n_params(encoder) == 7_085_184


def test_sdpnet_neighbourhood_table_is_a_frozen_buffer():
    model = zoo.create_model("sdpnet_cifar", num_classes=10)
    assert "pos_embed.table" in model.state_dict()
    assert not any("pos_embed" in name for name, _ in model.named_parameters())


# ---------------------------------------------------------------- KeLU

A = 3.5


def _raised_cosine_cdf_by_integration(x: float, a: float = A, steps: int = 20001) -> float:
    """∫_{-a}^{x} (1 + cos(πt/a)) / (2a) dt, numerically: independent of the closed form in the code."""
    if x <= -a:
        return 0.0
    t = torch.linspace(-a, min(x, a), steps, dtype=torch.float64)
    return torch.trapezoid((1 + torch.cos(math.pi * t / a)) / (2 * a), t).item()


def test_kelu_is_x_times_the_raised_cosine_cdf():
    xs = torch.tensor([-6.0, -3.5, -2.0, -0.7, 0.0, 0.4, 1.9, 3.0, 3.5, 8.0], dtype=torch.float64)
    expected = torch.tensor([x * _raised_cosine_cdf_by_integration(x) for x in xs.tolist()], dtype=torch.float64)
    torch.testing.assert_close(KeLU(A)(xs), expected, rtol=0, atol=1e-8)


def test_kelu_value_and_slope_are_continuous_at_plus_minus_a():
    act = KeLU(A)
    x = torch.tensor([-A, A], dtype=torch.float64, requires_grad=True)
    y = act(x)
    (slope,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, A], dtype=torch.float64))
    torch.testing.assert_close(slope, torch.tensor([0.0, 1.0], dtype=torch.float64))
    # One-sided slopes just inside and outside each end agree with the limits.
    eps = 1e-4
    near = torch.tensor([-A - eps, -A + eps, A - eps, A + eps], dtype=torch.float64, requires_grad=True)
    (near_slope,) = torch.autograd.grad(act(near).sum(), near)
    torch.testing.assert_close(near_slope, torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_kelu_is_exactly_zero_below_and_identity_above():
    x = torch.tensor([-100.0, -3.6, 3.6, 100.0])
    assert torch.equal(kelu(x), torch.tensor([0.0, 0.0, 3.6, 100.0]))
    assert nn.Sequential(nn.Linear(3, 3), KeLU())(torch.randn(2, 3)).shape == (2, 3)


# ---------------------------------------------------------------- gMLP

def test_gmlp_spatial_gating_unit_is_near_identity_at_init():
    sgu = SpatialGatingUnit(channels=16, num_patches=9)
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(sgu(x), x[..., :8], rtol=0, atol=1e-4)
    assert torch.equal(sgu.spatial_proj.bias, torch.ones(9))


# ---------------------------------------------------------------- fixed-size token mixing

@pytest.mark.parametrize("name", ["mixer_s16_224", "resmlp_12", "gmlp_ti16_224"])
def test_token_mixing_models_refuse_other_input_sizes(name):
    with pytest.raises(zoo.ModelConfigError, match="does not divide"):
        zoo.create_model(name, img_size=40)
    model = zoo.create_model(name, num_classes=3, img_size=32, depth=1)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(zoo.ModelConfigError, match="built for 32×32 input, got 48×48"):
        model(torch.randn(1, 3, 48, 48))


# ---------------------------------------------------------------- SdP-Net

def _tiny_sdpnet(**overrides) -> SdPNet:
    config = dict(img_size=16, patch_size=4, num_classes=5, dim=16, depth=2, num_heads=2, kernel_size=3,
                  num_registers=3)
    return SdPNet(**{**config, **overrides}).eval()


def _record_inputs(modules):
    seen = []
    handles = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone())) for m in modules]
    return seen, handles


@pytest.mark.parametrize("block_order", ["conv_first", "encoder_first"])
def test_sdpnet_registers_never_enter_the_conv_mixers(block_order):
    model = _tiny_sdpnet(block_order=block_order)
    mixers = [m for m in model.modules() if isinstance(m, ConvMixer)]
    encoders = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    mixer_inputs, handles = _record_inputs(mixers)
    encoder_inputs, more = _record_inputs(encoders)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model(x)
    for h in handles + more:
        h.remove()
    assert len(mixer_inputs) == 2 * 2 and len(encoder_inputs) == 2 + 1
    assert all(t.shape == (2, 16, 4, 4) for t in mixer_inputs), "conv mixers see exactly the H·W patch grid"
    assert all(t.shape == (2, 3 + 16, 16) for t in encoder_inputs), "encoders see registers + patches"


def test_sdpnet_registers_reach_the_patches_only_through_attention():
    model = _tiny_sdpnet(block_order="conv_first")
    first_block_mixers = list(model.blocks[0].mixers)
    second_block_mixers = list(model.blocks[1].mixers)
    x = torch.randn(2, 3, 16, 16)

    def run():
        seen, handles = _record_inputs(first_block_mixers + second_block_mixers)
        with torch.no_grad():
            out = model(x)
        for h in handles:
            h.remove()
        return out, seen

    out_before, seen_before = run()
    with torch.no_grad():
        model.registers.add_(torch.randn_like(model.registers))  # not a constant: LayerNorm removes those
    out_after, seen_after = run()
    for before, after in zip(seen_before[:2], seen_after[:2]):
        torch.testing.assert_close(after, before, rtol=0, atol=0)  # conv first: registers not seen yet
    assert not torch.allclose(seen_before[2], seen_after[2]), "the first encoder carries registers into patches"
    assert not torch.allclose(out_before, out_after)


def test_sdpnet_register_tokens_attend_to_each_other_and_patches():
    model = _tiny_sdpnet(head="registers")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        tokens = model.forward_features(x)
        other = model.forward_features(x.flip(-1))
    assert tokens.shape == (1, 3 + 16, 16)
    assert not torch.allclose(tokens[:, :3], other[:, :3]), "registers must see the image"


def test_sdpnet_angular_drop_path_schedule():
    assert angular_drop_path_rates(0.0, 0.0, 4) == [0.0] * 4
    torch.testing.assert_close(torch.tensor(angular_drop_path_rates(0.1, 0.1, 3)), torch.full((3,), 0.1))
    expected = [0.0, math.cos(11 * math.pi / 24), math.cos(5 * math.pi / 12), math.cos(3 * math.pi / 8)]
    got = angular_drop_path_rates(0.0, 0.5, 4)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=0, atol=1e-12)
    model = _tiny_sdpnet(depth=4, drop_path_rate=0.5)
    assert [b.encoder.drop_path.p for b in model.blocks] == got
    assert model.final_encoder.drop_path.p == 0.0


def test_sdpnet_activation_is_selectable_everywhere():
    model = _tiny_sdpnet(act_layer="kelu")
    assert not any(isinstance(m, nn.GELU) for m in model.modules())
    assert sum(isinstance(m, KeLU) for m in model.modules()) == 2 * 2 * 2 + 3  # 2 per mixer, 1 per encoder FFN
    with pytest.raises(ValueError, match="unknown activation"):
        _tiny_sdpnet(act_layer="swishy")


def test_sdpnet_options_and_sizes():
    with pytest.raises(zoo.ModelConfigError, match="block_order"):
        _tiny_sdpnet(block_order="sideways")
    with pytest.raises(zoo.ModelConfigError, match="at least one register"):
        _tiny_sdpnet(num_registers=0)
    assert _tiny_sdpnet(num_registers=0, head="avg")(torch.randn(1, 3, 16, 16)).shape == (1, 5)
    model = _tiny_sdpnet(position="neighbourhood")
    assert model(torch.randn(1, 3, 8, 12)).shape == (1, 5)  # smaller grids use part of the tables
    with pytest.raises(zoo.ModelConfigError, match="at most 4 patches per side"):
        model(torch.randn(1, 3, 20, 20))
    assert zoo.resolve_name("sdpnet") == "sdpnet_s"


# ---------------------------------------------------------------- training lowers the loss

TINY = {
    "mixer_s16_224": dict(dim=32, depth=2, tokens_hidden=16, channels_hidden=64),
    "resmlp_12": dict(dim=32, depth=2),
    "gmlp_ti16_224": dict(dim=32, depth=2, ffn_dim=64),
    "sdpnet_xxs": dict(dim=32, depth=2, num_heads=2),
    "sdpnet_cifar": dict(dim=32, depth=2, num_heads=2),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_one_training_step_lowers_the_loss(name):
    model = zoo.create_model(name, num_classes=4, img_size=32, **TINY[name]).train()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(x), y) < loss


def test_seed_aliases():
    assert zoo.resolve_name("mlpmixer") == "mixer_b16_224"
    assert zoo.resolve_name("resmlp") == "resmlp_12"
    assert zoo.resolve_name("gmlp") == "gmlp_s16_224"
