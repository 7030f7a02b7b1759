"""The run's settings: one typed dataclass; scenario defaults < TOML file < command-line flags.

Everything is validated here, before any work: a problem is a ParityInputError naming the flag or key,
what was received and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg, arg_given
from parity.settings.classes import class_mapping, flag_pair
from parity.settings.spec import ACTIVATIONS, LOSSES, ConvSpec, DenseSpec, PoolSpec
from parity.settings.config_file import input_file, read_file
from parity.settings.optimizer_registry import OPTIMIZERS, OptimizerSettings, optimizer_settings
from parity.settings.scenarios import SCENARIOS

__all__ = ["ParityInputError", "RunConfig", "DTYPES", "DATA_KINDS", "WORST_GRADIENTS", "read_file", "resolve"]

DTYPES = ("float32", "float64")
DATA_KINDS = ("linear", "blobs", "bars", "csv")
MAX_SEED = 2**32 - 1  # numpy.random.RandomState accepts seeds in [0, 2**32)
MAX_COUNT = 2**31 - 1  # epochs and batch size go to TensorFlow as int32; a larger one fails inside it
# Gradient entries the long-form table keeps per gradient and phase besides the rows that do not pass
# (unless all_gradients): enough to see the largest differences, few enough that 1M samples write in no time.
WORST_GRADIENTS = 20


@dataclass(frozen=True)
class RunConfig:
    scenario: str = "seed"
    dtype: str = "float32"
    seed: int = 44  # Keras's initial weights and fit shuffling (parity.settings.scenarios says why 44)
    data_seed: int = 1337  # the synthetic data: 1337 gives the notebook's (first x = -0.70854271)
    data_kind: str = "linear"
    samples: int | None = 200  # None: as many as the CSV file has
    train: int | None = None  # leading samples used for fitting and stepping; None: 80%
    noise: float = 0.05
    data_path: Path | None = None
    x_columns: tuple[str, ...] | None = None
    y_columns: tuple[str, ...] | None = None
    layers: tuple[DenseSpec, ...] | None = None  # None only with model_path: the file says
    features: tuple[ConvSpec | PoolSpec, ...] = ()  # convolutions and poolings before the Dense layers (scenario cnn)
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of an image input, rows flattened channel-major
    loss: str = "mean_squared_error"
    model_path: Path | None = None
    epochs: int = 20
    batch_size: int = 10
    lr: float = 0.01  # the run's learning rate: the optimizer's lr (resolve keeps them one value)
    optimizer: OptimizerSettings = field(default_factory=lambda: optimizer_settings("sgd"))
    rtol: float | None = None  # None: the dtype's named tolerance
    atol: float | None = None
    out: Path | None = None
    plots: bool = True
    all_gradients: bool = False  # the gradients table holds every entry, not only those that matter
    quiet: bool = False
    config_path: Path | None = None
    reference: str | None = None  # a recorded Keras side (`parity record`: a file, or a shipped name) to compare with
    classes: tuple[tuple[str, str], ...] = ()  # (book class, the user's class name): --class Affine=Dense, [classes]

    def as_dict(self) -> dict:
        """The settings as summary.json records them: what the run computed, not how it printed."""
        d = asdict(self)
        del d["quiet"]
        del d["reference"]  # summary.json's keras_side says where the Keras side came from
        for key in ("data_path", "model_path", "out", "config_path"):
            d[key] = None if d[key] is None else str(d[key])
        if self.layers is not None:
            d["layers"] = [{"units": s.units, "activation": s.activation} for s in self.layers]
        for key in ("features", "input_shape"):  # recorded where a run has them: Dense runs' records are unchanged
            if not d[key]:
                del d[key]
        if self.features:
            d["features"] = feature_records(self.features)
        d["optimizer"] = self.optimizer.as_dict()
        del d["classes"]
        if self.classes:  # recorded where given, so a run without a mapping writes what it always wrote
            d["classes"] = dict(self.classes)
        return d


def feature_records(features) -> list[dict]:
    """The convolutions and poolings as summary.json records them."""
    return [{"kind": "convolution", "filters": f.filters, "kernel": list(f.kernel), "stride": f.stride, "pad": f.pad,
             "activation": f.activation} if isinstance(f, ConvSpec) else
            {"kind": "pooling", "pool": list(f.pool), "stride": f.stride, "pad": f.pad} for f in features]


def resolve(flags: dict, config_path: Path | None = None, check_files: bool = True) -> RunConfig:
    """Scenario defaults, then the file, then the flags that were given; validated."""
    from_file = read_file(config_path) if config_path is not None else {}
    scenario = flags.get("scenario") or from_file.get("scenario") or "seed"
    if scenario not in SCENARIOS:
        raise ParityInputError(f"{arg('scenario')} must be one of {', '.join(SCENARIOS)} (received: {scenario})")
    base = SCENARIOS[scenario]
    values = {"data_kind": base.data_kind, "samples": base.samples, "noise": base.noise, "layers": base.layers,
              "loss": base.loss, "epochs": base.epochs, "batch_size": base.batch_size, "lr": base.lr,
              "seed": base.seed, "data_seed": base.data_seed, "features": base.features, "input_shape": base.input_shape}
    values |= from_file
    values |= {k: v for k, v in flags.items() if v is not None}
    if values.get("data_path") is not None and "data_kind" not in from_file:
        values["data_kind"] = "csv"
    if values["data_kind"] == "csv" and flags.get("samples") is None and "samples" not in from_file:
        values["samples"] = None
    if values.get("model_path") is not None and "layers" in from_file:
        raise ParityInputError(f"{arg('model_path')} and [model] layers in {config_path.name} both give the architecture; "
                         "keep one of them")
    if values.get("model_path") is not None:
        values["layers"] = None  # the saved model says
        values["features"], values["input_shape"] = (), None
        if flags.get("epochs") is None and "epochs" not in from_file:
            values["epochs"] = 0  # a user's model is compared as saved unless asked to fit
    values["optimizer"], values["lr"] = _optimizer(flags, from_file, base.lr, config_path)
    given = class_mapping(dict(flag_pair(text) for text in flags.get("classes") or ()),
                          lambda k, v: arg_given("classes", f"{k}={v}"))
    values["classes"] = tuple({**dict(from_file.get("classes", ())), **dict(given)}.items())
    values["scenario"] = scenario
    values["config_path"] = config_path
    known = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in values.items() if k in known})
    _validate(config)
    if check_files:  # a recorded check reads neither file again (parity.prepare.resolve_recorded)
        _input_files(config, from_file.get("data_path_from") if flags.get("data_path") is None else None)
    return config


def _input_files(c: RunConfig, data_from: tuple[str, str] | None) -> None:
    """The data file and the saved model are files, checked here, before TensorFlow loads; a path from the TOML
    file is named by the file and its key."""
    if c.data_path is not None and c.data_kind == "csv" and data_from is None:
        input_file(c.data_path, arg("data_path"))
    elif c.data_path is not None and c.data_kind == "csv" and not c.data_path.is_file():
        key, written = data_from
        problem = "is a folder, not a file" if c.data_path.is_dir() else "names no file"
        raise ParityInputError(f"{key} = \"{written}\" {problem} (looked for {c.data_path}: a relative path is "
                               "relative to the TOML file)")
    if c.model_path is not None:
        if c.model_path.is_dir():
            input_file(c.model_path, arg("model_path"))
        if c.model_path.suffix != ".keras":
            raise ParityInputError(f"{arg('model_path')} must be a .keras file saved by model.save (received: "
                                   f"{c.model_path})")
        input_file(c.model_path, arg("model_path"))


def _flag_label(key: str) -> str:
    """How the command line or Python spells the optimizer or one of its keys: --optimizer, optimizer={..., 'lr': ...}."""
    return arg("optimizer") if key == "name" else f"{arg('optimizer')}{{..., {key!r}: ...}}"


def _learning_rate(value, where: str) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ParityInputError(f"{where} must be a finite number above 0 (received: {value})")
    return value


def _optimizer(flags: dict, from_file: dict, scenario_lr: float, path: Path | None) -> tuple[OptimizerSettings, float]:
    """The run's optimizer and learning rate, from the flags (or keywords) over the file over the defaults.

    The optimizer's name: the flag's, else the file's, else sgd; the file's hyperparameters apply when it
    names the same optimizer. The learning rate: given with the flags (--lr, or lr in the optimizer= dict),
    else in the file ([train] lr, or lr in its optimizer table), else the default: the scenario's lr for
    plain SGD (scenarios are tuned for it) and the book's default for every other optimizer (Adam's 0.001
    is not the scenario's 0.01). One source that gives lr twice, with two values, is an error.
    """
    train = f"{path.name}: [train]" if path is not None else "[train]"
    in_file = optimizer_settings(from_file["optimizer"], label=f"{train} optimizer") if "optimizer" in from_file \
        else None
    given = optimizer_settings(flags["optimizer"], label=_flag_label) if flags.get("optimizer") is not None else None
    name = (given or in_file or optimizer_settings("sgd")).name
    tables = [t for t in (in_file, given) if t is not None and t.name == name]  # the file's first: flags win
    hyper = {k: v for t in tables for k, v in t.values().items() if k in t.given and k != "lr"}
    sources = (  # (lr, where it was said, the optimizer table of the same source), flags first
        (_learning_rate(flags.get("lr"), arg("lr")), arg("lr"), given if any(t is given for t in tables) else None),
        (_learning_rate(from_file.get("lr"), f"{train} lr"), f"{train} lr",
         in_file if any(t is in_file for t in tables) else None))
    lr = None
    for plain, said, table in sources:
        in_table = table.hyper["lr"] if table is not None and "lr" in table.given else None
        if plain is not None and in_table is not None and plain != in_table:
            label = _flag_label("lr") if table is given else "[train] optimizer.lr"
            raise ParityInputError(f"{said} ({plain:g}) and {label} ({in_table:g}) both give the learning rate; "
                                   "keep one")
        lr = lr if lr is not None else (in_table if in_table is not None else plain)
    said_lr = lr is not None
    if lr is None:
        lr = scenario_lr if name == "sgd" else OPTIMIZERS[name].defaults["lr"]
    settings = optimizer_settings(name, label=_flag_label, **hyper, lr=float(lr))
    return replace(settings, given=tuple(hyper) + (("lr",) if said_lr else ())), float(lr)


def _validate(c: RunConfig) -> None:
    def need(ok: bool, message: str):
        if not ok:
            raise ParityInputError(message)

    need(c.dtype in DTYPES, f"{arg('dtype')} must be float32 or float64 (received: {c.dtype})")
    need(0 <= c.seed <= MAX_SEED, f"{arg('seed')} must be an integer in [0, {MAX_SEED}] (received: {c.seed})")
    need(0 <= c.data_seed <= MAX_SEED, f"{arg('data_seed')} must be an integer in [0, {MAX_SEED}] (received: {c.data_seed})")
    need(c.data_kind in DATA_KINDS, f"[data] kind must be one of {', '.join(DATA_KINDS)} (received: {c.data_kind})")
    need(c.data_kind != "csv" or c.data_path is not None, f"[data] kind = \"csv\" needs a file: {arg('data_path')} FILE.csv")
    need(c.samples is None or c.samples >= 2, f"{arg('samples')} must be at least 2 (received: {c.samples})")
    if c.samples is not None and c.train is not None:
        need(1 <= c.train <= c.samples, f"{arg('train')} must be between 1 and {arg('samples')} ({c.samples}) (received: {c.train})")
    need(c.train is None or c.train >= 1, f"{arg('train')} must be at least 1 (received: {c.train})")
    need(math.isfinite(c.noise) and c.noise >= 0, f"[data] noise must be a finite number >= 0 (received: {c.noise})")
    need(c.epochs >= 0, f"{arg('epochs')} must be 0 (no fit) or more (received: {c.epochs})")
    need(c.epochs <= MAX_COUNT, f"{arg('epochs')} must be at most {MAX_COUNT} (received: {c.epochs})")
    need(c.batch_size <= MAX_COUNT, f"{arg('batch_size')} must be at most {MAX_COUNT} (received: {c.batch_size})")
    need(math.isfinite(c.lr) and c.lr > 0, f"{arg('lr')} must be a finite number above 0 (received: {c.lr})")
    largest = float(np.finfo(c.dtype).max)  # as for a CSV value: the run's dtype must hold it
    need(c.lr <= largest, f"{arg('lr')} {c.lr:g} does not fit in {c.dtype} (largest magnitude {largest:.4g}); use "
         f"a smaller {arg('lr')}" + (f", or {arg('dtype')} float64" if c.dtype != "float64" else ""))
    need(np.asarray(c.lr, dtype=c.dtype) > 0, f"{arg('lr')} {c.lr:g} is 0 in {c.dtype} (smallest step "
         f"{float(np.finfo(c.dtype).smallest_subnormal):.4g}); use a larger {arg('lr')}")
    need(c.batch_size >= 1, f"{arg('batch_size')} must be at least 1 (received: {c.batch_size})")
    need(c.loss in LOSSES, f"[model] loss must be one of {', '.join(LOSSES)} (received: {c.loss})")
    for name in ("rtol", "atol"):
        value = getattr(c, name)
        need(value is None or (math.isfinite(value) and value >= 0),
             f"[compare] {name} must be a finite number >= 0 (received: {value})")
    if c.layers is not None:
        need(len(c.layers) > 0, "[model] layers must list at least one layer")
        for i, layer in enumerate(c.layers):
            need(layer.units >= 1, f"[model] layers[{i}].units must be at least 1 (received: {layer.units})")
            need(layer.activation in ACTIVATIONS, f"[model] layers[{i}].activation must be one of "
                 f"{', '.join(ACTIVATIONS)} (received: {layer.activation})")


def with_defaults(config: RunConfig, samples: int) -> RunConfig:
    """Fill what depends on the data: its size, the 80% training split, the report folder."""
    train = config.train if config.train is not None else max(1, int(samples * 0.8))
    if not 1 <= train <= samples:
        raise ParityInputError(f"{arg('train')} must be between 1 and the number of samples ({samples}) (received: {train})")
    out = config.out if config.out is not None else Path("reports") / config.scenario
    return replace(config, samples=samples, train=train, out=out)
