"""Recipes: schedules against their formulas, the compression rule, every recipe file, mixup, EMA, a SAM run."""
import json
import math
import os

import pytest
import torch
import torch.nn as nn

import main
import zoo
from harness.augment import MixupCutmix, build_batch_augment
from harness.config import CONFIG_DIR, FIELDS, build_config, defaults, load_yaml
from harness.ema import ModelEma
from harness.recipes import effective_lr, lr_factor
from walks import walk

SPE = 100  # steps per epoch


def cfg_with(**keys):
    return build_config({"recipe": "seed", "lr": 1.0, **keys})


def test_cosine_with_warmup_ends_warmup_at_the_base_rate_and_decays_to_the_floor():
    cfg = cfg_with(scheduler="cosine", epochs=10, warmup_epochs=1, warmup_lr=0.1, min_lr=0.01)
    assert lr_factor(cfg, 0, SPE) == pytest.approx(0.1 + 0.9 / SPE)
    assert lr_factor(cfg, SPE - 1, SPE) == pytest.approx(1.0)
    mid = SPE + (10 * SPE - SPE) // 2
    assert lr_factor(cfg, mid, SPE) == pytest.approx(0.01 + 0.99 * 0.5, abs=1e-9)
    assert lr_factor(cfg, 10 * SPE, SPE) == pytest.approx(0.01)


@pytest.mark.parametrize("keys,step,expected", [
    (dict(scheduler="step", decay_epochs=2.4, gamma=0.97), 5 * SPE, 0.97 ** 2),
    (dict(scheduler="exponential", decay_epochs=2.4, gamma=0.97), 5 * SPE, 0.97 ** (5 / 2.4)),
    (dict(scheduler="multistep", milestones=[0.5, 0.75], gamma=0.1), 8 * SPE, 0.01),
    (dict(scheduler="linear", min_lr=0.0), 4 * SPE, 0.6),
    (dict(scheduler="poly", poly_power=2.0), 4 * SPE, 0.36),
    (dict(scheduler="cosine_restarts", restart_epochs=2, restart_mult=2.0), 4 * SPE, 0.5),  # halfway through cycle 2
    (dict(scheduler="cyclic", cycle_epochs=4, min_lr=0.2), 1 * SPE, 0.6),  # quarter cycle: halfway up
    (dict(scheduler="onecycle", warmup_epochs=2, warmup_lr=0.04), 0, 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi / 200))),
])
def test_schedules_follow_their_formulas(keys, step, expected):
    assert lr_factor(cfg_with(epochs=10, **keys), step, SPE) == pytest.approx(expected)


@pytest.mark.parametrize("keys", [
    dict(scheduler="step", decay_epochs=2.4, gamma=0.97, warmup_epochs=5),
    dict(scheduler="cosine", warmup_epochs=5, min_lr=0.001),
    dict(scheduler="cosine_restarts", restart_epochs=50, restart_mult=2.0),
    dict(scheduler="multistep", milestones=[0.3, 0.6]),
])
def test_a_compressed_schedule_keeps_the_papers_shape(keys):
    paper = cfg_with(epochs=350, **keys)
    short = cfg_with(epochs=10, paper_epochs=350, **keys)
    spe = 1000  # enough steps that a squeezed warm-up is still a ramp, not a handful of steps
    for fraction in (0.005, 0.1, 0.37, 0.61, 0.9, 0.999):
        assert lr_factor(short, int(fraction * 10 * spe), spe) == pytest.approx(
            lr_factor(paper, int(fraction * 350 * spe), spe), rel=0.05, abs=1e-4), fraction


def recipe_files():
    return sorted((CONFIG_DIR / "models").glob("*.yaml"))


def test_every_family_has_a_recipe_file_naming_only_known_keys_and_models():
    families = {zoo.get_model_info(n).family for n in zoo.list_models()}
    assert families <= {p.stem for p in recipe_files()}
    for path in recipe_files():
        data = load_yaml(path)
        assert set(data) <= {"recipe", "variants"}, path
        assert set(data["recipe"]) <= set(FIELDS), path
        registered = {n for n in zoo.list_models() if zoo.get_model_info(n).family == path.stem}
        for variant, keys in (data.get("variants") or {}).items():
            assert set(keys) <= set(FIELDS), (path, variant)
            # A typo, or a recipe for a model that is not (yet) registered, must fail here, not pass unseen.
            assert variant in registered, f"{path.name}: variant {variant!r} is not a registered {path.stem} model"


def family_recipe(name: str) -> dict:
    """The keys that the model's family file sets for it: the family recipe, then the model's own line."""
    data = load_yaml(CONFIG_DIR / "models" / f"{zoo.get_model_info(name).family}.yaml")
    return {**data["recipe"], **((data.get("variants") or {}).get(name) or {})}


