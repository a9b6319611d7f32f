import dataclasses

import pytest

from harness.config import (FIELDS, Config, build_config, defaults, domain, flag, help_text, parse_command_line)
from harness.errors import UsageError


def config_from(*argv, config_file=None):
    keys, flags = parse_command_line(list(argv))
    return build_config(keys, config_file or flags["config"])


def test_every_key_is_declared_with_a_default_in_its_domain_and_a_help():
    assert Config().to_dict() == defaults()  # the defaults alone make a valid Config
    for name in FIELDS:
        assert domain(name).help, name
    text = help_text()
    assert all(f"{flag(name)}=" in text for name in FIELDS)


def test_seed_defaults():
    cfg = config_from("--recipe=seed")
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.lr) == (10, 128, "adam", 0.001)


@pytest.mark.parametrize("argv,expected", [
    (["--sam=True"], True), (["--sam=False"], False), (["--sam", "False"], False), (["--sam"], True),
    (["--sam=1"], True), (["--sam=0"], False), (["--sam=yes"], True), (["--sam=no"], False),
])
def test_booleans_are_real_booleans(argv, expected):
    assert config_from(*argv).sam is expected


def test_dashes_and_underscores_and_separate_values():
    cfg = config_from("--batch-size", "32", "--model_save=true", "--img-size=48", "--data-dir", "/tmp/x")
    assert (cfg.batch_size, cfg.model_save, cfg.img_size, cfg.data_dir) == (32, True, 48, "/tmp/x")


def test_seed_alias_resolves_to_canonical_name():
    assert config_from("--model=resnet").model == "resnet18"


def test_dataset_layer_applies():
    cfg = config_from("--dataset=cifar10")
    assert (cfg.input_size, cfg.crop_padding, cfg.hflip) == (32, 4, True)


def test_layers_order_file_then_command_line(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("epochs: 3\nbatch_size: 16\n")
    cfg = config_from("--epochs=5", config_file=str(user))
    assert (cfg.epochs, cfg.batch_size) == (5, 16)


@pytest.mark.parametrize("argv,message", [
    (["--epochs=ten"], "'epochs' .* must be an integer"),
    (["--lr=fast"], "'lr' .* must be a number"),
    (["--learning_rat=0.1"], "unknown config key 'learning_rat'.*valid keys are"),
    (["--epochs=0"], "epochs must be positive"),
    (["--batch-size=-1"], "batch_size must be positive"),
    (["--lr=0"], "lr must be positive"),
    (["--dataset=imagenet21k"], "unknown dataset 'imagenet21k'"),
    (["--recipe=fancy"], "unknown recipe"),
    (["--device=tpu"], "device must be"),
    (["--epochs"], "--epochs needs a value"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_bad_input_is_one_clear_error(argv, message):
    with pytest.raises(UsageError, match=message):
        config_from(*argv)


def test_unsafe_yaml_tags_are_refused(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("epochs: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        config_from(config_file=str(evil))


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        config_from(config_file=str(tmp_path / "nope.yaml"))


def test_config_is_one_typed_object():
    cfg = config_from()
    assert isinstance(cfg, Config) and dataclasses.asdict(cfg) == cfg.to_dict()
