"""Accelerator configs as plain JSON: the shipped ones in ``hardware_profiles/configs/`` or a user's file."""

from __future__ import annotations

import json
from pathlib import Path

from ofa.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def read_config_json(spec: "str | Path", shipped: list[str], what: str) -> dict:
    """The mapping in a JSON file ``spec``, or in the shipped config named ``spec`` (one of ``shipped``)."""
    path = Path(spec)
    if not path.is_file():
        if str(spec) not in shipped:
            raise ConfigError(f"{what} {str(spec)!r} is neither a shipped config ({shipped}) nor a JSON file")
        path = CONFIG_DIR / f"{spec}.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
