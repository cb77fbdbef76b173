"""Measure subnet latencies of a search space on one backend, into a profile file.

    >>> from ofa_pipeline.profile import BackendSettings, make_backend, profile_device
    >>> backend = make_backend("cpu-ort", BackendSettings(runs=30, warmup=5))
    >>> profile = profile_device("mbv3-small", backend, "profiles/my-cpu.jsonl", num_archs=300)

A profile is resumable: calling again with the same file continues where a killed run stopped.
``profile_device_blocks`` measures every distinct block of the space instead (for block-sum
predictors, docs/profiles.md).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class BackendSettings:
    """How a backend runs; ``None`` keeps the backend's default. A backend that does not take a
    setting ignores it (``threads`` means nothing to a simulator; ``ignored_by`` lists them)."""

    threads: int | None = None  # runtime threads (cpu-ort, mobile-ncnn)
    precision: str | None = None  # fp32 or fp16 (gpu-tensorrt, gpu-cuda, mobile-ncnn)
    accelerator: str | None = None  # fpga-*: accelerator config name or JSON path
    cache_dir: str | os.PathLike | None = None  # fpga-scalesim: simulation cache
    warmup: int | None = None  # measurement protocol: warm-up runs
    runs: int | None = None  # measurement protocol: timed runs per pass

    def _runtime(self) -> dict:
        return {"threads": self.threads, "precision": self.precision, "accelerator": self.accelerator,
                "cache_dir": Path(self.cache_dir) if self.cache_dir is not None else None}

    def ignored_by(self, backend_name: str) -> list[str]:
        """The settings given that backend ``backend_name`` does not take."""
        from hardware_profiles.backends import backend_class

        accepted = inspect.signature(backend_class(backend_name).__init__).parameters
        return sorted(k for k, v in self._runtime().items() if v is not None and k not in accepted)

    def options_for(self, backend_name: str) -> dict:
        """The keyword arguments of ``get_backend(backend_name, ...)`` these settings give."""
        from hardware_profiles.backends import backend_class

        accepted = inspect.signature(backend_class(backend_name).__init__).parameters
        options = {k: v for k, v in self._runtime().items() if v is not None and k in accepted}
        if (self.warmup is not None or self.runs is not None) and "protocol" in accepted:
            from hardware_profiles.protocol import MeasurementProtocol

            defaults = MeasurementProtocol()
            options["protocol"] = MeasurementProtocol(
                warmup=defaults.warmup if self.warmup is None else self.warmup,
                runs=defaults.runs if self.runs is None else self.runs)
        return options


def make_backend(name: str, settings: BackendSettings | None = None):
    """The registered backend ``name`` (cpu-ort, gpu-tensorrt, fpga-scalesim, ...) with ``settings``."""
    from hardware_profiles import get_backend

    return get_backend(name, **(settings or BackendSettings()).options_for(name))


def profile_device(space, backend, out: str | os.PathLike, num_archs: int = 300, *,
                   settings: BackendSettings | None = None, seed: int = 0, device: str | None = None,
                   batch_size: int = 1, chunk_size: int = 4, strata: int = 10, progress: bool = True):
    """Measure ``num_archs`` subnets of ``space`` (a preset, a space file, a checkpoint or a space),
    stratified over MACs, on ``backend`` (a backend, or its name and ``settings``) into the profile
    ``out``, created or resumed. ``device``: the device id in the header (default: derived from the
    backend). Returns the profile."""
    from hardware_profiles import profile_space

    _check_profile_path(out, space)
    backend = make_backend(backend, settings) if isinstance(backend, str) else backend
    return profile_space(space, backend, num_archs, out, seed=seed, device=device, batch_size=batch_size,
                         strata=strata, chunk_size=chunk_size, progress=progress)


def profile_device_blocks(space, backend, out: str | os.PathLike, *, settings: BackendSettings | None = None,
                          device: str | None = None, batch_size: int = 1, seed: int = 0,
                          resolutions: Sequence[int] | None = None, workload: str | None = None,
                          cache_lengths: Sequence[int] | None = None, beam_size: int | None = None,
                          progress: bool = True):
    """Measure every distinct block of ``space`` on ``backend`` (a backend, or its name and ``settings``)
    into the block profile ``out`` (created or resumed). CNN spaces: ``resolutions`` (default all);
    Transformer spaces: ``workload`` ("forward" or "decode"), and for decoding the ``cache_lengths``
    and ``beam_size``. Returns the profile."""
    from hardware_profiles import profile_blocks

    _check_profile_path(out, space)
    backend = make_backend(backend, settings) if isinstance(backend, str) else backend
    wanted = {"resolutions": resolutions, "mode": workload, "cache_lengths": cache_lengths, "beam_size": beam_size}
    return profile_blocks(space, backend, out, device=device, batch_size=batch_size, seed=seed, progress=progress,
                          **{k: (tuple(v) if isinstance(v, (list, tuple)) else v)
                             for k, v in wanted.items() if v is not None})


def _check_profile_path(out, space) -> None:
    """Before any measurement: ``out`` is a profile to create or resume, and not the space's own file."""
    from ofa.validation import check_output_path

    inputs = [("the space", space)] if isinstance(space, (str, os.PathLike)) else []
    check_output_path(out, inputs, kind=("profile",), name="the profile")


def drift_lines(profile) -> list[str]:
    """How the host's speed moved during a profile, seen by the reference network (nothing for a
    simulator's profile): the lines a command prints."""
    summary = profile.drift_summary()
    if summary is None:
        return []
    lines = []
    for clock in ("cpu_time_ms", "latency_ms"):
        if clock in summary:
            d = summary[clock]
            lines.append(f"drift ({clock}): reference {d['session_median_ms']:.4g} ms (session median), "
                         f"{d['min_ms']:.4g}-{d['max_ms']:.4g} ms over chunks; corrections x{d['correction_min']:.3f} "
                         f"to x{d['correction_max']:.3f}, {d['corrected_over_5pct']:.0%} of records moved by more "
                         f"than 5%")
            break
    lines.append(f"noise floor (reference test-retest between passes): median {summary['noise_floor']:.1%}, "
                 f"p90 {summary['noise_floor_p90']:.1%}; {summary['drift_remeasured_records']} record(s) from "
                 f"chunks measured again because the reference moved")
    return lines


__all__ = ["BackendSettings", "drift_lines", "make_backend", "profile_device", "profile_device_blocks"]
