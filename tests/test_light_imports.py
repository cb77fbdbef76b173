"""A light root: the errors, file helpers, profile reading, predictors and every command's ``--help``
load without torch (seconds of import a user waits for on each command).

Each check runs in a fresh interpreter, since this test process has long imported torch.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_fresh(code: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_errors_profiles_and_predictors_import_without_torch():
    run_fresh("""
        import ofa.errors, hardware_profiles.dataset, predictors
        import ofa.io, ofa.validation, ofa.cli, ofa.spaces
        import sys
        assert 'torch' not in sys.modules, 'torch was imported'
    """)


def test_reading_a_profile_and_loading_a_predictor_do_not_load_torch(tmp_path):
    run_fresh(f"""
        import sys
        from hardware_profiles.dataset import read_profile, shipped_profile_path
        from predictors import fit_latency_predictor, load_predictor

        profile = read_profile(shipped_profile_path('mbv3-small', 'cpu-ort'))
        fit_latency_predictor(profile, model='lut').save({str(tmp_path / 'cpu.skops')!r})
        predictor = load_predictor({str(tmp_path / 'cpu.skops')!r})
        assert predictor.predict_archs([predictor.space.smallest()])[0] > 0
        assert 'torch' not in sys.modules, 'torch was imported'
    """)


def test_every_command_prints_its_help_without_torch():
    result = run_fresh("""
        import contextlib, importlib, io, sys
        from ofa_pipeline.commands import COMMANDS

        for name in COMMANDS:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                try:
                    importlib.import_module(f'ofa_pipeline.commands.{name}').main(['--help'])
                except SystemExit as stop:
                    assert stop.code == 0, (name, stop.code)
            assert 'usage' in printed.getvalue(), name
            assert 'torch' not in sys.modules, f'--help of {name} imported torch'
            print(name)
    """)
    from ofa_pipeline.commands import COMMANDS

    assert result.stdout.split() == list(COMMANDS)


def test_the_lazy_names_still_resolve():
    """``from ofa import get_space`` and friends import their module on first use."""
    run_fresh("""
        import sys
        import ofa
        from ofa import get_space, resolve_space
        assert resolve_space('mbv3-small') == get_space('mbv3-small')
        assert 'torch' not in sys.modules
        supernet = ofa.create_supernet('mbv3-small')
        assert 'torch' in sys.modules and supernet.space == get_space('mbv3-small')
        from hardware_profiles import get_backend, list_backends
        assert 'cpu-ort' in list_backends()
        try:
            ofa.no_such_name
        except AttributeError:
            pass
        else:
            raise AssertionError('a missing name must raise AttributeError')
    """)
