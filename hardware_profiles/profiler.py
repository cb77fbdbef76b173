"""Profile a search space on one backend into a resumable profile file."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from ofa.errors import ConfigError
from ofa.spaces import SearchSpace, resolve_space

from .backends import Backend, get_backend
from .dataset import Profile, ProfileWriter, make_block_header, make_header, read_profile
from .sampling import stratified_sample


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def profile_header(space: SearchSpace, backend: Backend, *, device: str | None = None, batch_size: int = 1,
                   sampling: dict | None = None, blocks: dict | None = None) -> dict:
    """The header of a network profile, or with ``blocks`` (how the blocks were selected) of a block profile."""
    protocol = dict(backend.protocol_dict())
    if sampling:
        protocol["sampling"] = sampling
    if blocks is not None:
        protocol["blocks"] = blocks
    make = make_block_header if blocks is not None else make_header
    return make(space, device or backend.default_device(), backend.name, backend.version(),
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
    if getattr(space, "workload", "forward") != "forward" and not backend.simulated:
        raise ConfigError(f"{backend.name} times the exported network, one teacher-forced pass; a space with "
                          f"workload {space.workload!r} is priced by simulators, or measured block by block "
                          f"(ofa-profile-device --blocks: decoding steps at their cache lengths)")
    if archs is None:
        archs = stratified_sample(space, num_archs, rng=seed, strata=strata)
        sampling = {"method": "stratified-macs", "seed": seed, "strata": strata, "num_archs": num_archs}
    else:
        archs = [space.parse(a) for a in archs][:num_archs]
        sampling = {"method": "given", "num_archs": len(archs)}
    header = profile_header(space, backend, device=device, batch_size=batch_size, sampling=sampling)
    writer = ProfileWriter(out_path, header)
    models = {"supernet": supernet}

    def measure_chunk(chunk, rng):
        if models["supernet"] is None:  # built only when something is left to measure
            from ofa.supernets import create_supernet

            models["supernet"] = create_supernet(space)
        models["supernet"].eval()
        return backend.measure_many([models["supernet"].extract(arch).eval() for arch in chunk], batch_size,
                                    space=space, rng=rng)

    def append(arch, latency, fields):
        cost = space.cost(arch)
        writer.append(arch, latency, macs=cost.macs, params=cost.params, **fields)

    return _measure_into(writer, backend, header, archs, lambda arch: arch.to_json(), measure_chunk, append,
                         chunk_size=chunk_size, seed=seed, progress=progress, unit="arch")


def _check_same_reference(writer: ProfileWriter, header: dict) -> None:
    """A resumed profile keeps its protocol: records timed beside the reference network and
    records timed without it cannot share a drift-corrected label."""
    before = writer.header.get("protocol", {}).get("reference_network")
    now = header.get("protocol", {}).get("reference_network")
    if writer.measured and before != now:
        raise ConfigError(f"{writer.path} was measured {'beside ' + before['name'] if before else 'without'} the "
                          f"reference network, and this run would measure "
                          f"{'beside ' + now['name'] if now else 'without'} it: its records could not share one "
                          f"drift-corrected label. Write to another file")


def _finish(writer: ProfileWriter) -> Profile:
    """Record in the header how the host's speed moved over the whole profile (the reference
    network's drift summary, over every session that wrote to it), and load the profile."""
    profile = read_profile(writer.path)
    summary = profile.drift_summary()
    if summary is not None and writer.header.get("drift") != summary:
        writer.update_header(drift=summary)
        profile = read_profile(writer.path)
    return profile


