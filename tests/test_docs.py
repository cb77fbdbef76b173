"""The documentation builds with ``mkdocs build --strict`` (broken links, missing API objects and
unreadable benchmark results fail), and the README stays a front page."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text()
    assert "{{ benchmark_tables }}" not in benchmarks
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        assert path.stem in benchmarks, f"{path.name} is not rendered on the benchmarks page"
    shutil.rmtree(tmp_path / "site")


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; details belong in docs/"
    text = "\n".join(lines[:20])
    assert 'python -m pip install -e ".[test]"' in text and "python -m pytest -q" in text
