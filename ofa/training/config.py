"""Training configs: YAML files of plain values, checked before any work starts.

A config is a mapping whose ``space`` entry (a preset name, a space dict or
a space file) decides which trainer runs it (``ofa.training.TRAINERS`` is
keyed by the space type). Every trainer declares its defaults as a nested
dict; :func:`merge_defaults` fills them in, refuses unknown keys and values
of the wrong type, and the trainer then checks ranges with :func:`check_value`.
Errors are :class:`~ofa.errors.ConfigError` naming the key, e.g.
``train.batch_size = -3 is not allowed: must be >= 1``.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError


SHIPPED_CONFIGS = Path(__file__).with_name("configs")


def shipped_configs() -> list[str]:
    """Names of the training configs shipped with the package (``ofa/training/configs/*.yaml``)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A config file path, or the name of a shipped config (``mbv3-small-digits``; the
    old checkout path ``configs/mbv3-small-digits.yaml`` is accepted too)."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = SHIPPED_CONFIGS / (path.stem + ".yaml")
    if path.suffix in ("", ".yaml") and path.parent in (Path("."), Path("configs")) and shipped.is_file():
        return shipped
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a directory; pass a YAML file or a shipped config name "
                          f"({shipped_configs()})")
    raise ConfigError(f"config file {str(path)!r} does not exist; shipped configs: {shipped_configs()}")


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping (``yaml.safe_load``: plain data only) from a file or a shipped config name."""
    import yaml

    path = resolve_config_path(path)
    try:
        value = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping (key: value lines), "
                          f"got {type(value).__name__}")
    return value


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def merge_defaults(config: dict, defaults: dict, prefix: str = "", open_keys: Sequence[str] = ()) -> dict:
    """A deep copy of ``defaults`` updated with ``config``.

    Unknown keys and values of another type than the default's are refused
    (an int is accepted where a float is expected; a default of ``None``
    accepts anything). Mappings in ``open_keys`` (dotted names) take any keys."""
    if not isinstance(config, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the config'} must be a mapping, got {type(config).__name__}")
    merged = copy.deepcopy(defaults)
    for key, value in config.items():
        name = f"{prefix}{key}"
        if key not in defaults:
            import difflib

            close = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {name!r}{hint}; allowed keys here: {sorted(defaults)}")
        default = defaults[key]
        if isinstance(default, dict) and name not in open_keys:
            merged[key] = merge_defaults(value, default, f"{name}.", open_keys)
        elif default is None or value is None and isinstance(default, (dict, list)):
            merged[key] = copy.deepcopy(value)
        elif isinstance(default, bool) != isinstance(value, bool) or not _same_kind(value, default):
            raise ConfigError(f"config key {name!r} must be {_type_name(default)}, got {value!r}")
        else:
            merged[key] = float(value) if isinstance(default, float) else copy.deepcopy(value)
    return merged


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_value(value: Any, key: str, *, minimum: float | None = None, maximum: float | None = None,
                above: float | None = None, choices: Sequence | None = None, integer: bool = False) -> Any:
    """Return ``value`` if it satisfies the constraints, else a ConfigError naming ``key``."""
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key {key!r} = {value!r} is not allowed; allowed values: {list(choices)}")
    if minimum is not None or maximum is not None or above is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} = {value!r} is not allowed: must be a finite number")
        if minimum is not None and value < minimum:
            raise ConfigError(f"config key {key!r} = {value!r} is not allowed: must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"config key {key!r} = {value!r} is not allowed: must be <= {maximum}")
        if above is not None and value <= above:
            raise ConfigError(f"config key {key!r} = {value!r} is not allowed: must be > {above}")
    return value


def config_space(config: dict):
    """The search space a config names (``space:`` preset, dict or file),
    with ``space_overrides`` (e.g. ``num_classes``) applied."""
    from ..spaces import resolve_space

    if "space" not in config:
        raise ConfigError("the config needs a 'space' key (a preset name such as 'mbv3-small', a space "
                          "mapping or a space file)")
    space = resolve_space(config["space"])
    overrides = config.get("space_overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError("config key 'space_overrides' must be a mapping of space fields")
    if overrides:
        try:
            space = space.replace(**overrides)
        except TypeError as error:
            raise ConfigError(f"config key 'space_overrides': {error}") from None
    return space


__all__ = ["check_value", "config_space", "load_yaml", "merge_defaults"]