@pytest.mark.parametrize("name", walk(zoo.list_models()))
def test_every_model_builds_its_paper_recipe(name):
    cfg = build_config({"model": name})
    recipe = family_recipe(name)
    assert cfg.recipe == "paper" and {"optimizer", "scheduler"} <= recipe.keys()
    for key, value in recipe.items():
        if key != "model_kwargs":  # model options are checked by building the model below
            assert getattr(cfg, key) == value, key
    with torch.device("meta"):  # the recipe's model options are accepted, without allocating weights
        zoo.create_model(name, num_classes=10, in_chans=3, **cfg.model_kwargs)


def test_paper_and_seed_recipes():
    paper = build_config({"model": "resnet18", "batch_size": 128})
    assert (paper.optimizer, paper.weight_decay, paper.scheduler) == ("sgd", 1e-4, "step")
    assert effective_lr(paper) == pytest.approx(0.05)  # 0.1 at batch 256, scaled to 128
    seed = build_config({"model": "resnet18", "recipe": "seed"})
    base = defaults()
    assert all(getattr(seed, k) == base[k] for k in ("optimizer", "lr", "scheduler", "weight_decay", "sam"))
    sam = build_config({"model": "resnet18_sam"})
    assert sam.sam and sam.scheduler == "cosine" and sam.label_smoothing == 0.1


def test_model_kwargs_layers_add_up():
    cfg = build_config({"model": "vit_tiny_patch16_224", "model_kwargs": "{attn_drop_rate: 0.2}"})
    assert cfg.model_kwargs == {"drop_rate": 0.0, "drop_path_rate": 0.1, "attn_drop_rate": 0.2}


@pytest.mark.parametrize("mixup,cutmix", [(0.8, 0.0), (0.0, 1.0)])
def test_mixup_and_cutmix_targets_sum_to_one(mixup, cutmix):
    mixer = MixupCutmix(5, mixup_alpha=mixup, cutmix_alpha=cutmix)
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 4, 0])
    mixed, target = mixer(x, y)
    assert mixed.shape == x.shape and target.shape == (6, 5)
    assert torch.allclose(target.sum(1), torch.ones(6))
    lam = target[1, 1].item()  # image 1 paired with image 4
    if cutmix:  # λ is the share of pixels that stayed
        assert (mixed[1] == x[1]).float().mean().item() == pytest.approx(lam, abs=1e-6)
    else:
        assert torch.allclose(mixed[1], lam * x[1] + (1 - lam) * x[4], atol=1e-6)


@pytest.mark.parametrize("policy", ["randaugment", "autoaugment", "trivialaugment"])
def test_batch_augment_keeps_uint8_batches(policy):
    augment = build_batch_augment(cfg_with(auto_augment=policy, random_erasing=0.5, aug_group_size=4))
    for channels in (1, 3):
        images = torch.randint(0, 256, (10, channels, 8, 8), dtype=torch.uint8)
        out = augment(images)
        assert out.shape == images.shape and out.dtype == torch.uint8


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_of_a_constant_converges_to_it(warmup):
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(-3.0)
    ema = ModelEma(model, decay=0.9, warmup=warmup)
    model.weight.data.fill_(5.0)
    gaps = []
    for _ in range(200):
        ema.update(model)
        gaps.append(5.0 - ema.module.weight.item())
    assert all(0 <= later < earlier for earlier, later in zip(gaps, gaps[1:]) if earlier > 1e-4), \
        "the average moves towards the constant every step and never overshoots it"
    assert gaps[-1] < 1e-5
    assert model.weight.item() == 5.0  # the raw model is left alone


def test_ema_warmup_follows_the_weights_closely_at_first():
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.zero_()
    plain, warm = ModelEma(model, decay=0.999, warmup=False), ModelEma(model, decay=0.999, warmup=True)
    model.weight.data.fill_(1.0)
    for _ in range(20):
        plain.update(model)
        warm.update(model)
    assert plain.module.weight.item() < 0.05 < 0.5 < warm.module.weight.item()


@pytest.mark.slow
def test_a_sam_run_with_ema_mixup_and_randaugment_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main.main(["--model=resnet18_cifar", "--dataset=digits", "--batch-size=16", "--max-steps-per-epoch=2",
                      "--epochs=2", "--device=cpu", "--recipe=seed", "--sam=True", "--ema-decay=0.9",
                      "--ema-select=true", "--mixup-alpha=0.2", "--cutmix-alpha=1.0", "--auto-augment=randaugment",
                      "--agc-clip=0.01", "--model-kwargs={widths: [8, 16, 16, 16]}"]) == 0
    run_dir = os.path.join("results", "runs", os.listdir("results/runs")[0])
    metrics = open(os.path.join(run_dir, "metrics.csv")).read()
    assert "val_top1_ema" in metrics
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert "test_top1_ema" in summary
