"""How the house fits together: layered imports, one export path, console commands.

These tests read the source tree and the installed package metadata; they
fail when an import points up a layer, when a second ONNX exporter or
TensorRT builder appears, or when a tool loses its console command.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ofa", "hardware_profiles", "predictors", "ofa_pipeline")


def lint_imports(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--config", str(config), "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, env={"PYTHONPATH": str(cwd), "PATH": ""})


def test_import_layers_are_kept():
    result = lint_imports(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The same contract type on a two-layer copy: ``low`` importing ``high`` (inside a function) must fail."""
    for name, body in {"high": "from low import helper\n",
                       "low": "def helper():\n    from high import thing  # lazy: still an upward import\n"}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body + "thing = 1\n")
    (tmp_path / "contracts.toml").write_text(textwrap.dedent("""
        [tool.importlinter]
        root_packages = ["high", "low"]
        [[tool.importlinter.contracts]]
        name = "high > low"
        type = "layers"
        layers = ["high", "low"]
    """))
    result = lint_imports(tmp_path / "contracts.toml", tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "low is not allowed to import high" in result.stdout


def _contracts() -> dict[str, dict]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["name"]: contract for contract in config["contracts"]}


def _library_modules() -> list[Path]:
    """The committed modules of ofa_pipeline outside commands/ (all of them where git cannot say)."""
    tracked = subprocess.run(["git", "ls-files", "ofa_pipeline/*.py"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0 or not tracked.stdout:
        return sorted((ROOT / "ofa_pipeline").glob("*.py"))
    return [ROOT / line for line in tracked.stdout.split() if Path(line).parent.name == "ofa_pipeline"]


def test_every_library_module_and_command_is_under_the_pipeline_contracts():
    """The ofa_pipeline contracts list modules by name: a new library module or command must join them."""
    from ofa_pipeline.commands import COMMANDS

    contracts = _contracts()
    # every committed library module is listed (a module still being written joins when it is committed),
    # and every listed one exists
    library = {f"ofa_pipeline.{path.stem}" for path in _library_modules() if path.stem != "__init__"}
    listed = set(contracts["ofa_pipeline: the library modules import no command"]["source_modules"])
    assert library <= listed, sorted(library - listed)
    assert all((ROOT / "ofa_pipeline" / f"{name.split('.')[-1]}.py").is_file() for name in listed)
    independent = contracts["ofa_pipeline: a command imports no other command"]["modules"]
    assert set(independent) == {f"ofa_pipeline.commands.{name}" for name in COMMANDS}
    assert "predictors" in contracts[next(n for n in contracts if n.startswith("Inside predictors"))]["containers"]


def test_the_pipeline_contracts_break_on_a_command_importing_another_and_on_a_library_importing_a_command(
        tmp_path):
    """The real ofa_pipeline and predictors contracts, run on a small copy of the packages that breaks each:
    a command importing another command, a library module importing a command, and predictors.base
    importing the dispatcher above it."""
    files = {
        "ofa_pipeline/__init__.py": "",
        "ofa_pipeline/specialize.py": "def helper():\n    from ofa_pipeline.commands import evaluate\n",
        "ofa_pipeline/commands/__init__.py": "",
        "ofa_pipeline/commands/evaluate.py": "",
        "ofa_pipeline/commands/specialize.py": "from ofa_pipeline.commands import evaluate\n",
        "predictors/__init__.py": "",
        "predictors/core.py": "from predictors import base\n",
        "predictors/base.py": "def helper():\n    from predictors import core  # lazy: still upward\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    present = {"ofa_pipeline.specialize", "ofa_pipeline.commands", "ofa_pipeline.commands.evaluate",
               "ofa_pipeline.commands.specialize"}
    contracts = _contracts()
    lines = ["[tool.importlinter]", 'root_packages = ["ofa_pipeline", "predictors"]']
    for name, contract in contracts.items():
        if not name.startswith(("ofa_pipeline:", "Inside predictors")):
            continue
        lines += ["[[tool.importlinter.contracts]]", f"name = {json.dumps(name)}",
                  f"type = {json.dumps(contract['type'])}"]
        for key in ("source_modules", "forbidden_modules", "modules"):  # the modules the copy has
            if key in contract:
                lines.append(f"{key} = {json.dumps([m for m in contract[key] if m in present])}")
        if contract["type"] == "layers":  # the layers holding the copy's two modules
            layers = [layer for layer in contract["layers"]
                      if {part.strip() for part in layer.split("|")} & {"core", "base"}]
            lines += [f"containers = {json.dumps(contract['containers'])}", f"layers = {json.dumps(layers)}",
                      "exhaustive = false"]
    (tmp_path / "contracts.toml").write_text("\n".join(lines) + "\n")
    result = lint_imports(tmp_path / "contracts.toml", tmp_path)
    assert result.returncode != 0, result.stdout + result.stderr
    assert result.stdout.count("BROKEN") == 3, result.stdout
    assert "ofa_pipeline.specialize is not allowed to import ofa_pipeline.commands" in result.stdout
    assert "ofa_pipeline.commands.specialize -> ofa_pipeline.commands.evaluate" in result.stdout
    assert "predictors.base is not allowed to import predictors.core" in result.stdout


def test_the_library_takes_no_command_line_and_the_quickstart_names_no_tool_by_string():
    """Library functions take typed values (an options dataclass, a config), not a parsed command line; the
    quickstart runs its steps as library callables, so the import graph (and import-linter) sees them."""
    for path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                annotations = [ast.unparse(a.annotation) for a in node.args.args if a.annotation is not None]
                assert "args" not in names and not any("Namespace" in a for a in annotations), \
                    f"{path.name}:{node.lineno} {node.name}"
    quickstart = (ROOT / "ofa_pipeline" / "commands" / "quickstart.py").read_text()
    assert "import_module" not in quickstart and "importlib" not in quickstart
    assert 'f"ofa_pipeline.commands.{' not in quickstart


def _calls(attribute_chain: str) -> list[str]:
    """``file:line`` of every call whose callee is written ``attribute_chain`` (e.g. ``torch.onnx.export``)."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(attribute_chain):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_one_onnx_exporter_and_one_tensorrt_builder():
    assert _calls("torch.onnx.export") == [f"ofa/export.py:{_line('ofa/export.py', 'torch.onnx.export(')}"]
    assert [c.split(":")[0] for c in _calls(".build_serialized_network")] == ["ofa/export.py"]
    assert [c.split(":")[0] for c in _calls("create_optimization_profile")] == ["ofa/export.py"]
    # deployment and the TensorRT profiling backend both build through it
    for user in ("ofa_pipeline/deploy.py", "hardware_profiles/backends/gpu_tensorrt.py"):
        assert f"{user}:" in " ".join(_calls("build_tensorrt_engine")), user


def _line(relative: str, needle: str) -> int:
    for number, line in enumerate((ROOT / relative).read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle} not in {relative}")


def test_profiling_and_deployment_export_through_the_same_function(tmp_path, monkeypatch):
    """Record who calls ``torch.onnx.export`` while the cpu-ort backend profiles a subnet and while
    deployment writes one: both must go through :func:`ofa.export.export_onnx`."""
    import torch

    from hardware_profiles import get_backend
    from hardware_profiles.protocol import MeasurementProtocol
    from ofa import create_supernet, get_space
    from ofa_pipeline.deploy import deploy_subnet

    callers = []
    real_export = torch.onnx.export

    def spy(*args, **kwargs):
        frame = sys._getframe(1)
        callers.append(f"{Path(frame.f_code.co_filename).relative_to(ROOT)}:{frame.f_code.co_name}")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", spy)
    space = get_space("mbv3-small")
    supernet = create_supernet(space).eval()
    arch = space.smallest()
    get_backend("cpu-ort", protocol=MeasurementProtocol(warmup=1, runs=2, passes=1)).measure(
        supernet.extract(arch).eval(), space=space)
    profiled = list(callers)
    deploy_subnet(supernet, arch, tmp_path)
    deployed = callers[len(profiled):]
    assert profiled and deployed
    assert set(profiled) == set(deployed) == {"ofa/export.py:export_onnx"}


def test_every_tool_is_a_console_command_and_a_script():
    from ofa_pipeline.commands import COMMANDS

    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")
               if e.value.startswith("ofa_pipeline.")}
    for name in COMMANDS:
        assert scripts.get(f"ofa-{name.replace('_', '-')}") == f"ofa_pipeline.commands.{name}:main", name
        shim = (ROOT / "tools" / f"{name}.py").read_text()
        assert f"from ofa_pipeline.commands.{name} import main" in shim
    for folder in ("tools", "benchmarks"):
        for path in (ROOT / folder).glob("*.py"):
            assert "sys.path" not in path.read_text(), path


@pytest.mark.parametrize("name", ["fit_predictor", "specialize"])
def test_tool_scripts_run_from_anywhere(name, tmp_path):
    """``python tools/<name>.py`` works from another directory with no path edits (the package is installed)."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / f"{name}.py"), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout
