"""ViT family (ViT, ViT-Lite, ViT-C / ViT-P, CAPE) and CCT: what is particular to them."""
import math

import pytest
import torch

import zoo
from benchmarks.complexity import flop_counter_macs
from zoo.cct import CompactTransformer
from zoo.layers import CCTBlock, TransformerBlock, resample_pos_embed, sincos_1d
from zoo.vit import _VIT_C, ConvStem


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _gmacs(model: torch.nn.Module, size: int) -> float:
    return flop_counter_macs(model, torch.randn(1, 3, size, size)) / 1e9


@pytest.fixture(scope="module")
def vit_tiny():
    return zoo.create_model("vit_tiny_patch16_224", num_classes=3).eval()


@pytest.fixture(scope="module")
def cct_14():
    return zoo.create_model("cct_14_7x2_224").eval()


# --- golden counts and MACs -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, count", [
    ("vit_lite_7_4", 3_716_874),       # built by SHI-Labs/Compact-Transformers' code at 10 classes
    ("cct_7_3x1_32", 3_760_139),       # the same code; "3.76M" in the CCT paper's CIFAR table
    ("cct_7_3x1_32_sine", 3_760_139 - 256 * 256),  # the same without the learned 256×256 table
])
def test_golden_parameter_counts_at_10_classes(name, count):
    assert _n_params(zoo.create_model(name, num_classes=10)) == count


@pytest.mark.parametrize("name, millions", [("cct_2_3x2_32", 0.28), ("cct_4_3x2_32", 0.48), ("cct_6_3x1_32", 3.23),
                                            ("cct_7_3x1_32", 3.76)])
def test_cct_cifar_counts_match_the_paper_table(name, millions):
    assert round(_n_params(zoo.create_model(name, num_classes=10)) / 1e6, 2) == millions


def test_vit_b16_macs_include_attention():
    # 17.58 GMACs with the QKᵀ and AV matmuls (timm's vit_base_patch16_224 with fused_attn=False under
    # fvcore); with fused attention fvcore misses them and gives 16.87.
    assert _gmacs(zoo.create_model("vit_base_patch16_224"), 224) == pytest.approx(17.58, rel=0.02)


@pytest.mark.parametrize("name, gmacs", [("cct_7_3x1_32", 1.187), ("vit_lite_7_4", 0.256), ("vit_c_1gf", 1.08)])
def test_small_model_macs(name, gmacs):
    info = zoo.get_model_info(name)
    assert _gmacs(zoo.create_model(name, num_classes=10 if info.native_size == 32 else 1000),
                  info.native_size) == pytest.approx(gmacs, rel=0.02)


def test_cct_14_macs(cct_14):
    assert _gmacs(cct_14, 224) == pytest.approx(5.53, rel=0.02)


def test_aliases():
    assert zoo.resolve_name("cct_7_3x1") == "cct_7_3x1_32"


# --- ViT position embeddings ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [384, 160])
def test_learned_table_is_resampled_for_other_sizes(vit_tiny, size):
    grid = size // 16
    assert vit_tiny.position_table((grid, grid)).shape == (1, grid * grid, 192)
    with torch.no_grad():
        out = vit_tiny(torch.randn(1, 3, size, size))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_resampled_table_is_the_original_when_the_grid_is_unchanged(vit_tiny):
    torch.testing.assert_close(vit_tiny.position_table((14, 14)), vit_tiny.pos_embed[:, 1:], rtol=0, atol=0)
    assert resample_pos_embed(vit_tiny.pos_embed, (14, 14), 1) is vit_tiny.pos_embed


def test_resampling_keeps_a_smooth_table_smooth():
    table = torch.linspace(0, 1, 14).repeat(14).reshape(1, 196, 1).expand(1, 196, 4).contiguous()
    bigger = resample_pos_embed(table, (28, 28))
    assert bigger.shape == (1, 784, 4)
    assert bigger.min() >= -0.05 and bigger.max() <= 1.05


def test_mean_pooling_has_no_class_token():
    token = zoo.create_model("vit_tiny_patch16_224", num_classes=10)
    mean = zoo.create_model("vit_tiny_patch16_224", num_classes=10, pool="mean")
    assert mean.cls_token is None
    assert _n_params(token) - _n_params(mean) == 2 * 192  # the class token and its table row


