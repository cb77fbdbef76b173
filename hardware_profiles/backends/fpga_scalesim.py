"""``fpga-scalesim``: cycle-level simulation of a systolic-array accelerator
with SCALE-Sim (``pip install scalesim``).

Every layer of the architecture (``space.cost(arch).layers``) is mapped to
one dense convolution times a repeat count (see
:mod:`hardware_profiles.systolic`: grouped convs are simulated once per group
shape and multiplied; depthwise convs as block-diagonal groups of channels
across the array's columns, :func:`~hardware_profiles.systolic.map_layer`),
simulated, and summed with the documented per-layer overheads; latency =
cycles / clock.

SCALE-Sim takes from a fraction of a second to seconds per layer, while
architectures of one space share most layer shapes, so results are cached on
disk per unique (simulated layer, accelerator config, SCALE-Sim version),
content-addressed: ``<cache_dir>/<sha256[:2]>/<sha256>.json``. The cache is
shared by every run and space on the machine (default
``~/.cache/ofa-hw/scalesim``, or ``$OFA_HW_CACHE/scalesim``).

SCALE-Sim runs in a private temporary directory (it needs a config file, a
topology file and a layout file even with custom layouts off) with trace
writing off; the directory and its small reports are deleted afterwards.
The layer's latency is SCALE-Sim's "total cycles incl. prefetch": from the
first DRAM read to the last DRAM write, so memory-bound layers pay for their
DRAM traffic.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

from ofa.errors import BackendUnavailableError, ConfigError
from ofa.io import atomic_write_json
from ofa.spaces.base import canonical_json

from ..dataset import latency_stats
from ..protocol import load_average
from ..systolic import (DEFAULT_ACCELERATOR, AcceleratorConfig, SimLayer, load_accelerator, map_layer,
                        network_cycles)
from .base import Backend, example_inputs, require

INSTALL_HINT = "pip install 'scalesim==3.0.0' 'numpy<2.4' (or pip install 'ofa-hw[fpga]')"


def default_cache_dir() -> Path:
    root = os.environ.get("OFA_HW_CACHE") or Path.home() / ".cache" / "ofa-hw"
    return Path(root) / "scalesim"


class SimulationCache:
    """Content-addressed store of per-layer results, with hit counting."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(payload: dict) -> str:
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        try:
            value = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # absent, or damaged by hand: simulate again
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        atomic_write_json(self._path(key), value)

    def stats(self) -> dict:
        lookups = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / lookups if lookups else 0.0,
                "directory": str(self.directory)}


def scalesim_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("scalesim")
    except metadata.PackageNotFoundError:
        return "unknown"


