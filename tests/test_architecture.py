"""How the house fits together: layered imports, one export path, console commands.

These tests read the source tree and the installed package metadata; they
fail when an import points up a layer, when a second ONNX exporter or
TensorRT builder appears, or when a tool loses its console command.
"""

from __future__ import annotations

import ast
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
