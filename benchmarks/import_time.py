"""What a command costs before it does anything: CPU time of ``ofa-specialize --help`` and of importing
the light modules (``ofa.errors``, ``hardware_profiles.dataset``, ``predictors``), each in a fresh
Python process, median of ``--repeats``.

    python benchmarks/import_time.py [--source DIR] [--label NAME] [--repeats 7] [--out benchmarks/results/import_time.json]

``--source`` runs another copy of the package (for example an older commit unpacked with
``git archive <commit> | tar -x -C DIR``) ahead of the installed one, to compare before and after;
results of several labels accumulate in the same ``--out`` file. CPU time is user + system time of the
child process, which a busy machine disturbs less than wall time. Target: under 0.5 s for ``--help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# each probe runs in its own interpreter; the last line says whether torch was loaded
PROBES = {
    "ofa-specialize --help": ("import sys\nfrom ofa_pipeline.commands.specialize import main\n"
                              "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                              "print('torch' in sys.modules, file=sys.stderr)"),
    "import ofa.errors, hardware_profiles.dataset, predictors": (
        "import sys\nimport ofa.errors, hardware_profiles.dataset, predictors\n"
        "print('torch' in sys.modules, file=sys.stderr)"),
    "python (empty interpreter)": "import sys\nprint('torch' in sys.modules, file=sys.stderr)",
}


def measure(code: str, env: dict) -> tuple[float, float, bool]:
    """CPU seconds (user + system), wall seconds and whether torch was imported, for one fresh process."""
    before = os.times()
    start = time.perf_counter()
    # run from the filesystem root: ``python -c`` puts the working directory first on the import path, which
    # would shadow --source with a checkout's own packages
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                            cwd=Path(__file__).anchor)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return cpu, wall, result.stderr.strip().splitlines()[-1] == "True"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="directory holding the packages to time (default: installed)")
    parser.add_argument("--label", default="current", help="name of this measurement in --out")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/import_time.json")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = str(Path(args.source).resolve())  # ahead of the editable install's path hook
    measure(PROBES["python (empty interpreter)"], env)  # warm the file cache
    rows = {}
    for name, code in PROBES.items():
        runs = [measure(code, env) for _ in range(args.repeats)]
        rows[name] = {"cpu_s": round(statistics.median(r[0] for r in runs), 3),
                      "wall_s": round(statistics.median(r[1] for r in runs), 3),
                      "loads_torch": runs[0][2]}
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.is_file() else {}
    saved.setdefault("measurements", {})[args.label] = {
        "source": args.source or "installed", "repeats": args.repeats, "probes": rows,
        "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                        "load_average_1m": os.getloadavg()[0]},
    }
    saved["target"] = "ofa-specialize --help under 0.5 s CPU"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(saved, indent=2) + "\n")
    print(json.dumps(saved["measurements"][args.label], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
