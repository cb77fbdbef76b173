"""What every measurement backend offers, and helpers they share."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ofa.errors import BackendUnavailableError, ConfigError
from ofa.export import export_model, require  # noqa: F401 (require: shared by the backends)

from ..protocol import MeasurementProtocol, Runner, measure_runners, warn_if_loaded


class Backend:
    """A named way to measure a subnet's latency.

    ``measure(static_model)`` returns the fields of one profile record: at
    least ``latency_ms`` (statistics as :func:`latency_stats` gives them),
    ``input_shapes`` and ``load_average``. Runtimes are imported lazily:
    ``available()`` says whether this one can run here, and ``measure``
    raises :class:`BackendUnavailableError` with an install hint otherwise.
    """

    name: str = ""
    install_hint: str = ""
    simulated: bool = False  # simulators are deterministic: one "run", no protocol
    precision: str = "fp32"
    threads: int = 1

    def available(self) -> bool:
        try:
            self.check_available()
            return True
        except Exception:  # available() never raises: it is a yes/no question
            return False

    def check_available(self) -> None:
        """Raise BackendUnavailableError (with what to install) if this backend cannot run here."""

    def version(self) -> str:
        raise NotImplementedError

    def default_device(self) -> str:
        """The device id written into profile headers unless the user names one."""
        return self.name

    def header_fields(self) -> dict:
        """Extra, backend-specific header fields (accelerator config, runtime options...)."""
        return {}

    def protocol_dict(self) -> dict:
        return {}

    def measure(self, static_model: torch.nn.Module, batch_size: int = 1, *, space=None) -> dict:
        return self.measure_many([static_model], batch_size, space=space)[0]

    def measure_many(self, static_models, batch_size: int = 1, *, space=None, rng=0) -> list[dict]:
        raise NotImplementedError

    def measure_blocks(self, blocks, batch_size: int = 1, *, rng=0) -> list[dict]:
        """The fields of one block-profile record per block spec (:mod:`ofa.spaces.blocks`).

        Simulators price ``block.layers()`` (:meth:`measure_layers`); timed
        backends time ``ofa.models.blocks.build_block(block)`` like a network
        (:meth:`measure_many`: same protocol, shuffled passes over the blocks).
        A backend that prices blocks another way overrides this method."""
        if self.simulated:
            if batch_size != 1:
                raise ConfigError(f"{self.name} simulates batch size 1 only (got {batch_size})")
            self.check_available()
            out = []
            for block in blocks:
                record = self.measure_layers(block.layers())
                record.setdefault("input_shapes", [list(block.example_input_shape)])
                out.append(record)
            return out
        from ofa.models.blocks import build_block

        return self.measure_many([build_block(block) for block in blocks], batch_size, rng=rng)

    def measure_layers(self, layers) -> dict:
        """Simulators: record fields (``latency_ms`` statistics, ...) of a list of
        :class:`~ofa.spaces.LayerShape` run one after another."""
        raise NotImplementedError(f"{self.name} does not price layer lists; it measures built modules")

    def close(self) -> None:
        """Release anything kept between measurements."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class TimedBackend(Backend):
    """A backend that runs the model on a real runtime and times it with the
    shared protocol (:mod:`hardware_profiles.protocol`)."""

    def __init__(self, protocol: MeasurementProtocol | dict | None = None):
        if isinstance(protocol, dict):
            protocol = MeasurementProtocol(**protocol)
        self.protocol = protocol or MeasurementProtocol()

    def protocol_dict(self) -> dict:
        protocol = self.protocol.to_dict()
        if self.protocol.reference:
            from ..reference import reference_description

            protocol["reference_network"] = reference_description()
        return protocol

    def prepare(self, static_model: torch.nn.Module, batch_size: int = 1) -> Runner:
        raise NotImplementedError

    def reference_runner(self, batch_size: int = 1) -> Runner | None:
        """The reference network prepared on this runtime (kept between chunks:
        converting it anew for every chunk would cost an ncnn conversion each
        time); None when the protocol does not time it."""
        if not self.protocol.reference:
            return None
        cached = getattr(self, "_reference", None)
        if cached is not None and cached[0] == batch_size:
            return cached[1]
        from ..reference import ReferenceNetwork

        self.close()
        runner = self.prepare(ReferenceNetwork(), batch_size)
        self._reference = (batch_size, runner)
        return runner

    def close(self) -> None:
        cached = getattr(self, "_reference", None)
        if cached is not None:
            cached[1].close()
            self._reference = None

    def measure_many(self, static_models, batch_size: int = 1, *, space=None, rng=0) -> list[dict]:
        """Prepare every model, measure them together beside the reference
        network (shuffled passes), free them."""
        self.check_available()
        runners = []
        try:
            reference = self.reference_runner(batch_size)
            for model in static_models:
                runners.append(self.prepare(model, batch_size))
            results = measure_runners(runners, self.protocol, rng, reference=reference)
        finally:
            for runner in runners:
                runner.close()
        for result, runner in zip(results, runners):
            result["input_shapes"] = [list(s) for s in runner.input_shapes]
            result["loaded"] = warn_if_loaded(result["load_average"])
        return results


def example_inputs(static_model: torch.nn.Module, batch_size: int) -> tuple[torch.Tensor, ...]:
    """The static model's own example inputs (every static model defines them), fixed seed."""
    if not hasattr(static_model, "example_inputs"):
        raise ConfigError(f"{type(static_model).__name__} has no example_inputs(batch_size): backends measure "
                          f"the static networks that supernet.extract(arch) returns")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        inputs = static_model.example_inputs(batch_size)
    return inputs if isinstance(inputs, tuple) else tuple(inputs) if isinstance(inputs, list) else (inputs,)


class TemporaryExport:
    """An ONNX export of a static model in a private temporary directory,
    deleted by ``cleanup()`` (nothing is left in the repository)."""

    def __init__(self, static_model: torch.nn.Module, batch_size: int = 1):
        self._dir = tempfile.TemporaryDirectory(prefix="ofa-hw-")
        self.directory = Path(self._dir.name)
        static_model.eval()
        self.path = export_model(static_model, self.directory / "model.onnx", batch_size=batch_size)

    def cleanup(self) -> None:
        self._dir.cleanup()


def numpy_inputs(inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    return [t.detach().cpu().numpy() for t in inputs]


def slug(text: str) -> str:
    """'Intel(R) Xeon(R) CPU @ 2.20GHz' -> 'intel-xeon-cpu-2.20ghz' (for device ids)."""
    text = re.sub(r"\((r|tm)\)", "", text.lower())
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-")

