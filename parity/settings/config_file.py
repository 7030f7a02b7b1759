"""The run's settings file: a TOML file read into RunConfig fields, every key checked (its name, its type).
A problem is a ParityInputError naming the file and the key (`c.toml: [train] lr`), what was received and
what is allowed. A file saved with a byte-order mark (Notepad's UTF-8) is read as UTF-8. `input_file`: a
file the run reads is there, and a file, said as it was written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from parity.errors import ParityInputError, arg
from parity.settings.classes import class_mapping
from parity.settings.spec import DenseSpec

__all__ = ["input_file", "read_file"]


def input_file(path: Path, label: str, shown=None) -> None:
    """A file the run reads must be there and be a file; `label` names where the path came from, `shown` the path
    as it was written there (default: `path`)."""
    shown = path if shown is None else shown
    if str(shown) == "":
        raise ParityInputError(f"{label} must be a file path (received: '')")
    if path.is_dir():
        raise ParityInputError(f"{label} {shown} is a folder, not a file")
    if not path.is_file():
        raise ParityInputError(f"{label} file not found (received: {shown})")


# TOML layout: section -> key -> (RunConfig field, expected type)
_FILE_KEYS = {
    None: {"scenario": ("scenario", str), "seed": ("seed", int), "dtype": ("dtype", str)},
    "data": {"kind": ("data_kind", str), "samples": ("samples", int), "train": ("train", int),
             "noise": ("noise", float), "path": ("data_path", str), "x_columns": ("x_columns", list),
             "y_columns": ("y_columns", list), "seed": ("data_seed", int)},
    "model": {"layers": ("layers", list), "loss": ("loss", str)},
    "train": {"epochs": ("epochs", int), "batch_size": ("batch_size", int), "lr": ("lr", float),
              "optimizer": ("optimizer", Mapping)},
    "compare": {"rtol": ("rtol", float), "atol": ("atol", float)},
}


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", list: "a list",
               Mapping: 'a name or a table like {name = "adam", lr = 0.001}'}


def _where(path: Path, section: str | None, key: str) -> str:
    return f"{path.name}: " + (f"[{section}] {key}" if section else key)


def _typed(value, kind, where: str):
    # Mapping stands for the optimizer: a name, or a table of its name and hyperparameters (resolve checks them)
    accepted = (str, Mapping) if kind is Mapping else kind
    ok = (isinstance(value, accepted) and not isinstance(value, bool)) or (kind is float and isinstance(value, int)
                                                                       and not isinstance(value, bool))
    if not ok:
        raise ParityInputError(f"{where} must be {_TYPE_WORDS[kind]} (received: {value!r})")
    return float(value) if kind is float else value


def _layers(value: list, where: str) -> tuple[DenseSpec, ...]:
    out = []
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ParityInputError(f"{at} must be a table like {{units = 2, activation = \"relu\"}} (received: {entry!r})")
        unknown = sorted(set(entry) - {"units", "activation"})
        if unknown:
            raise ParityInputError(f"{at} has unknown key {unknown[0]!r}; allowed: units, activation")
        if "units" not in entry:
            raise ParityInputError(f"{at} needs units (received: {entry!r})")
        units = _typed(entry["units"], int, f"{at}.units")
        activation = _typed(entry.get("activation", "linear"), str, f"{at}.activation")
        out.append(DenseSpec(units, activation))
    return tuple(out)


def read_file(path: Path) -> dict:
    """The TOML file as RunConfig fields; unknown keys and wrong types are errors."""
    input_file(path, arg("config_path"))
    try:
        # utf-8-sig: a file saved by Notepad starts with a byte-order mark, which TOML itself does not allow
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParityInputError(f"{arg('config_path')} {path} is not valid TOML: {exc}") from None
    values = {}
    for key, value in raw.items():
        if key == "classes":
            if not isinstance(value, dict):
                raise ParityInputError(f"{path.name}: [classes] must be a table such as Affine = \"Dense\" "
                                       f"(received: classes = {value!r})")
            values["classes"] = class_mapping(value, lambda k, v: f"{path.name}: [classes] {k} = {v!r}")
            continue
        if key == "grading":
            continue  # the grader results' points: parity.settings.grading reads and checks them
        if key in _FILE_KEYS and not isinstance(value, dict):
            raise ParityInputError(f"{path.name}: [{key}] must be a table (received: {key} = {value!r})")
        if key in _FILE_KEYS:
            for sub, item in value.items():
                if sub not in _FILE_KEYS[key]:
                    raise ParityInputError(f"{_where(path, key, sub)} is not a known key; "
                                     f"allowed in [{key}]: {', '.join(_FILE_KEYS[key])}")
                name, kind = _FILE_KEYS[key][sub]
                values[name] = _typed(item, kind, _where(path, key, sub))
                if name == "layers":
                    values[name] = _layers(item, _where(path, key, sub))
                elif kind is list:
                    values[name] = tuple(_typed(c, str, f"{_where(path, key, sub)} entry") for c in item)
        elif key in _FILE_KEYS[None]:
            name, kind = _FILE_KEYS[None][key]
            values[name] = _typed(value, kind, _where(path, None, key))
        else:
            sections = ", ".join([*(f"[{s}]" for s in (*_FILE_KEYS, "grading") if s), "[classes]"])
            raise ParityInputError(f"{path.name}: {key} is not a known key or section; allowed: "
                             f"{', '.join(_FILE_KEYS[None])}, {sections}")
    if "data_path" in values:
        written = values["data_path"]
        values["data_path"] = (path.parent / written).resolve()  # relative to the file
        # where the path came from, for its messages: the file and the key, as written there
        values["data_path_from"] = (f"{path.name}: [data] path", written)
    return values
