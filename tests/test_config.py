"""TrainConfig ↔ CLI ↔ JSON/TOML round trips and one-line errors for bad configurations."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mlplab.cli import main
from mlplab.config import RECIPES, TrainConfig, from_dict, load_config, make_config
from mlplab.errors import ConfigError


def test_json_round_trip(tmp_path):
    c = TrainConfig(layers=(256, 128), activation="relu", dropout=0.2, optimizer="adamw",
                    lr=3e-4, schedule="cosine", warmup_epochs=1.5, batch_norm=True, limit=100,
                    validation="0.1", shift=2.0)
    p = tmp_path / "config.json"
    p.write_text(c.to_json())
    assert load_config(p) == c
    assert from_dict(json.loads(c.to_json())) == c


def test_toml_and_train_table(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[train]\nlayers = [128, 64]\noptimizer = "adam"\nlr = 0.001\nepochs = 3\n')
    c = load_config(p)
    assert c.layers == (128, 64) and c.optimizer == "adam" and c.epochs == 3
    assert c.activation == TrainConfig().activation


def test_precedence_recipe_file_flags(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"epochs": 7, "lr": 0.5}))
    c = make_config(recipe="best", config_file=p, overrides={"lr": "0.25"})
    assert c.epochs == 7 and c.lr == 0.25
    assert c.layers == RECIPES["best"]["layers"]


def test_every_field_is_a_train_flag():
    from mlplab.cli import train

    flags = {opt for p in train.params for opt in p.opts}
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name


def test_cli_flags_reach_the_config(tmp_path, monkeypatch, capsys):
    """Train a tiny run from flags; its config.json holds exactly those values."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "mnist-sample", "--limit", "64", "--layers", "16,8",
              "--activation", "relu", "--optimizer", "adam", "--lr", "0.002", "--epochs", "1",
              "--batch-size", "32", "--seed", "7", "--no-batch-norm", "--name", "x", "--quiet"])
    assert e.value.code == 0, capsys.readouterr().err
    saved = load_config(tmp_path / "runs" / "x" / "config.json")
    assert saved == TrainConfig(data="mnist-sample", limit=64, layers=(16, 8), activation="relu",
                                optimizer="adam", lr=0.002, epochs=1, batch_size=32, seed=7)


@pytest.mark.parametrize("args,expected", [
    (["--optimizer", "adamax"], "unknown optimizer 'adamax'"),
    (["--dropout", "-0.1"], "--dropout: -0.1 must be in [0, 1)"),
    (["--layers", "0"], "--layers: 0 is not a list of positive layer sizes"),
    (["--layers", "64,x"], "--layers: '64,x' is not a valid"),
    (["--epochs", "0"], "--epochs: 0 must be at least 1"),
    (["--lr", "abc"], "--lr: 'abc' is not a valid float"),
    (["--validation", "1.5"], "--validation"),
    (["--config", "missing.json"], "does not exist"),
    (["--config", "bad.json"], "is not valid JSON"),
    (["--config", "unknown.json"], "unknown configuration field 'colour'"),
    (["--resume", "."], "is not an mlplab run"),
    (["--resume", "nowhere"], "is not a directory"),
    (["--recipe", "fastest"], "'fastest' is not one of"),
])
def test_bad_configuration_one_line_exit_2(args, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text('{"colour": "blue"}')
    with pytest.raises(SystemExit) as e:
        main(["train", *args] if "--resume" in args else
             ["train", "--data", "mnist-sample", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "runs").exists()


def test_config_errors_are_config_errors():
    with pytest.raises(ConfigError):
        TrainConfig(batch_size=0)
