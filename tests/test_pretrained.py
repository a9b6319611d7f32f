"""torchvision / timm weights in zoo models: every twin computes the source's function once converted (random
weights, float64, no download), the conventions each need, first-conv adaptation, fine-tuning from a local
state dict, and the errors a user meets (missing file, offline, another network's weights, no twin)."""

import dataclasses
import json
import os
import urllib.error

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import main
import zoo
from zoo import pretrained
from zoo.layers import WSConv2d

# float64 on both sides: a faithful conversion agrees to the last bits; a wrong convention is off by far more.
AGREE = 1e-9
DIFFER = 1e-6


def twin(model: str, label: str) -> pretrained.Twin:
    return next(t for t in pretrained.TWINS if t.model == model and t.label == label)


@pytest.mark.slow
def test_every_twin_computes_the_source_function():
    disagreeing = {f"{t.model} ← {t.label}": diff for t, diff in pretrained.equivalence_walk() if not diff <= AGREE}
    assert not disagreeing


def test_references_from_one_arena_are_the_references_and_share_its_memory():
    arena = pretrained.Arena()
    pairs = [twin("resnet18", "torchvision:resnet18"), twin("vit_tiny_patch16_224", "timm:vit_tiny_patch16_224")]
    for pair in pairs:
        size = pretrained.test_size(pair)
        carved, plain = pretrained.random_reference(pair, size, arena=arena), pretrained.random_reference(pair, size)
        assert carved.state_dict().keys() == plain.state_dict().keys()
        for name, tensor in carved.state_dict().items():
            assert tensor.dtype == plain.state_dict()[name].dtype, name  # BatchNorm's int64 step counts stay int64
            if tensor.is_floating_point():
                assert torch.equal(tensor, plain.state_dict()[name]), name
                assert tensor.untyped_storage().data_ptr() == arena.buffer.untyped_storage().data_ptr(), name


def test_every_zoo_model_with_a_namesake_is_paired_or_refused():
    namesakes = set(timm.list_models()) | set(torchvision.models.list_models(module=torchvision.models))
    paired = {t.model for t in pretrained.TWINS}
    unexplained = [
        name for name in zoo.list_models() if name in namesakes and name not in paired | set(pretrained.REFUSED)
    ]
    assert not unexplained
    assert {t.model for t in pretrained.TWINS} <= set(zoo.list_models())


@pytest.mark.parametrize(
    "model, label, other_convention",
    [
        ("se_resnet18", "timm:legacy_seresnet18", {"act_before_se": True}),  # the zoo's padded stem pool
        ("se_resnet18", "timm:legacy_seresnet18", {"stem_pool": "ceil"}),  # no ReLU before the SE gate
        ("mobilenetv1_100", "timm:mobilenetv1_100", {}),  # the paper's ReLU
        ("efficientnet_b0", "torchvision:efficientnet_b0", {}),  # TF's BatchNorm eps 1e-3
        ("vit_tiny_patch16_224", "timm:vit_tiny_patch16_224", {"norm_eps": 1e-5}),  # PyTorch's LayerNorm eps
    ],
)
def test_each_convention_is_needed(model, label, other_convention):
    pair = twin(model, label)
    reference = pretrained.random_reference(pair, pretrained.test_size(pair))
    assert pretrained.equivalence(pair, reference) <= AGREE
    assert pretrained.equivalence(dataclasses.replace(pair, options=other_convention), reference) > DIFFER


def test_vit_default_layernorm_eps_is_the_papers():
    with torch.device("meta"):
        model, lite = zoo.create_model("vit_tiny_patch16_224", img_size=32), zoo.create_model("vit_lite_7_4")
    assert {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)} == {1e-6}
    assert {m.eps for m in lite.modules() if isinstance(m, nn.LayerNorm)} == {1e-5}


@pytest.mark.parametrize("size", [15, 16, 17])
def test_nfnet_conv_options_compute_timms_same_padded_standardised_conv(size):
    from timm.layers import ScaledStdConv2dSame

    torch.manual_seed(0)
    theirs = ScaledStdConv2dSame(8, 16, 3, stride=2, eps=1e-5).double()
    ours = WSConv2d(8, 16, 3, 2, eps=1e-5, eps_mode="add", padding="same").double()
    with torch.no_grad():
        theirs.gain.uniform_(0.5, 1.5)
        ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 8, size, size, dtype=torch.float64)
    assert (ours(x) - theirs(x)).abs().max() <= AGREE
    official = WSConv2d(8, 16, 3, 2).double()
    official.load_state_dict(theirs.state_dict())
    assert official(x).shape == ours(x).shape and (official(x) - ours(x)).abs().max() > DIFFER


def test_first_conv_adaptation_follows_timm():
    weight = torch.randn(4, 3, 3, 3)
    assert torch.equal(pretrained.adapt_first_conv(weight, 1), weight.sum(1, keepdim=True))
    five = pretrained.adapt_first_conv(weight, 5)
    assert five.shape == (4, 5, 3, 3) and torch.allclose(five[:, 3:], weight[:, :2] * 3 / 5)
    grey = torch.rand(1, 1, 8, 8)  # a grey image answers as its RGB copy did, for 1 and 3k channels
    for channels in (1, 6):
        adapted = pretrained.adapt_first_conv(weight, channels)
        assert torch.allclose(
            F.conv2d(grey.expand(-1, channels, -1, -1), adapted),
            F.conv2d(grey.expand(-1, 3, -1, -1), weight),
            atol=1e-5,
        )


