"""Checks that each console command the quickstart prints makes the library call its step makes.

Both are run up to the library function where they meet (the step's own function, or for
``specialize_checkpoint`` the :func:`ofa_pipeline.specialize.specialize` it calls after loading the
files), which is replaced by one that records its arguments and stops; the two records must agree."""

from __future__ import annotations

import importlib
import inspect
import os
import shlex
import tomllib
from dataclasses import fields, is_dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where a step's library call and its command's call meet, when not at the step's own function
MEETING_POINT = {"ofa_pipeline.specialize.specialize_checkpoint": ("ofa_pipeline.specialize", "specialize")}
DISPLAY_ONLY = {"progress"}  # arguments that change what is shown, not what is computed


class Reached(BaseException):  # not an Exception: no command's error handling may swallow it
    def __init__(self, call: dict):
        super().__init__()
        self.call = call


def console_scripts() -> dict[str, str]:
    """``ofa-<name>`` -> ``module:function``, as the package installs them."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def plain(value):
    """A comparable form of an argument: options as their fields (without ``provenance``, which
    records file digests), paths as text, a loaded supernet, predictor or data set by its kind."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value) if f.name != "provenance"}
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return f"<{type(value).__name__}>"


def normalised(function, args, kwargs) -> dict:
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    return {k: plain(v) for k, v in bound.arguments.items() if k not in DISPLAY_ONLY}


def call_reached(monkeypatch, module_name: str, name: str, run, also_in=()) -> dict:
    """The arguments ``run()`` calls ``module_name.name`` with (the call stops there)."""
    original = getattr(importlib.import_module(module_name), name)

    def stop(*args, **kwargs):
        raise Reached(normalised(original, args, kwargs))

    with monkeypatch.context() as patch:
        for module in (importlib.import_module(module_name), *also_in):
            if getattr(module, name, None) is original:  # a module that imported it at its top
                patch.setattr(module, name, stop)
        try:
            run()
        except Reached as reached:
            return reached.call
    raise AssertionError(f"{module_name}.{name} was not called")


def recorded_steps(quickstart, argv: list[str], monkeypatch) -> list[dict]:
    """The steps a quickstart run makes, recorded instead of run (on a finished directory, whose files
    the code between the steps reads)."""
    steps = []

    def record(self, label, function, arguments, inputs=(), outputs=(), body=None, command=None):
        steps.append({"label": label, "function": function, "arguments": arguments, "command": command})

    with monkeypatch.context() as patch:
        patch.setattr(quickstart.Steps, "run", record)
        patch.setattr(quickstart.Steps, "run_side_by_side", lambda self, jobs: steps.extend(jobs))
        assert quickstart.main(argv) == 0
    return steps


def check_printed_commands(steps: list[dict], monkeypatch) -> None:
    """Each step's printed command is an installed console command that makes the step's call."""
    scripts = console_scripts()
    for step in steps:
        command, function = step["command"], step["function"]
        assert command and command[0] in scripts, (step["label"], command)
        full_name = f"{function.__module__}.{function.__qualname__}"
        module_name, name = MEETING_POINT.get(full_name, (function.__module__, function.__name__))
        if (module_name, name) == (function.__module__, function.__name__):
            expected = normalised(function, (), step["arguments"])
        else:
            expected = call_reached(monkeypatch, module_name, name, lambda: function(**step["arguments"]))
        entry_module, entry_function = scripts[command[0]].split(":")
        command_module = importlib.import_module(entry_module)
        main = getattr(command_module, entry_function)
        made = call_reached(monkeypatch, module_name, name, lambda: main(command[1:]), also_in=(command_module,))
        differences = {k: (made.get(k), expected.get(k)) for k in made.keys() | expected.keys()
                       if made.get(k) != expected.get(k)}
        assert not differences, f"{step['label']}: `{shlex.join(command)}` makes another call: {differences}"