@pytest.fixture(scope="module")
def cape_pair():
    cape = zoo.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64, pos_embed="cape")
    sincos = zoo.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64, pos_embed="sincos")
    sincos.load_state_dict(cape.state_dict())
    return cape, sincos


def test_cape_varies_in_training_and_is_fixed_at_eval(cape_pair):
    cape, sincos = cape_pair
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cape.train()
        assert not torch.allclose(cape(x), cape(x))
        cape.eval()
        sincos.eval()
        first = cape(x)
        torch.testing.assert_close(first, cape(x), rtol=0, atol=0)
        torch.testing.assert_close(first, sincos(x), rtol=0, atol=0)


def test_cape_eval_table_is_plain_sinusoids_of_patch_centres(cape_pair):
    cape, _ = cape_pair
    cape.eval()
    centres = (torch.arange(4) + 0.5) / 4 * 2 - 1  # 4×4 patches on [-1, 1]
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    per_axis = [sincos_1d(c.flatten() * 10 * math.pi, 96, temperature=10.0) for c in (ys, xs)]
    torch.testing.assert_close(cape.position_table((4, 4)), torch.cat(per_axis, -1).unsqueeze(0))


def test_cape_training_coordinates_stay_within_their_augmentation_bounds(cape_pair):
    cape, _ = cape_pair
    cape.train()
    coords = cape.cape.coordinates(64, (4, 4), torch.device("cpu"))
    assert coords.shape == (64, 4, 4, 2)
    assert coords.abs().max() <= (1 + 0.5 + 0.5 * 0.5) * 1.4 + 1e-6
    assert coords.abs().max() > 1.0  # some images were shifted or scaled out of [-1, 1]
    assert not torch.allclose(coords[0], coords[1])  # every image draws its own augmentation


def test_cape_has_no_position_parameters_and_takes_any_size(cape_pair):
    cape, _ = cape_pair
    learned = zoo.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64)
    assert _n_params(learned) - _n_params(cape) == 17 * 192
    with torch.no_grad():
        assert cape.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 5)


# --- the CCT encoder block ---------------------------------------------------------------------------------

def test_cct_block_normalises_the_residual_stream_between_attention_and_mlp():
    torch.manual_seed(0)
    cct, pre_norm = CCTBlock(32, 4, 2.0, attn_drop=0.0).eval(), TransformerBlock(32, 4, 2.0, qkv_bias=False).eval()
    # With both residual branches silenced, a plain pre-norm block is the identity; CCT's block returns
    # LayerNorm(x) because the residual stream itself goes through norm1.
    for block in (cct, pre_norm):
        for linear in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(linear.weight)
            torch.nn.init.zeros_(linear.bias)
    x = 3 * torch.randn(2, 5, 32) + 1
    with torch.no_grad():
        torch.testing.assert_close(pre_norm(x), x)
        torch.testing.assert_close(cct(x), torch.nn.functional.layer_norm(x, (32,)))


def test_cct_block_matches_the_official_order_of_operations():
    torch.manual_seed(0)
    block = CCTBlock(32, 4, 2.0, attn_drop=0.0).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        after_attn = x + block.attn(block.pre_norm(x))
        normed = block.norm1(after_attn)
        torch.testing.assert_close(block(x), normed + block.mlp(normed))
        assert not torch.allclose(block(x), after_attn + block.mlp(block.norm1(after_attn)))


def test_cct_and_vit_lite_share_the_cct_block():
    vit_lite = zoo.create_model("vit_lite_7_4", num_classes=10)
    cct = zoo.create_model("cct_7_3x1_32", num_classes=10)
    for model in (vit_lite, cct):
        assert len(model.blocks) == 7 and all(isinstance(b, CCTBlock) for b in model.blocks)
        assert model.blocks[0].attn.qkv.bias is None and model.blocks[0].attn.attn_drop == 0.1
        assert model.blocks[0].drop_path.p == 0.0 and model.blocks[-1].drop_path.p == pytest.approx(0.1)


# --- CCT tokenizer, position embeddings, sequence pooling -----------------------------------------------------