def test_grey_input_sees_what_the_source_sees_in_rgb(tmp_path):
    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = zoo.create_model("resnet18", in_chans=1, img_size=32, pretrained=str(tmp_path / "resnet18.pth")).eval()
    grey = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(grey), reference(grey.expand(-1, 3, -1, -1)), atol=1e-4)


def test_classifier_is_reinitialised_and_a_file_is_recognised_by_its_names(tmp_path):
    from safetensors.torch import save_file

    reference = timm.create_model("efficientnet_b0").eval()
    save_file(reference.state_dict(), tmp_path / "b0.safetensors")  # timm's names, sorted by safetensors
    model = zoo.create_model("efficientnet_b0", num_classes=7, pretrained=str(tmp_path / "b0.safetensors"))
    assert model.head.fc.out_features == 7 and model.pretrained_options == {"bn_eps": 1e-5}
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(model.stem[0].weight, reference.conv_stem.weight)


def test_headless_weights_and_another_input_size(tmp_path):
    reference = timm.create_model("vit_tiny_patch16_224", num_classes=0)  # as timm's ImageNet-21k ViTs ship
    torch.save(reference.state_dict(), tmp_path / "vit.pth")
    model = zoo.create_model("vit_tiny_patch16_224", num_classes=5, img_size=32, pretrained=str(tmp_path / "vit.pth"))
    assert model.head.fc.out_features == 5 and not any(p.is_meta for p in model.parameters())
    assert model.pos_embed.shape == (1, 1 + 4, 192)  # the 14×14 table resampled to the 2×2 grid
    assert torch.equal(model.pos_embed[:, 0], reference.pos_embed[:, 0])


def test_torchvisions_inception_input_transform_folds_exactly():
    pair = twin("inception_v3", "torchvision:inception_v3")
    reference = pretrained.random_reference(pair, 75)
    reference.transform_input = True  # as torchvision builds it with its ImageNet weights
    with torch.device("meta"):
        model = zoo.create_model("inception_v3", img_size=75).double()
    folded = pretrained.fold_transform_input(reference.state_dict())
    model.load_state_dict(pretrained.convert_state_dict(pair, folded, model), assign=True)
    images = torch.randn(2, 3, 75, 75, dtype=torch.float64)
    with torch.no_grad(), pretrained.one_thread():
        assert (model.eval()(images) - reference(images)).abs().max() <= AGREE


def test_weights_of_another_network_are_refused_with_what_does_not_fit(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(zoo.ModelConfigError, match="do not fit.*stages.0.2"):
        zoo.create_model("resnet34", pretrained=str(tmp_path / "resnet18.pth"))
    with pytest.raises(zoo.ModelConfigError, match="BatchNorm to every conv"):
        zoo.create_model("googlenet", pretrained=str(tmp_path / "resnet18.pth"))
    with pytest.raises(zoo.ModelConfigError, match="no torchvision or timm twin"):
        zoo.create_model("lenet5", pretrained="torchvision")
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(zoo.ModelConfigError, match="cannot read"):
        zoo.create_model("resnet18", pretrained=str(tmp_path / "junk.pth"))


def test_offline_download_says_where_to_put_the_file(monkeypatch):
    def offline(*args, pretrained=False, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(pretrained, "build_reference", offline)
    with pytest.raises(zoo.ModelConfigError) as err:
        zoo.create_model("resnet18", pretrained="torchvision")
    message = str(err.value)
    assert "\n" not in message and "resnet18-f37072fd.pth" in message and "checkpoints" in message
    with pytest.raises(zoo.ModelConfigError, match=r"huggingface\.co/timm/resnet18\..*--pretrained=PATH"):
        zoo.create_model("resnet18", pretrained="timm")


def test_bad_pretrained_path_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main.main(["--model=resnet18", "--dataset=digits", "--pretrained=missing.pth", "--device=cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.pth" in err and "not found" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # an end-to-end run from main.py
def test_fine_tune_on_digits_from_a_local_timm_state_dict(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.chdir(tmp_path)
    save_file(timm.create_model("mobilenetv1_100").state_dict(), "mobilenetv1.safetensors")
    assert (
        main.main(
            [
                "--model=mobilenetv1_100",
                "--dataset=digits",
                "--pretrained=mobilenetv1.safetensors",
                "--epochs=1",
                "--max-steps-per-epoch=2",
                "--batch-size=16",
                "--recipe=seed",
                "--device=cpu",
                "--model-save=True",
            ]
        )
        == 0
    )
    run_dir = os.path.join("results", "runs", os.listdir(os.path.join("results", "runs"))[0])
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["status"] == "completed"
    loaded = zoo.load_model(run_dir)
    assert loaded.spec.model_kwargs == {"act_layer": "relu6"}  # the source's convention travels with the model
    assert any(isinstance(m, nn.ReLU6) for m in loaded.model.modules())
    assert loaded.model.head.fc.out_features == 10 and loaded.model.stem[0].in_channels == 1
