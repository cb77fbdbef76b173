"""Profile a search space on one backend into a resumable profile file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from ofa.errors import ConfigError
from ofa.spaces import SearchSpace, resolve_space

from .backends import Backend, get_backend
from .dataset import Profile, ProfileWriter, make_header, read_profile
from .sampling import stratified_sample


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def profile_header(space: SearchSpace, backend: Backend, *, device: str | None = None, batch_size: int = 1,
                   sampling: dict | None = None) -> dict:
    protocol = dict(backend.protocol_dict())
    if sampling:
        protocol["sampling"] = sampling
    return make_header(space, device or backend.default_device(), backend.name, backend.version(),
                       threads=backend.threads, batch_size=batch_size, precision=backend.precision,
                       protocol=protocol, **backend.header_fields())


def profile_space(space, backend, num_archs: int, out_path: str | os.PathLike, seed: int = 0, *,
                  device: str | None = None, batch_size: int = 1, archs: Sequence | None = None,
                  strata: int = 10, chunk_size: int = 4, progress: bool = True, supernet=None) -> Profile:
    """Measure ``num_archs`` architectures of ``space`` on ``backend`` into ``out_path``.

    Architectures are drawn stratified over MACs (``seed``, ``strata``) unless
    ``archs`` is given. The file is appended one record at a time; rerunning
    the same call resumes, skipping architectures already in the file, so a
    kill loses at most the ``chunk_size`` architectures being measured (they
    are measured together: each protocol pass visits them in shuffled order).
    ``backend`` is a name (``cpu-ort``, ``fpga-scalesim``, ...) or a backend.
    Returns the loaded profile."""
    space = resolve_space(space)
    backend = get_backend(backend) if isinstance(backend, str) else backend
    backend.check_available()
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if archs is None:
        archs = stratified_sample(space, num_archs, rng=seed, strata=strata)
        sampling = {"method": "stratified-macs", "seed": seed, "strata": strata, "num_archs": num_archs}
    else:
        archs = [space.parse(a) for a in archs][:num_archs]
        sampling = {"method": "given", "num_archs": len(archs)}
    header = profile_header(space, backend, device=device, batch_size=batch_size, sampling=sampling)
    writer = ProfileWriter(out_path, header)
    todo = [a for a in archs if a.to_json() not in writer.measured]
    if todo:
        if supernet is None:
            from ofa.supernets import create_supernet

            supernet = create_supernet(space)
        supernet.eval()
        bar = _Progress(len(archs), len(archs) - len(todo), f"{backend.name} {Path(out_path).name}", progress)
        for index, chunk in enumerate(_chunks(todo, chunk_size)):
            models = [supernet.extract(arch).eval() for arch in chunk]
            results = backend.measure_many(models, batch_size, space=space, rng=seed * 100003 + index)
            for arch, result in zip(chunk, results):
                cost = space.cost(arch)
                result = dict(result)
                latency = result.pop("latency_ms")
                writer.append(arch, latency, macs=cost.macs, params=cost.params, **result)
            bar.update(len(chunk))
        bar.close()
    return read_profile(out_path)


class _Progress:
    """A tqdm bar with ETA when tqdm is installed and ``enabled``, else silent."""

    def __init__(self, total, done, desc, enabled):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, desc=desc, unit="arch", file=sys.stderr,
                                dynamic_ncols=True, smoothing=0.1)
            except ImportError:  # pragma: no cover - tqdm is a core dependency
                self.bar = None

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()