def profile_blocks(space, backend, out_path: str | os.PathLike, *, blocks: Sequence | None = None,
                   device: str | None = None, batch_size: int = 1, chunk_size: int = 8, seed: int = 0,
                   progress: bool = True, runtime_overhead: bool = True, **distinct: object) -> Profile:
    """Measure (or simulate) the distinct blocks of ``space`` on ``backend`` into a
    block profile at ``out_path`` (see ``docs/profiles.md``, "Block profiles").

    The blocks are ``space.distinct_blocks(**distinct)`` (e.g. ``resolutions=[32]``
    for a MobileNetV3 space; ``mode="decode", cache_lengths=(0, 9, 19)`` for a
    Transformer) unless ``blocks`` is given. Same guarantees as
    :func:`profile_space`: one record appended per block, a rerun resumes and
    skips the blocks already in the file, blocks are measured ``chunk_size`` at
    a time with shuffled protocol passes. With ``runtime_overhead`` a timed
    backend also measures a :class:`~ofa.spaces.NullBlock` on the first block's
    input: the per-inference cost every standalone block pays once and a
    network only once in all (block-sum predictors subtract the surplus).
    Returns the loaded profile."""
    from ofa.spaces import BlockSpec, NullBlock

    space = resolve_space(space)
    backend = get_backend(backend) if isinstance(backend, str) else backend
    backend.check_available()
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if blocks is None:
        import inspect

        allowed = [n for n in inspect.signature(space.distinct_blocks).parameters if n not in ("self", "kwargs")]
        unknown = sorted(set(distinct) - set(allowed))
        if unknown:
            raise ConfigError(f"option(s) {unknown} do not apply to the blocks of a {space.type_name} space; "
                              f"allowed: {allowed}")
        blocks = space.distinct_blocks(**distinct)
        selection = {"method": "distinct", **{k: (list(v) if isinstance(v, tuple) else v)
                                              for k, v in distinct.items() if v is not None}}
    else:
        if distinct:
            raise ConfigError(f"give either blocks or distinct_blocks options {sorted(distinct)}, not both")
        bad = [b for b in blocks if not isinstance(b, BlockSpec)]
        if bad:
            raise ConfigError(f"blocks must be BlockSpec values (ofa.spaces.blocks), got {type(bad[0]).__name__}")
        selection = {"method": "given"}
    blocks = list({block.key: block for block in blocks}.values())
    if runtime_overhead and not backend.simulated and blocks:
        first = blocks[0]
        dtype = "int64" if first.kind == "embedding" else "float32"
        null = NullBlock(tuple(first.example_input_shape), dtype)
        blocks.append(null)
        selection["null_block"] = null.key
    selection["num_blocks"] = len(blocks)
    header = profile_header(space, backend, device=device, batch_size=batch_size, blocks=selection)
    writer = ProfileWriter(out_path, header)
    return _measure_into(writer, backend, header, blocks, lambda block: block.key,
                         lambda chunk, rng: backend.measure_blocks(chunk, batch_size, rng=rng),
                         lambda block, latency, fields: writer.append_block(block, latency, **fields),
                         chunk_size=chunk_size, seed=seed, progress=progress, unit="block")


def _measure_into(writer: ProfileWriter, backend: Backend, header: dict, items: Sequence, key, measure_chunk, append,
                  *, chunk_size: int, seed: int, progress: bool, unit: str) -> Profile:
    """Measure the ``items`` not yet in ``writer`` (by ``key``), ``chunk_size`` at a time
    (``measure_chunk(chunk, rng)`` -> one result per item), append each result
    (``append(item, latency_ms, other_fields)``) and load the profile; the writer's lock
    and the backend's prepared reference are released whatever happens."""
    try:
        _check_same_reference(writer, header)
        todo = [item for item in items if key(item) not in writer.measured]
        if todo:
            bar = _Progress(len(items), len(items) - len(todo), f"{backend.name} {writer.path.name}", progress,
                            unit=unit)
            for index, chunk in enumerate(_chunks(todo, chunk_size)):
                for item, result in zip(chunk, measure_chunk(chunk, seed * 100003 + index)):
                    result = dict(result)
                    append(item, result.pop("latency_ms"), result)
                bar.update(len(chunk))
            bar.close()
        return _finish(writer)
    finally:
        writer.close()
        backend.close()


class _Progress:
    """A tqdm bar with ETA when tqdm is installed and ``enabled``, else silent."""

    def __init__(self, total, done, desc, enabled, unit="arch"):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, desc=desc, unit=unit, file=sys.stderr,
                                dynamic_ncols=True, smoothing=0.1)
            except ImportError:  # pragma: no cover - tqdm is a core dependency
                self.bar = None

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()

