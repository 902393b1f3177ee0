"""``TrainConfig``: the one description of a training run.

The CLI builds its ``mlplab train`` flags from these fields, runs store it as
``config.json``, ``--config`` reads it back (JSON or TOML) and tuning samples it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlplab.errors import ConfigError

ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "selu", "sigmoid", "swish", "leaky_relu", "mish")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")
ENGINES = ("mlplab", "keras")
# Validation sets that are not a fraction of train: the whole test set (the lab), or a fixed
# half of it, so that the other half stays unseen for an honest final test (tuning).
VALIDATION_SETS = ("test", "test-half")


def _f(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose help text (and choices) the CLI reuses."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (defaults: the lab's model_1)."""

    layers: tuple[int, ...] = _f((64,), "hidden layer sizes, comma-separated, e.g. 256,128")
    activation: str = _f("tanh", "hidden-layer activation", choices=ACTIVATIONS)
    dropout: float = _f(0.0, "dropout rate after each hidden layer (0 = none)")
    batch_norm: bool = _f(False, "batch normalization before each hidden activation")
    optimizer: str = _f("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = _f(0.01, "peak learning rate (Keras SGD default: 0.01)")
    momentum: float = _f(0.0, "momentum for sgd (rho for rmsprop is Keras's default)")
    nesterov: bool = _f(False, "Nesterov momentum for sgd")
    schedule: str = _f("constant", "learning-rate schedule after warm-up", choices=SCHEDULES)
    warmup_epochs: float = _f(0.0, "epochs of linear learning-rate warm-up from 0")
    step_epochs: int = _f(10, "for --schedule step: multiply the rate by --step-factor "
                          "every N epochs")
    step_factor: float = _f(0.1, "for --schedule step: the factor applied every --step-epochs")
    weight_decay: float = _f(0.0, "decoupled weight decay (AdamW-style; any optimizer)")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy targets")
    batch_size: int = _f(64, "samples per gradient step")
    epochs: int = _f(5, "passes over the training data")
    patience: int = _f(0, "early stopping: stop after N epochs without val_loss improving "
                       "(0 = off)")
    restore_best: bool = _f(False, "with early stopping: keep the weights of the best epoch")
    shift: float = _f(0.0, "augmentation: random shift up to N pixels (0 = off)")
    rotation: float = _f(0.0, "augmentation: random rotation up to N degrees (0 = off)")
    scale: float = _f(0.0, "augmentation: random zoom by up to this fraction, e.g. 0.1 (0 = off)")
    elastic: float = _f(0.0, "augmentation: elastic distortion strength in pixels (0 = off)")
    validation: str = _f("test", "validation data: 'test' (the lab's choice), 'test-half' (a "
                         "fixed half of the test set; the other half stays unseen) or a "
                         "held-out fraction of train such as 0.1")
    data: str = _f("auto", "data source: auto, mnist-sample, mnist, fashion-mnist, a folder "
                   "or .npz")
    limit: int | None = _f(None, "use only the first N training samples (smoke runs)")
    seed: int = _f(42, "random seed: same seed, same history")
    engine: str = _f("mlplab", "training engine: mlplab (fused JAX epochs) or keras (model.fit)",
                     choices=ENGINES)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def augments(self) -> bool:
        return any((self.shift, self.rotation, self.scale, self.elastic))

    @property
    def val_fraction(self) -> float:
        return 0.0 if self.validation in VALIDATION_SETS else float(self.validation)

    def describe(self) -> str:
        """A short model description such as ``256-128 relu``."""
        return f"{'-'.join(map(str, self.layers))} {self.activation}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with the given fields changed (values are coerced like CLI input)."""
        return replace(self, **{k: coerce(k, v) for k, v in changes.items()})


FIELDS = {f.name: f for f in fields(TrainConfig)}


def coerce(name: str, value: Any) -> Any:
    """Convert a CLI/JSON/TOML value to the field's type, with a plain error."""
    if name not in FIELDS:
        known = ", ".join(FIELDS)
        raise ConfigError(f"unknown configuration field {name!r}; known fields: {known}")
    kind = FIELDS[name].type
    original = value
    try:
        if name == "layers":
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v != ""]
            if isinstance(value, int):
                value = [value]
            return tuple(int(v) for v in value)
        if value is None:
            return None
        if "bool" in kind:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if "int" in kind and "float" not in kind:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if "float" in kind:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        what = ("list of layer sizes such as 256,128" if name == "layers"
                else kind.replace(" | None", ""))
        raise ConfigError(f"--{name.replace('_', '-')}: {original!r} is not a valid "
                          f"{what}") from None


