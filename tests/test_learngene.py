"""Learngene: exact recomposition, the coefficient formulas, and incremental training under the harness."""
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

import main
import zoo
from benchmarks import learngene as learngene_experiment
from benchmarks.common import read_csv
from harness.data import FASHION_MNIST_SYSTEM_DIR
from zoo.learngene import DecomposedViT, coefficients, recompose
from zoo.vit import VisionTransformer

SMALL = dict(img_size=16, patch_size=4, in_chans=1, num_classes=5, dim=24, num_heads=2)


def decomposed(num_components=3, basis="chebyshev", depth=4, **kwargs) -> DecomposedViT:
    """A small decomposed ViT whose components are all non-zero (they start at zero after the first)."""
    model = DecomposedViT(depth=depth, num_components=num_components, basis=basis, **SMALL, **kwargs)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@pytest.mark.parametrize("basis,num_components", [("chebyshev", 3), ("power", 4), ("linear", 2)])
def test_recomposed_at_the_training_depth_gives_the_same_logits(basis, num_components):
    model = decomposed(num_components, basis).double().eval()
    vit = recompose(model, model.blocks.depth)
    assert type(vit) is VisionTransformer and len(vit.blocks) == 4
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(vit.eval()(x), model(x), rtol=1e-12, atol=1e-12)


def _hand_coefficients(basis: str, depth: int, layer: int) -> list[float]:
    x = -1 + 2 * layer / (depth - 1)
    if basis == "chebyshev":
        return [1.0, x, 2 * x * x - 1]
    if basis == "power":
        return [1.0, x, x * x]
    return [1.0, layer / depth]  # TLEG: θ_A + (l/L)·θ_B


@pytest.mark.parametrize("basis", ["chebyshev", "power", "linear"])
@pytest.mark.parametrize("target_depth", [3, 7])
def test_recomposition_at_another_depth_follows_the_formula(basis, target_depth):
    num_components = 2 if basis == "linear" else 3
    model = decomposed(num_components, basis).double()
    vit = recompose(model, target_depth)
    assert len(vit.blocks) == target_depth
    for layer, block in enumerate(vit.blocks):
        c = _hand_coefficients(basis, target_depth, layer)[:num_components]
        for name, value in block.named_parameters():
            expected = sum(c[k] * dict(model.blocks.components[k].named_parameters())[name]
                           for k in range(num_components))
            torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    shared = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    for name, value in shared.items():
        torch.testing.assert_close(vit.state_dict()[name], value, rtol=0, atol=0)


def test_chebyshev_coefficients_at_the_ends_and_one_layer():
    torch.testing.assert_close(coefficients("chebyshev", 4, 2),
                               torch.tensor([[1.0, -1, 1, -1], [1, 1, 1, 1]], dtype=torch.float64))
    torch.testing.assert_close(coefficients("power", 3, 1), torch.tensor([[1.0, 0, 0]], dtype=torch.float64))


def test_only_trainable_components_get_gradients():
    model = decomposed(3, trainable_components=[2])
    model(torch.randn(2, 1, 16, 16)).square().mean().backward()
    for k, component in enumerate(model.blocks.components):
        for name, param in component.named_parameters():
            if k == 2:
                assert param.grad is not None and param.grad.abs().sum() > 0, name
            else:
                assert not param.requires_grad and param.grad is None, (k, name)
    assert model.head.fc.weight.grad is not None and model.pos_embed.grad is not None


def test_bad_options_are_build_errors(tmp_path):
    for options, match in ((dict(basis="fourier"), "basis"), (dict(basis="linear", num_components=3), "exactly 2"),
                           (dict(trainable_components=[3]), "trainable_components"),
                           (dict(drop_path_rate=0.1), "stochastic depth"),
                           (dict(init_from=str(tmp_path / "none.safetensors")), "does not exist")):
        with pytest.raises(zoo.ModelConfigError, match=match):
            DecomposedViT(**SMALL, **options)
    save_file({"head.fc.weight": torch.zeros(5, 24)}, tmp_path / "bad.safetensors")
    with pytest.raises(zoo.ModelConfigError, match="lacks the shared weights"):
        DecomposedViT(**SMALL, init_from=str(tmp_path / "bad.safetensors"))


