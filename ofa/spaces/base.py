"""What every search space offers: the contract shared by supernets,
profilers, predictors and search.

An architecture lives in two forms:

* an immutable, validated, JSON-serialisable value (``space.parse(dict)``),
  which users read and write;
* a row of integer *genes* (the index of the chosen value for every decision),
  which search and predictors handle in batches as numpy arrays.

Genes of decisions that the architecture does not use (for example the blocks
that elastic depth skips) are ``-1``, so one network has exactly one gene row,
one value and one hash.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from ..errors import ConfigError, SpaceMismatchError

SKIPPED = -1  # gene value of a decision the architecture does not use


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a generator, a seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is not None and (isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0):
        raise ConfigError(f"rng must be a numpy Generator, a seed (an integer >= 0) or None, got {rng!r} "
                          f"({type(rng).__name__})")
    return np.random.default_rng(rng)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class LayerShape:
    """One compute layer as hardware sees it.

    Every conv, linear and matmul is described as a (possibly grouped)
    convolution: ``in_size``/``out_size`` are (height, width); a linear layer
    over T tokens has ``in_size=(T, 1)`` and ``kernel_size=1``; an attention
    matmul of H heads is a grouped 1x1 "conv" with ``groups=H`` whose second
    operand is an activation (``op="matmul"``, no parameters).
    """

    name: str
    op: str  # "conv" | "depthwise" | "pointwise" | "linear" | "matmul"
    in_channels: int
    out_channels: int
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    kernel_size: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    norm_params: int = 0  # parameters of the normalisation layer that follows it (BatchNorm: 2 x channels)
    # precision of the layer's weights and input activations (32: floating point, ofa.spaces.precision);
    # left out of to_dict at 32 so the layers of spaces without precision read as they always did
    weight_bits: int = 32
    activation_bits: int = 32

    @property
    def macs(self) -> int:
        oh, ow = self.out_size
        return oh * ow * self.out_channels * (self.in_channels // self.groups) * self.kernel_size**2

    @property
    def params(self) -> int:
        if self.op == "matmul":
            return 0
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel_size**2
        return weights + (self.out_channels if self.bias else 0)

    @property
    def input_elements(self) -> int:
        return self.in_channels * self.in_size[0] * self.in_size[1]

    @property
    def output_elements(self) -> int:
        return self.out_channels * self.out_size[0] * self.out_size[1]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["in_size"] = list(self.in_size)
        d["out_size"] = list(self.out_size)
        d["macs"] = self.macs
        d["params"] = self.params
        for name in ("weight_bits", "activation_bits"):
            if d[name] == 32:
                del d[name]
        return d


@dataclass(frozen=True)
class CostReport:
    """Analytic cost of one architecture at batch size 1.

    ``macs`` counts multiply-accumulates of every conv/linear/matmul (what
    ``torch.utils.flop_counter`` reports, halved). ``params`` counts every
    parameter of the extracted network, normalisation layers included.
    ``activation_elements`` is the number of elements all layers write (a
    memory-traffic proxy); ``peak_activation_elements`` the largest input plus
    output of any single layer.
    """

    macs: int
    params: int
    activation_elements: int
    peak_activation_elements: int
    layers: tuple[LayerShape, ...]

    @classmethod
    def from_layers(cls, layers: Sequence[LayerShape], extra_params: int = 0) -> "CostReport":
        return cls(
            macs=sum(layer.macs for layer in layers),
            params=sum(layer.params + layer.norm_params for layer in layers) + extra_params,
            activation_elements=sum(layer.output_elements for layer in layers),
            peak_activation_elements=max(layer.input_elements + layer.output_elements for layer in layers),
            layers=tuple(layers),
        )

    def to_dict(self) -> dict:
        return {
            "macs": self.macs,
            "params": self.params,
            "activation_elements": self.activation_elements,
            "peak_activation_elements": self.peak_activation_elements,
            "layers": [layer.to_dict() for layer in self.layers],
        }


class Architecture(abc.ABC):
    """Base of the immutable architecture values (frozen dataclasses).

    Every architecture carries ``space``, the fingerprint of the space that
    validated it, so an architecture from another space is refused."""

    space: str

    def to_dict(self) -> dict:
        d = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            d[field.name] = list(value) if isinstance(value, tuple) else value
        return d

    def to_json(self) -> str:
        return canonical_json(self.to_dict())


class SearchSpace(abc.ABC):
    """A search space: a frozen dataclass of plain values.

    Subclasses define the gene layout (``gene_choices``), which genes are
    used by an architecture (``active_genes``), the conversion between genes and
    architecture values, validation, and the analytic cost model. Everything
    else (sampling, mutation, crossover, encoding) is shared and works on
    batches of genes with numpy.
    """

    type_name: ClassVar[str]

    def __post_init__(self):
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, list):  # from JSON/YAML: store tuples so the space is hashable
                object.__setattr__(self, field.name, tuple(value))
        self._validate()

    def _validate(self) -> None:
        """Raise :class:`ConfigError` for a definition that cannot work (each space adds its checks)."""

    # --- identity -----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"type": self.type_name}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            d[field.name] = _to_plain(value)
        return d

    @functools.cached_property
    def fingerprint(self) -> str:
        """Stable hash of the space's definition (16 hex digits)."""
        return hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def check_fingerprint(self, fingerprint: str, what: str = "this artifact") -> None:
        if fingerprint != self.fingerprint:
            raise SpaceMismatchError(
                f"{what} was made for the search space with fingerprint {fingerprint!r}, "
                f"but the space in use has fingerprint {self.fingerprint!r} "
                f"({self.type_name}); use the space it was made for"
            )

    def replace(self, **changes) -> "SearchSpace":
        """A copy of this space with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    # --- to be defined by each space ------------------------------------------------------
    @property
    @abc.abstractmethod
    def gene_choices(self) -> tuple[tuple, ...]:
        """For every gene, the tuple of values it may take."""

    @abc.abstractmethod
    def active_genes(self, genes: np.ndarray) -> np.ndarray:
        """Boolean mask (same shape as ``genes``): which genes the architecture uses."""

    @abc.abstractmethod
    def parse(self, config: Any) -> Architecture:
        """Validate a dict (or architecture) and return the normalised architecture.

        Raises :class:`ConfigError` saying what is wrong and what is allowed."""

    @abc.abstractmethod
    def _arch_to_genes(self, arch: Architecture) -> list[int]: ...

    @abc.abstractmethod
    def _genes_to_arch(self, genes: np.ndarray) -> Architecture: ...

    @abc.abstractmethod
    def size(self) -> int:
        """Number of distinct architectures in the space (exact)."""

    def blocks(self, arch: Architecture) -> list:
        """``(name, BlockSpec)`` of every block the network runs, in order (see :mod:`ofa.spaces.blocks`)."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its blocks")

    def distinct_blocks(self, **kwargs) -> list:
        """Every distinct block spec the space's architectures run (a covering set where the space
        has too many to list)."""
        raise NotImplementedError(f"{type(self).__name__} does not enumerate its blocks")

    @abc.abstractmethod
    def cost(self, arch: Architecture) -> CostReport:
        """Analytic cost model: MACs, parameters, activations, per-layer shapes."""

    # --- genes ------------------------------------------------------------------------------
    @property
    def num_genes(self) -> int:
        return len(self.gene_choices)

    @functools.cached_property
    def choice_counts(self) -> np.ndarray:
        """Number of choices of every gene (read-only)."""
        counts = np.array([len(c) for c in self.gene_choices], dtype=np.int64)
        counts.flags.writeable = False
        return counts

    @property
    def gene_layout(self) -> dict:
        """``{decision name: slice of gene columns}``: the one description of the gene layout."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its gene layout")

    def additive_layout(self):
        """How the space's layers decompose into units for additive tables
        (:class:`ofa.spaces.tables.TableLayout`), or None: then table users fall back to
        ``space.cost`` per architecture."""
        return None

    def to_genes(self, archs: Architecture | Iterable[Architecture | dict]) -> np.ndarray:
        """Gene matrix (n, num_genes) of int64 for one or many architectures."""
        if isinstance(archs, (Architecture, dict)):
            archs = [archs]
        rows = [self._arch_to_genes(self.parse(a)) for a in archs]
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), self.num_genes)

    def from_genes(self, genes: np.ndarray) -> list[Architecture]:
        genes = self._check_genes(genes)
        return [self._genes_to_arch(row) for row in self.normalize_genes(genes)]

    def _check_genes(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        if genes.shape[1] != self.num_genes:
            raise ConfigError(f"gene rows have {genes.shape[1]} entries; this space has {self.num_genes} genes")
        if np.any(genes < SKIPPED) or np.any(genes >= self.choice_counts):
            raise ConfigError("gene values out of range: each gene is -1 (skipped) or an index into its choices")
        return genes

    def normalize_genes(self, genes: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Set unused genes to -1; give used genes that are -1 a random value.

        The second case arises after mutation or crossover makes a skipped
        block active again. Without ``rng`` such genes are an error."""
        genes = np.array(genes, dtype=np.int64, copy=True)
        active = self.active_genes(genes)
        missing = active & (genes == SKIPPED)
        if missing.any():
            if rng is None:
                raise ConfigError("an active decision has no value (gene -1); pass an rng to fill it")
            rng = as_rng(rng)
            counts = np.broadcast_to(self.choice_counts, genes.shape)
            genes[missing] = (rng.random(int(missing.sum())) * counts[missing]).astype(np.int64)
        genes[~active] = SKIPPED
        return genes

    def sample_genes(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` architectures, every decision uniform and independent."""
        rng = as_rng(rng)
        genes = (rng.random((n, self.num_genes)) * self.choice_counts).astype(np.int64)
        return self.normalize_genes(genes, rng)

    def mutate_genes(
        self, genes: np.ndarray, rng: np.random.Generator | int | None = None, prob: float = 0.1
    ) -> np.ndarray:
        """Resample every gene with probability ``prob`` (Once-for-All's mutation)."""
        rng = as_rng(rng)
        genes = self._check_genes(genes)
        fresh = (rng.random(genes.shape) * self.choice_counts).astype(np.int64)
        mutated = np.where(rng.random(genes.shape) < prob, fresh, genes)
        return self.normalize_genes(mutated, rng)

    def crossover_genes(
        self, parents_a: np.ndarray, parents_b: np.ndarray, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """Uniform crossover: each gene from either parent with probability 1/2."""
        rng = as_rng(rng)
        a, b = self._check_genes(parents_a), self._check_genes(parents_b)
        child = np.where(rng.random(a.shape) < 0.5, a, b)
        return self.normalize_genes(child, rng)

    @property
    def encoding_size(self) -> int:
        return int(self.choice_counts.sum())

    def encode_genes(self, genes: np.ndarray) -> np.ndarray:
        """Fixed-length one-hot encoding (float32): one block of columns per
        gene, all zeros where the gene is skipped."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        offsets = np.concatenate([[0], np.cumsum(self.choice_counts)[:-1]])
        out = np.zeros((genes.shape[0], self.encoding_size), dtype=np.float32)
        rows, cols = np.nonzero(genes >= 0)
        out[rows, offsets[cols] + genes[rows, cols]] = 1.0
        return out

    # --- architecture-level conveniences ----------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None, **kwargs):
        """One random architecture, or a list of ``n``."""
        archs = self.from_genes(self.sample_genes(1 if n is None else n, rng, **kwargs))
        return archs[0] if n is None else archs

    def mutate(self, arch, rng: np.random.Generator | int | None = None, prob: float = 0.1):
        return self.from_genes(self.mutate_genes(self.to_genes(arch), rng, prob))[0]

    def crossover(self, arch_a, arch_b, rng: np.random.Generator | int | None = None):
        return self.from_genes(self.crossover_genes(self.to_genes(arch_a), self.to_genes(arch_b), rng))[0]

    def encode(self, archs) -> np.ndarray:
        return self.encode_genes(self.to_genes(archs))

    @abc.abstractmethod
    def smallest(self) -> Architecture: ...

    @abc.abstractmethod
    def largest(self) -> Architecture: ...


def _to_plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def check_keys(config: dict, allowed: Iterable[str], required: Iterable[str], what: str) -> None:
    """Refuse unknown and missing keys with a message listing the allowed ones."""
    if not isinstance(config, dict):
        raise ConfigError(f"{what} must be a JSON object (dict), got {type(config).__name__}")
    allowed = list(allowed)
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {what}; allowed keys: {allowed}")
    missing = [k for k in required if k not in config]
    if missing:
        raise ConfigError(f"missing key(s) {missing} in {what}; required keys: {list(required)}")


def check_positive_ints(name: str, values: Any, distinct: bool = False) -> None:
    """Refuse a space field that is not a non-empty tuple of positive integers
    (or, with ``distinct``, that repeats a value: choices must be unique)."""
    if (not isinstance(values, tuple) or not values
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values)):
        raise ConfigError(f"space field {name} must be a non-empty list of positive integers, got {values!r}")
    if distinct and len(set(values)) != len(values):
        raise ConfigError(f"space field {name} has duplicates: {values}")


def check_choice(value: Any, allowed: Sequence, field: str) -> Any:
    """Return ``value`` if it is one of ``allowed`` (bools refused), else raise."""
    if isinstance(value, bool) or value not in allowed:
        raise ConfigError(f"{field} = {value!r} is not allowed; allowed values: {tuple(allowed)}")
    return allowed[list(allowed).index(value)]


def check_sequence(value: Any, length: int, field: str, hint: str = "") -> list:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field} must be a list of {length} values, got {type(value).__name__}")
    if len(value) != length:
        raise ConfigError(f"{field} has {len(value)} entries; this space needs {length}{hint}")
    return list(value)