def test_cct_7_3x1_gives_256_tokens_at_32px():
    model = zoo.create_model("cct_7_3x1_32", num_classes=10).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 256, 256)
    assert model.pos_embed.shape == (1, 256, 256)


def test_cct_14_7x2_gives_196_tokens_at_224px(cct_14):
    with torch.no_grad():
        assert cct_14.tokenizer(torch.randn(1, 3, 224, 224)).shape == (1, 384, 14, 14)
    assert cct_14.tokenizer.grid_size(224) == 14 and cct_14.pos_embed.shape == (1, 196, 384)
    conv = cct_14.tokenizer.layers[0][0][0]
    assert conv.kernel_size == (7, 7) and conv.stride == (2, 2) and conv.bias is None


def test_cct_sequence_pooling_weights_sum_to_one():
    model = zoo.create_model("cct_7_3x1_32", num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        weights = model.sequence_pool_weights(x)
        assert weights.shape == (3, 256) and (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(3))
        tokens = model.forward_features(x)
        pooled = model.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(pooled, (weights.unsqueeze(-1) * tokens).sum(1))
    assert not hasattr(model, "cls_token")


def test_cct_sine_table_is_the_official_interleaved_formula():
    model = zoo.create_model("cct_7_3x1_32_sine", num_classes=10)
    assert model.pos_embed is None and "sine_pos_embed" not in model.state_dict()
    dim = 256
    angle = torch.tensor([[p / 10000 ** (2 * (i // 2) / dim) for i in range(dim)] for p in range(256)])
    expected = torch.where(torch.arange(dim) % 2 == 0, angle.sin(), angle.cos())
    torch.testing.assert_close(model.sine_pos_embed[0], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["cct_7_3x1_32", "cct_7_3x1_32_sine"])
def test_cct_takes_other_sizes(name):
    model = zoo.create_model(name, num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 48, 48)).shape == (1, 10)
        assert model(torch.randn(1, 3, 24, 24)).shape == (1, 10)


def test_learned_cct_table_uses_trunc_normal_std_0_2():
    model = zoo.create_model("cct_7_3x1_32", num_classes=10)
    assert model.pos_embed.std().item() == pytest.approx(0.2, rel=0.05)


# --- ViT-C ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flops", ["1gf", "4gf", "18gf"])
def test_vit_c_stem_gives_14x14_at_224(flops):
    (dim, _, _), channels, strides = _VIT_C[flops]
    stem = ConvStem(224, 3, channels, strides, dim).eval()
    assert stem.grid == 14
    with torch.no_grad():
        assert stem(torch.randn(1, 3, 224, 224)).shape == (1, dim, 14, 14)


def test_vit_c_has_one_block_fewer_than_its_patchify_baseline_and_pycls_init():
    conv, patch = zoo.create_model("vit_c_1gf"), zoo.create_model("vit_p_1gf")
    assert (len(conv.blocks), len(patch.blocks)) == (11, 12)
    for model in (conv, patch):
        assert not model.head.fc.weight.any() and not model.head.fc.bias.any()  # zero-init head
        assert model.cls_token.abs().sum() == 0
    assert isinstance(conv.stem.convs[0][1], torch.nn.BatchNorm2d) and conv.stem.convs[0][0].bias is None
    assert conv.stem.proj.kernel_size == (1, 1) and conv.stem.proj.bias is not None


# --- configuration errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, size", [("vit_base_patch32_224", 48), ("vit_lite_7_4", 30),
                                        ("vit_p_4gf", 232), ("vit_small_patch16_224", 100)])
def test_patch_size_not_dividing_the_input_is_a_build_error(name, size):
    with pytest.raises(zoo.ModelConfigError, match="does not divide"):
        zoo.create_model(name, img_size=size)


def test_patch_size_not_dividing_the_input_is_a_clear_forward_error(vit_tiny):
    with pytest.raises(zoo.ModelConfigError, match="does not divide"):
        vit_tiny(torch.randn(1, 3, 200, 200))


def test_unknown_options_are_config_errors():
    with pytest.raises(zoo.ModelConfigError):
        zoo.create_model("vit_tiny_patch16_224", pos_embed="rope")
    with pytest.raises(zoo.ModelConfigError):
        CompactTransformer(img_size=32, pos_embed="cape")