def validate(c: TrainConfig) -> None:
    """Reject impossible configurations with a message naming the flag."""
    def bad(flag: str, why: str) -> ConfigError:
        return ConfigError(f"--{flag}: {why}")

    if not c.layers or any(u < 1 for u in c.layers):
        raise bad("layers", f"{','.join(map(str, c.layers)) or 'nothing'} is not a list of "
                  "positive layer sizes, e.g. 256,128")
    for name, choices in (("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS),
                          ("schedule", SCHEDULES), ("engine", ENGINES)):
        if getattr(c, name) not in choices:
            raise bad(name, f"unknown {name} {getattr(c, name)!r}; choose one of "
                      f"{', '.join(choices)}")
    if not 0.0 <= c.dropout < 1.0:
        raise bad("dropout", f"{c.dropout} must be in [0, 1)")
    if not 0.0 <= c.label_smoothing < 1.0:
        raise bad("label-smoothing", f"{c.label_smoothing} must be in [0, 1)")
    for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "shift", "rotation",
                 "scale", "elastic"):
        v = getattr(c, name)
        if not math.isfinite(v) or v < 0:
            raise bad(name.replace("_", "-"), f"{v} must be a non-negative number")
    if c.lr == 0:
        raise bad("lr", "the learning rate must be positive")
    if c.momentum >= 1:
        raise bad("momentum", f"{c.momentum} must be below 1")
    if c.batch_size < 1:
        raise bad("batch-size", f"{c.batch_size} must be at least 1")
    if c.epochs < 1:
        raise bad("epochs", f"{c.epochs} must be at least 1")
    if c.patience < 0:
        raise bad("patience", f"{c.patience} must be 0 (off) or more")
    if c.step_epochs < 1 or not 0 < c.step_factor <= 1:
        raise bad("step-epochs", "needs --step-epochs >= 1 and 0 < --step-factor <= 1")
    if c.scale >= 1:
        raise bad("scale", f"{c.scale} must be below 1 (a fraction such as 0.1)")
    if c.limit is not None and c.limit < 1:
        raise bad("limit", f"{c.limit} must be at least 1")
    if c.validation not in VALIDATION_SETS:
        try:
            frac = float(c.validation)
        except ValueError:
            frac = -1.0
        if not 0.0 < frac < 1.0:
            raise bad("validation", f"{c.validation!r} must be 'test', 'test-half' or a "
                      "fraction such as 0.1")


def from_dict(d: dict[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
    """Build a config from a mapping (JSON/TOML), starting from ``base`` or the defaults."""
    return (base or TrainConfig()).with_overrides(**d)


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML or JSON config file (e.g. a run's ``config.json``)."""
    return from_dict(read_config_file(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields a TOML or JSON file spells out (a ``[train]`` table is accepted too)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_bytes()
    try:
        if path.suffix == ".toml":
            import tomllib

            d = tomllib.loads(text.decode())
        else:
            d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigError(f"config file {path} is not valid {kind} ({e})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a table/object of fields")
    d = d.get("train", d) if isinstance(d.get("train"), dict) else d
    try:
        from_dict(d)  # validate now, so the error names the file
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    return d


# The strongest MLP recipe we found for MNIST-style data (see README, "--recipe best").
RECIPES: dict[str, dict[str, Any]] = {
    "lab": {},
    "best": dict(layers=(1024, 1024), activation="relu", dropout=0.2, optimizer="adamw",
                 lr=1e-3, weight_decay=0.05, schedule="cosine", warmup_epochs=2,
                 label_smoothing=0.1, batch_size=128, epochs=60, shift=2.0, rotation=12.0,
                 scale=0.1, elastic=1.5),
}


def make_config(*, recipe: str | None = None, config_file: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Recipe, then config file, then explicit flags: later sources win."""
    if recipe is not None and recipe not in RECIPES:
        raise ConfigError(f"--recipe: unknown recipe {recipe!r}; choose one of "
                          f"{', '.join(RECIPES)}")
    values: dict[str, Any] = dict(RECIPES.get(recipe or "lab", {}))
    if config_file is not None:
        values.update(read_config_file(config_file))
    values.update(overrides or {})
    return from_dict(values)