def check_scalesim() -> None:
    require("scalesim.scale_sim", INSTALL_HINT)
    import numpy

    major, minor = (int(x) for x in numpy.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        raise BackendUnavailableError(f"scalesim 3.0.0 needs numpy < 2.4 (found {numpy.__version__}): "
                                      f"pip install 'numpy<2.4'")


_CONFIG_TEMPLATE = """[general]
run_name = ofa_hw

[architecture_presets]
ArrayHeight = {array_rows}
ArrayWidth = {array_cols}
IfmapSramSzkB = {ifmap_sram_kb}
FilterSramSzkB = {filter_sram_kb}
OfmapSramSzkB = {ofmap_sram_kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = {bandwidth_words_per_cycle}
Dataflow = {dataflow}
ReadRequestBuffer = {read_request_buffer}
WriteRequestBuffer = {write_request_buffer}

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = {bandwidth_words_per_cycle}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = {bandwidth_words_per_cycle}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False
"""

# SCALE-Sim reads a layout row per layer even when custom layouts are off;
# these values are the identity layout and are not used.
_LAYOUT_ROW = "1,1,1,1,1,1,0,1,2,0,1,2,0,1,2,3,0,1,2,3,"


def run_scalesim(layers: list[SimLayer], config: AcceleratorConfig, names: list[str] | None = None) -> list[dict]:
    """Simulate dense layers with SCALE-Sim; per layer: total cycles (incl.
    DRAM prefetch), compute cycles, stall cycles, utilisation (%), mapping
    efficiency (%).

    ``names`` are the topology row names (default ``L0, L1, ...``). A name
    containing ``DP`` makes SCALE-Sim split that row into one single-channel
    layer per channel itself (its own depthwise handling; the tests compare it
    with our decomposition), so the result then has more entries than rows."""
    check_scalesim()
    names = names or [f"L{i}" for i in range(len(layers))]
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory(prefix="ofa-hw-scalesim-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "accelerator.cfg").write_text(_CONFIG_TEMPLATE.format(**config.to_dict()))
        topology = ["Layer name,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,Num Filter,Strides,"]
        topology += [f"{name}," + ",".join(str(v) for v in layer.as_row()) + "," for name, layer in zip(names, layers)]
        (tmp_path / "topology.csv").write_text("\n".join(topology) + "\n")
        layout = ["Layer name,layout fields (unused: custom layouts are off),"]
        layout += [f"{name},{_LAYOUT_ROW}" for name in names]
        (tmp_path / "layout.csv").write_text("\n".join(layout) + "\n")
        # SCALE-Sim prints progress and trips numpy deprecation warnings; neither concerns our users
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            simulator = scalesim(save_disk_space=True, verbose=False, config=str(tmp_path / "accelerator.cfg"),
                                 topology=str(tmp_path / "topology.csv"), layout=str(tmp_path / "layout.csv"))
            simulator.run_scale(top_path=str(tmp_path / "run"))
        results = []
        for layer_sim in simulator.runner.single_layer_sim_object_list:
            overall, compute, stall, util, mapping, _ = layer_sim.get_compute_report_items()
            results.append({"cycles": int(overall), "compute_cycles": int(compute), "stall_cycles": int(stall),
                            "utilization": round(float(util), 4), "mapping_efficiency": round(float(mapping), 4)})
    return results


class ScaleSimBackend(Backend):
    name = "fpga-scalesim"
    install_hint = INSTALL_HINT
    simulated = True
    precision = "int8"  # SCALE-Sim's word size is one byte

    def __init__(self, accelerator: "str | Path | dict | AcceleratorConfig" = DEFAULT_ACCELERATOR,
                 cache_dir: str | os.PathLike | None = None):
        self.config = load_accelerator(accelerator)
        self.cache = SimulationCache(cache_dir if cache_dir is not None else default_cache_dir())

    def check_available(self) -> None:
        check_scalesim()

    def version(self) -> str:
        return f"scalesim {scalesim_version()}"

    def default_device(self) -> str:
        return f"fpga-{self.config.name}"

    def header_fields(self) -> dict:
        return {"accelerator": self.config.to_dict(), "latency_model": (
            "sum over layers of repeats x SCALE-Sim total cycles (incl. DRAM prefetch) of one dense conv (groups: one "
            "per group; depthwise: block-diagonal channel groups, see depthwise_mapping) "
            "+ layer_overhead_cycles + ceil(output elements / vector_lanes); latency = cycles / clock")}

    def mapping(self, layer):
        """(dense conv, repeat) of a layer on this accelerator (:func:`~hardware_profiles.systolic.map_layer`)."""
        return map_layer(layer, self.config)

    def cache_stats(self) -> dict:
        return self.cache.stats()

    def _cache_key(self, layer: SimLayer) -> str:
        return self.cache.key({"simulator": f"scalesim-{scalesim_version()}", "layer": layer.as_row(),
                               "accelerator": self.config.simulation_key()})

    def simulate(self, layers: list[SimLayer]) -> dict[SimLayer, dict]:
        """SCALE-Sim results for distinct dense layers, from the cache where possible."""
        results: dict[SimLayer, dict] = {}
        missing = []
        for layer in dict.fromkeys(layers):
            cached = self.cache.get(self._cache_key(layer))
            if cached is None:
                missing.append(layer)
            else:
                results[layer] = cached
        if missing:
            for layer, result in zip(missing, run_scalesim(missing, self.config)):
                self.cache.put(self._cache_key(layer), result)
                results[layer] = result
        return results

    def measure_arch(self, space, arch) -> dict:
        """Simulated latency of one architecture (record fields)."""
        return self.measure_layers(space.cost(arch).layers)

    def measure_layers(self, layers) -> dict:
        """Simulated latency of layers run one after another (record fields)."""
        self.check_available()
        hits, misses = self.cache.hits, self.cache.misses
        mapping = self.mapping
        simulated = self.simulate([mapping(layer)[0] for layer in layers])
        total = network_cycles(layers, lambda sim: simulated[sim]["cycles"], self.config, mapping=mapping)
        return {"latency_ms": latency_stats([total["latency_ms"]]), "cycles": total["cycles"],
                "array_cycles": total["array_cycles"], "overhead_cycles": total["overhead_cycles"],
                "sim_layers": len(simulated), "cache_hits": self.cache.hits - hits,
                "cache_misses": self.cache.misses - misses, "load_average": load_average()}

    def measure_many(self, static_models, batch_size: int = 1, *, space=None, rng=0) -> list[dict]:
        return [simulated_measure(self, model, batch_size, space) for model in static_models]


def simulated_measure(backend, static_model, batch_size: int, space) -> dict:
    """Shared by the simulator backends: check inputs, then ``backend.measure_arch``."""
    if batch_size != 1:
        raise ConfigError(f"{backend.name} simulates batch size 1 only (got {batch_size})")
    space = space if space is not None else getattr(static_model, "space", None)
    if space is None:
        raise ConfigError(f"{backend.name} needs the search space for the per-layer shapes: "
                          f"measure(model, space=space)")
    arch = space.parse(static_model.arch)
    record = backend.measure_arch(space, arch)
    record["input_shapes"] = [list(x.shape) for x in example_inputs(static_model, 1)]
    return record