def test_incremental_stage_under_the_harness_trains_the_new_component_only(tmp_path, monkeypatch):
    """Stage 3 of incremental training through main.py: components 0 and 1 come from the previous stage's file
    and stay bit-identical; component 2 (started at zero) and the shared parts move."""
    monkeypatch.chdir(tmp_path)
    previous = DecomposedViT(depth=3, num_components=2, img_size=32, patch_size=8, in_chans=1, num_classes=10,
                             dim=24, num_heads=2)
    with torch.no_grad():
        for param in previous.blocks.components[1].parameters():
            param.normal_(std=0.02)
    save_file({k: v.contiguous() for k, v in previous.state_dict().items()}, tmp_path / "stage2.safetensors")
    kwargs = ("{depth: 3, num_components: 3, trainable_components: [2], patch_size: 8, dim: 24, num_heads: 2, "
              f"init_from: {tmp_path / 'stage2.safetensors'}}}")
    assert main.main(["--model=learngene_vit_tiny_patch4_32", "--dataset=digits", "--recipe=seed", "--epochs=1",
                      "--batch-size=32", "--max-steps-per-epoch=3", "--device=cpu", "--model-save",
                      f"--model-kwargs={kwargs}"]) == 0
    run = os.path.join("results", "runs", os.listdir(os.path.join("results", "runs"))[0])
    trained = load_file(os.path.join(run, "model.safetensors"))
    before = previous.state_dict()
    for name, value in before.items():
        if name.startswith(("blocks.components.0.", "blocks.components.1.")):
            torch.testing.assert_close(trained[name], value, rtol=0, atol=0)
    new = {k: v for k, v in trained.items() if k.startswith("blocks.components.2.")}
    assert new and all(v.abs().sum() > 0 for v in new.values()), "every tensor of the new component trained"
    assert not torch.equal(trained["head.fc.weight"], before["head.fc.weight"])


def test_descendant_from_a_learngene_file_and_from_scratch(tmp_path):
    model = decomposed(3)
    path = tmp_path / "learngene.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    kwargs = dict(num_classes=5, in_chans=1, img_size=16, patch_size=4, dim=24, num_heads=2)
    grown = zoo.create_model("learngene_descendant_vit_tiny_patch4_32", depth=5, learngene=str(path),
                             drop_path_rate=0.1, **kwargs)
    expected = recompose(model, 5)
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(grown.state_dict()[name], value, rtol=0, atol=0)
    assert grown.blocks[-1].drop_path.p == pytest.approx(0.1)
    scratch = zoo.create_model("learngene_descendant_vit_tiny_patch4_32", depth=5, **kwargs)
    assert type(scratch) is VisionTransformer and scratch.state_dict().keys() == grown.state_dict().keys()


@pytest.mark.slow  # 30 s: eight runs, each reading Fashion-MNIST
@pytest.mark.skipif(not FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_the_experiment_command_end_to_end_and_resumed(tmp_path, monkeypatch, capsys):
    """benchmarks.learngene at its smallest: two incremental stages, three arms at two depths, its CSV, table and
    plots; run again, it trains nothing and writes the same rows."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("# x\n<!-- learngene-table:start -->\n<!-- learngene-table:end -->\nrest\n")
    argv = ["--depths=1,2", "--epochs=1", "--stage-epochs=1", "--components=2", "--ancestry-depth=2",
            "--steps-per-epoch=1", "--batch-size=8", "--test-images=10", "--out=out", "--plots=plots",
            "--checkpoint-root=ck"]
    assert learngene_experiment.main(argv) == 0
    rows = read_csv(tmp_path / "out" / "learngene.csv")
    assert [(r["arm"], r["depth"]) for r in rows] == [
        ("learngene", "2"), ("learngene", "2"), ("recomposed", "1"), ("scratch", "1"), ("scratch_plus", "1"),
        ("recomposed", "2"), ("scratch", "2"), ("scratch_plus", "2")]
    recomposed, scratch_plus = rows[2], rows[4]
    assert (recomposed["train_images"], recomposed["learngene_images"], recomposed["total_images"]) == ("8", "16", "24")
    assert (scratch_plus["epochs"], scratch_plus["total_images"]) == ("3", "24")
    assert all(list(tmp_path.glob(f"out/runs/{r['run_id']}/model.safetensors")) for r in rows[:2])
    assert (tmp_path / "plots" / "learngene_accuracy_vs_depth.png").is_file()
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| 2 |" in table and "Depths 1, 2 together" in table
    assert table.rstrip() in (tmp_path / "README.md").read_text()
    assert (tmp_path / "README.md").read_text().endswith("<!-- learngene-table:end -->\nrest\n")
    capsys.readouterr()
    assert learngene_experiment.main(argv) == 0
    assert capsys.readouterr().out.count("done already") == len(rows)
    assert read_csv(tmp_path / "out" / "learngene.csv") == rows
