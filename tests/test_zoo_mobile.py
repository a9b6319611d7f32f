"""Mobile and efficient CNNs: golden counts, the scaling rules, channel shuffle, the paper's MAC tables."""
import functools

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.efficientnet import B0_STAGES, scale_stages
from zoo.layers import MBConv, SqueezeExcite, make_divisible
from zoo.mobilenet import V1_BLOCKS
from zoo.shufflenet import ShuffleNetV1, channel_shuffle


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.lru_cache(maxsize=None)
def _model(name: str) -> nn.Module:
    return zoo.create_model(name).eval()


def _mmacs(model: nn.Module, size: int) -> float:
    """Millions of multiply-adds of convs and Linears (what the papers count), batch 1."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2e6


# At 1000 classes. Each count is what torchvision builds for the same variant without weights (timm for
# mobilenetv1_100, which torchvision lacks); mobilenetv1_025/050/075 and shufflenetv1_g3_100, which neither
# library has, are this zoo's builds (ShuffleNet v1 g=3 1×: "1.8M" in the SENet paper's Table 3).
GOLDEN = {
    "mobilenetv1_025": 470_072, "mobilenetv1_050": 1_331_592, "mobilenetv1_075": 2_585_560,
    "mobilenetv1_100": 4_231_976,
    "mobilenetv2_050": 1_968_680, "mobilenetv2_075": 2_636_424, "mobilenetv2_100": 3_504_872,
    "mobilenetv2_140": 6_108_776,
    "squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496,
    "shufflenetv1_g3_100": 1_865_728,
    "shufflenetv2_050": 1_366_792, "shufflenetv2_100": 2_278_604, "shufflenetv2_150": 3_503_624,
    "shufflenetv2_200": 7_393_996,
    "efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960,
    "efficientnetv2_s": 21_458_488, "efficientnetv2_m": 54_139_356, "efficientnetv2_l": 118_515_272,
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_parameter_counts(name):
    assert _n_params(_model(name)) == GOLDEN[name]


def test_golden_counts_at_10_classes_lose_exactly_the_classifier():
    model = zoo.create_model("mobilenetv2_100", num_classes=10)
    assert _n_params(model) == GOLDEN["mobilenetv2_100"] - 990 * (1280 + 1)
    model = zoo.create_model("squeezenet1_0", num_classes=10)  # conv10 is 1×1 from 512 channels
    assert _n_params(model) == GOLDEN["squeezenet1_0"] - 990 * (512 + 1)


@pytest.mark.parametrize("alias, name", [
    ("mobilenetv1", "mobilenetv1_100"), ("mobilenetv2", "mobilenetv2_100"), ("squeezenet", "squeezenet1_0"),
    ("shufflenet", "shufflenetv1_g3_100"), ("efficientnetv2", "efficientnetv2_s"),
    *[(f"efficientnetb{i}", f"efficientnet_b{i}") for i in range(8)]])
def test_seed_aliases(alias, name):
    assert zoo.resolve_name(alias) == name


# ---------------------------------------------------------------- MobileNetV1: width and resolution
# Paper Table 6 (width α at 224 px) and Table 7 (1.0 at resolution ρ·224): millions of mult-adds, params.
V1_TABLE6 = {0.25: (41, 0.5), 0.5: (149, 1.3), 0.75: (325, 2.6), 1.0: (569, 4.2)}
V1_TABLE7 = {224: 569, 192: 418, 160: 290, 128: 186}


@pytest.mark.parametrize("width", sorted(V1_TABLE6))
def test_mobilenetv1_width_multiplier_matches_paper_table6(width):
    model = zoo.create_model("mobilenetv1_100", width_multiplier=width).eval()
    mmacs, mparams = V1_TABLE6[width]
    assert _mmacs(model, 224) == pytest.approx(mmacs, rel=0.01)
    assert round(_n_params(model) / 1e6, 1) == mparams


@pytest.mark.parametrize("size", sorted(V1_TABLE7))
def test_mobilenetv1_resolution_multiplier_matches_paper_table7(size):
    model = zoo.create_model("mobilenetv1_100", img_size=size).eval()
    assert _mmacs(model, size) == pytest.approx(V1_TABLE7[size], rel=0.01)
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0])
def test_mobilenetv1_width_multiplier_scales_every_layer(width):
    model = zoo.create_model(f"mobilenetv1_{round(width * 100):03d}", num_classes=10)
    pointwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert [m.out_channels for m in pointwise] == [int(c * width) for c, _ in V1_BLOCKS]
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise) and len(depthwise) == 13
    assert model.stem[0].out_channels == int(32 * width)
    assert model.num_features == int(1024 * width)


def test_mobilenetv1_uses_relu_as_in_the_paper_and_v2_relu6():
    v1_acts = {type(m) for m in zoo.create_model("mobilenetv1_025").modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    v2_acts = {type(m) for m in zoo.create_model("mobilenetv2_050").modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    assert v1_acts == {nn.ReLU} and v2_acts == {nn.ReLU6}


# ---------------------------------------------------------------- MobileNetV2
@pytest.mark.parametrize("width, stem, last_block, head", [
    (0.5, 16, 160, 1280), (0.75, 24, 240, 1280), (1.0, 32, 320, 1280), (1.4, 48, 448, 1792)])
def test_mobilenetv2_width_multiplier_rule(width, stem, last_block, head):
    model = zoo.create_model("mobilenetv2_100", num_classes=10, width_multiplier=width)
    assert model.stem[0].out_channels == stem == make_divisible(32 * width)
    assert model.blocks[-1].project[0].out_channels == last_block
    assert model.num_features == head  # 1280 kept below 1.0, scaled above


def test_mobilenetv2_linear_bottleneck_and_residuals():
    model = zoo.create_model("mobilenetv2_100", num_classes=10)
    assert len(model.blocks) == 17
    for block in model.blocks:
        assert len(block.project) == 2  # conv + BN, no activation: the linear bottleneck
    assert [b.has_skip for b in model.blocks].count(True) == 10  # every repeat after a row's first block


# ---------------------------------------------------------------- channel shuffle
@pytest.mark.parametrize("channels, groups", [(6, 2), (6, 3), (12, 4), (24, 3), (16, 8), (5, 1)])
def test_channel_shuffle_is_the_papers_permutation(channels, groups):
    index = torch.arange(channels, dtype=torch.float32).view(1, channels, 1, 1).expand(2, channels, 3, 3)
    shuffled = channel_shuffle(index.contiguous(), groups)
    # Definition: reshape to (g, C/g), transpose, flatten.
    expected = torch.arange(channels).view(groups, channels // groups).t().reshape(-1)
    assert torch.equal(shuffled[0, :, 0, 0].long(), expected)
    assert torch.equal(shuffled[1, :, 2, 1].long(), expected)  # the same for every sample and position
    # Output channel j·g + i comes from group i, so each group of the next group conv mixes all groups.
    per_group = channels // groups
    for out_group in shuffled[0, :, 0, 0].long().view(groups, per_group):
        if per_group >= groups:
            assert len({int(c) // per_group for c in out_group}) == groups


def test_channel_shuffle_explicit_example_and_inverse():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert torch.equal(channel_shuffle(channel_shuffle(x, 2), 3), x)  # shuffling by C/g undoes it
    with pytest.raises(ValueError, match="divisible"):
        channel_shuffle(x, 4)


def test_shufflenets_shuffle_in_their_forward(monkeypatch):
    import zoo.shufflenet as shufflenet
    calls = []

    def counting_shuffle(x, groups):
        calls.append(groups)
        return channel_shuffle(x, groups)

    monkeypatch.setattr(shufflenet, "channel_shuffle", counting_shuffle)
    for name, expected in [("shufflenetv1_g3_050", [3] * 16), ("shufflenetv1_g1_050", []),
                           ("shufflenetv2_050", [2] * 16)]:
        calls.clear()
        with torch.no_grad():
            zoo.create_model(name, num_classes=3).eval()(torch.randn(1, 3, 32, 32))
        assert calls == expected, name


# ---------------------------------------------------------------- ShuffleNet v1
# Paper Table 1: output channels of stages 2-4 and complexity (MFLOPs = mult-adds) of 1× nets.
V1_TABLE1 = {1: ((144, 288, 576), 143), 2: ((200, 400, 800), 140), 3: ((240, 480, 960), 137),
             4: ((272, 544, 1088), 133), 8: ((384, 768, 1536), 137)}


@pytest.mark.parametrize("groups", sorted(V1_TABLE1))
def test_shufflenetv1_table1_channels_and_complexity(groups):
    model = zoo.create_model(f"shufflenetv1_g{groups}_100").eval()
    widths, mflops = V1_TABLE1[groups]
    assert tuple(stage[-1].expand[0].out_channels for stage in model.stages) == widths
    assert model.stem[0][0].out_channels == 24
    assert [len(stage) for stage in model.stages] == [4, 8, 4]
    assert _mmacs(model, 224) == pytest.approx(mflops, rel=0.02)


@pytest.mark.parametrize("groups", sorted(V1_TABLE1))
def test_shufflenetv1_grouping(groups):
    model = zoo.create_model(f"shufflenetv1_g{groups}_050", num_classes=10)
    first, *rest = [unit for stage in model.stages for unit in stage]
    assert first.reduce[0].groups == 1  # stage 2's first 1×1 sees only the 24-channel stem
    assert all(unit.reduce[0].groups == groups and unit.expand[0].groups == groups for unit in rest)
    assert all(unit.depthwise[0].groups == unit.depthwise[0].in_channels for unit in [first, *rest])
    assert all(unit.reduce[0].out_channels * 4 == unit.expand[0].out_channels + (unit.stride == 2) *
               unit.reduce[0].in_channels for unit in [first, *rest])  # bottleneck = ¼ of the unit's output


@pytest.mark.parametrize("scale, mflops", [(0.5, 38), (2.0, 524)])
def test_shufflenetv1_scale_factor(scale, mflops):
    model = ShuffleNetV1(groups=3, scale=scale).eval()  # paper Table 2 (g=3): 0.5× 38, 2× 524 MFLOPs
    assert model.stage_widths == tuple(int(w * scale) for w in V1_TABLE1[3][0])
    assert _mmacs(model, 224) == pytest.approx(mflops, rel=0.02)


def test_shufflenetv1_half_width_rounding_keeps_groups_whole():
    assert ShuffleNetV1(groups=2, scale=0.5, num_classes=3).stage_widths == (104, 200, 400)
    assert ShuffleNetV1(groups=4, scale=0.5, num_classes=3).stage_widths == (144, 272, 544)
    assert ShuffleNetV1(groups=8, scale=0.5, num_classes=3).stem[0].out_channels == 16
    with pytest.raises(ValueError, match="groups"):
        ShuffleNetV1(groups=5)


def test_shufflenetv2_unit_widths():
    model = zoo.create_model("shufflenetv2_100")
    assert tuple(stage[0].main[-1][0].out_channels * 2 for stage in model.stages) == (116, 232, 464)
    assert model.num_features == 1024
    assert zoo.create_model("shufflenetv2_200").num_features == 2048


# ---------------------------------------------------------------- EfficientNet compound scaling
# Derived by hand from the paper's rule (channels: make_divisible(w·c, 8); repeats: ceil(d·n)) applied
# to B0's table, with (w, d, r, dropout) from the official efficientnet_params.
COMPOUND_TABLE = {
    # name: (stem, stage widths, stage repeats, head, resolution, dropout)
    "b0": (32, (16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1), 1280, 224, 0.2),
    "b1": (32, (16, 24, 40, 80, 112, 192, 320), (2, 3, 3, 4, 4, 5, 2), 1280, 240, 0.2),
    "b2": (32, (16, 24, 48, 88, 120, 208, 352), (2, 3, 3, 4, 4, 5, 2), 1408, 260, 0.3),
    "b3": (40, (24, 32, 48, 96, 136, 232, 384), (2, 3, 3, 5, 5, 6, 2), 1536, 300, 0.3),
    "b4": (48, (24, 32, 56, 112, 160, 272, 448), (2, 4, 4, 6, 6, 8, 2), 1792, 380, 0.4),
    "b5": (48, (24, 40, 64, 128, 176, 304, 512), (3, 5, 5, 7, 7, 9, 3), 2048, 456, 0.4),
    "b6": (56, (32, 40, 72, 144, 200, 344, 576), (3, 6, 6, 8, 8, 11, 3), 2304, 528, 0.5),
    "b7": (64, (32, 48, 80, 160, 224, 384, 640), (4, 7, 7, 10, 10, 13, 4), 2560, 600, 0.5),
}
TOTAL_BLOCKS = {"b0": 16, "b1": 23, "b2": 23, "b3": 26, "b4": 32, "b5": 39, "b6": 45, "b7": 55}


@pytest.mark.parametrize("variant", sorted(COMPOUND_TABLE))
def test_efficientnet_compound_scaling_table(variant):
    stem, widths, repeats, head, resolution, dropout = COMPOUND_TABLE[variant]
    name = f"efficientnet_{variant}"
    model = _model(name)
    assert model.stem[0].out_channels == stem
    assert tuple(s.out_chs for s in model.stage_specs) == widths
    assert tuple(s.repeats for s in model.stage_specs) == repeats
    assert len(model.blocks) == TOTAL_BLOCKS[variant] == sum(repeats)
    assert [b.project[0].out_channels for b in model.blocks][-1] == widths[-1]
    assert model.num_features == head
    assert model.head.drop.p == dropout
    assert zoo.get_model_info(name).native_size == resolution


def test_scale_stages_is_the_rule():
    scaled = scale_stages(B0_STAGES, 1.1, 3.1)
    assert [s.out_chs for s in scaled] == [make_divisible(1.1 * s.out_chs, 8) for s in B0_STAGES]
    assert [s.repeats for s in scaled] == [4, 7, 7, 10, 10, 13, 4]
    assert all(s.out_chs % 8 == 0 for s in scale_stages(B0_STAGES, 1.37, 1.0))
    assert [s.kernel_size for s in scaled] == [s.kernel_size for s in B0_STAGES]


def test_efficientnet_b0_blocks_se_and_stochastic_depth():
    model = _model("efficientnet_b0")
    blocks = list(model.blocks)
    for block in blocks:
        se = block.se
        assert isinstance(se, SqueezeExcite)
        in_chs = block.conv[0][0].in_channels
        assert se.reduce.out_channels == max(1, int(in_chs * 0.25))  # ¼ of the block INPUT channels
        assert isinstance(se.act, nn.SiLU)
    assert blocks[2].se.reduce.out_channels == 6 and blocks[2].se.reduce.in_channels == 144
    kernels = [b.conv[-1][0].kernel_size[0] for b in blocks]
    assert kernels == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    rates = [b.drop_path.p if b.has_skip else None for b in blocks]
    for i, rate in enumerate(rates):
        assert rate is None or rate == pytest.approx(0.2 * i / 16)
    assert rates.count(None) == 7  # the first block of each stage changes shape: no residual
    assert _mmacs(model, 224) == pytest.approx(390, rel=0.02)  # paper Table 2: 0.39 B FLOPs


def test_drop_path_is_active_only_in_training():
    block = MBConv(16, 16, 3, 1, 4, se_ratio=0.25, drop_path=0.5, act_layer=nn.SiLU)
    x = torch.randn(64, 16, 4, 4)
    block.eval()
    with torch.no_grad():
        branch = block.project(block.se(block.conv(x)))
        torch.testing.assert_close(block(x), x + branch)
        block.train()
        kept = torch.isclose(block(x), x).flatten(1).all(1)
    assert 5 < int(kept.sum()) < 59  # about half the samples skip the branch


@pytest.mark.parametrize("name, stem, fused_blocks, total", [
    ("efficientnetv2_s", 24, 10, 40), ("efficientnetv2_m", 24, 13, 57), ("efficientnetv2_l", 32, 18, 79)])
def test_efficientnetv2_fused_stages(name, stem, fused_blocks, total):
    model = _model(name)
    assert model.stem[0].out_channels == stem and model.num_features == 1280
    fused = [b for b in model.blocks if not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in b.modules())]
    assert len(fused) == fused_blocks and len(model.blocks) == total
    assert all(isinstance(b.se, nn.Identity) for b in fused)
    assert all(isinstance(b.se, SqueezeExcite) for b in model.blocks[fused_blocks:])
    first = model.blocks[0]  # expand 1: one 3×3 conv straight to the output, with activation
    assert isinstance(first.project, nn.Identity) and isinstance(first.conv[-1], nn.SiLU)


def test_one_mbconv_serves_mobilenetv2_and_both_efficientnets():
    for name in ("mobilenetv2_050", "efficientnet_b0", "efficientnetv2_s"):
        model = zoo.create_model(name, num_classes=2)
        assert all(isinstance(b, MBConv) for b in model.blocks)


def test_fused_mbconv_shapes():
    block = MBConv(24, 48, 3, 2, 4, fused=True, act_layer=nn.SiLU)
    assert block.conv[0].out_channels == 96 and block.conv[0].kernel_size == (3, 3)
    assert block(torch.randn(2, 24, 8, 8)).shape == (2, 48, 4, 4)
    assert not block.has_skip


# ---------------------------------------------------------------- SqueezeNet
def test_squeezenet_versions_and_head():
    v10, v11 = _model("squeezenet1_0"), _model("squeezenet1_1")
    assert v10.features[0][0].kernel_size == (7, 7) and v10.features[0][0].out_channels == 96
    assert v11.features[0][0].kernel_size == (3, 3) and v11.features[0][0].out_channels == 64
    assert _mmacs(v10, 224) / _mmacs(v11, 224) == pytest.approx(2.35, rel=0.05)  # "2.4× less computation"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (v10(x) >= 0).all()  # conv10 → ReLU → pool, as in the authors' model
        assert v10.forward_head(v10.forward_features(x), pre_logits=True).shape == (1, 512)


@pytest.mark.parametrize("name, min_size", [("squeezenet1_0", 21), ("squeezenet1_1", 17)])
def test_squeezenet_min_size_is_tight(name, min_size):
    assert zoo.get_model_info(name).min_size == min_size
    with pytest.raises(zoo.ModelConfigError, match="smallest accepted size"):
        zoo.create_model(name, img_size=min_size - 1)
    model = zoo.create_model(name, num_classes=3, img_size=min_size).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, min_size, min_size)).shape == (1, 3)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 3, min_size - 1, min_size - 1))


def test_variants_take_in_chans_and_classes():
    for name in ("mobilenetv1_025", "shufflenetv1_g8_050", "efficientnet_b0"):
        model = zoo.create_model(name, num_classes=7, in_chans=1, img_size=32).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
