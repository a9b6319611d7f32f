"""One walk over every registered model: the shared API, sizes, gradients and golden counts.

Adding a model to the registry adds it here; family files test what is particular to a family.
"""
import pytest
import torch

import zoo
from walks import walk
from zoo.layers import ImageClassifier

ALL_MODELS = zoo.list_models()


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _logits(output):
    return output[0] if isinstance(output, tuple) else output


# Every model is built twice. With real weights at its smallest input: gradients, eval determinism
# and the shared API, the numerical checks. On the meta device (shapes without data) at 1000 classes:
# the golden parameter count and a forward pass at the native size, which checks every layer's shape
# at the paper's resolution without the minutes of arithmetic and initialisation that ~110 models
# (several of 100-300M parameters) would cost a 2-core CI machine. The quick suite walks one model
# per family (tests/walks.py); the full suite walks them all.


@pytest.mark.parametrize("name", walk(ALL_MODELS))
def test_at_min_size_gradients_eval_and_shared_api(name):
    info = zoo.get_model_info(name)
    model = zoo.create_model(name, num_classes=7, in_chans=1, img_size=info.min_size).train()
    assert isinstance(model, ImageClassifier)
    x = torch.randn(2, 1, info.min_size, info.min_size)
    out = model(x)
    aux = out[1] if isinstance(out, tuple) else ()
    assert _logits(out).shape == (2, 7)
    assert len(aux) == len(info.aux_loss_weights)
    loss = _logits(out).square().mean() + sum(a.square().mean() for a in aux)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"

    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
        assert isinstance(first, torch.Tensor), "eval mode returns logits only, never auxiliary outputs"
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        model.reset_classifier(9)
        assert model(x).shape == (2, 9)


@pytest.mark.parametrize("name", walk(ALL_MODELS))
def test_at_native_size_golden_count_and_forward(name):
    info = zoo.get_model_info(name)
    with torch.device("meta"):
        model = zoo.create_model(name).eval()
        out = model(torch.empty(1, 3, info.native_size, info.native_size))
    if info.paper_params:
        assert _n_params(model) == info.paper_params
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1000)


def test_seed_aliases_resolve():
    assert zoo.resolve_name("resnet") == "resnet18"
    assert zoo.resolve_name("vit") == "vit_base_patch16_224"
    assert zoo.resolve_name("alexnet") == "alexnet"


def test_unknown_model_suggests_close_names():
    with pytest.raises(zoo.ModelConfigError, match="resnet18"):
        zoo.create_model("resnet81")


def test_list_models_wildcards():
    assert "resnet18_cifar" in zoo.list_models("resnet*_cifar")
    assert zoo.list_models("vit") == ["vit_base_patch16_224"]  # an alias matches its model
    assert all(n.startswith("vit") for n in zoo.list_models("vit_*"))


def test_too_small_input_is_a_build_error():
    with pytest.raises(zoo.ModelConfigError, match="smallest accepted size is 67"):
        zoo.create_model("alexnet", img_size=32)


def test_patch_size_must_divide_input():
    with pytest.raises(zoo.ModelConfigError, match="does not divide"):
        zoo.create_model("vit_tiny_patch16_224", img_size=200)


def test_metadata_is_complete():
    for name in ALL_MODELS:
        info = zoo.get_model_info(name)
        assert info.paper and 1980 < info.year <= 2026 and info.family
        assert 0 < info.min_size <= info.native_size


def test_vit_position_embedding_resamples_to_another_size():
    model = zoo.create_model("vit_tiny_patch16_224", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 384, 384)).shape == (1, 3)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vit_tiny_patch16_224"])
def test_unknown_model_option_is_a_build_error(name):
    with pytest.raises(zoo.ModelConfigError, match="does not take that option"):
        zoo.create_model(name, num_classes=3, wings=2)
