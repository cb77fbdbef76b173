"""The API reference (docs/api/<package>.md) renders every public module of the four packages."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def public_modules(package: str) -> set[str]:
    """The committed modules of ``package`` whose dotted path has no part starting with ``_``."""
    tracked = subprocess.run(["git", "ls-files", package], cwd=ROOT, capture_output=True, text=True)
    paths = ([Path(f) for f in tracked.stdout.split()] if tracked.returncode == 0 and tracked.stdout
             else [p.relative_to(ROOT) for p in (ROOT / package).rglob("*.py")])
    names = set()
    for path in paths:
        if path.suffix != ".py":
            continue
        parts = list(path.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.add(".".join(parts))
    return names


def test_every_public_module_has_its_reference():
    for package in ("ofa", "hardware_profiles", "predictors", "ofa_pipeline"):
        page = (ROOT / "docs" / "api" / f"{package}.md").read_text()
        listed = set(re.findall(r"^::: ([\w.]+)", page, flags=re.M))
        missing = public_modules(package) - listed
        assert not missing, f"docs/api/{package}.md lacks {sorted(missing)}"
