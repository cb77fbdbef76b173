"""Architectures as table columns: one named column per gene, holding the decision's value.

Users' latency tables describe networks by columns; these names let a table
say which architecture each row measured (``hardware_profiles.imports.table``)
and let a predictor on table columns compute them from an architecture
(``predictors.tabular``). The names follow the architecture's fields:

* MobileNetV3: ``kernel_sizes.<block>``, ``expand_ratios.<block>``,
  ``depths.<stage>``, ``resolution`` (and ``weight_bits.<block>``,
  ``activation_bits.<block>`` in a space with precision);
* Transformer: ``encoder_embed_dim``, ``encoder_layers``,
  ``encoder_ffn_dims.<layer>``, ``encoder_heads.<layer>``, and the decoder's
  ``decoder_embed_dim``, ``decoder_layers``, ``decoder_ffn_dims.<layer>``,
  ``decoder_self_heads.<layer>``, ``decoder_cross_heads.<layer>``,
  ``decoder_cross_layers.<layer>`` (one slot per layer; a single slot ``.0``
  for spaces whose layers share one value).

A block or layer that does not run has no value (NaN; an empty cell in a table).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import SKIPPED
from . import resolve_space

# Transformer gene groups (TransformerSpace.gene_layout) -> the architecture field they decide.
_TRANSFORMER_FIELDS = {"encoder_embed": "encoder_embed_dim", "encoder_layers": "encoder_layers",
                       "encoder_ffn": "encoder_ffn_dims", "encoder_heads": "encoder_heads",
                       "decoder_embed": "decoder_embed_dim", "decoder_layers": "decoder_layers",
                       "decoder_ffn": "decoder_ffn_dims", "decoder_self_heads": "decoder_self_heads",
                       "decoder_cross_heads": "decoder_cross_heads", "decoder_cross_layers": "decoder_cross_layers"}
_LIST_FIELDS = {"encoder_ffn_dims", "encoder_heads", "decoder_ffn_dims", "decoder_self_heads", "decoder_cross_heads",
                "decoder_cross_layers"}


def gene_column_names(space) -> tuple[str, ...]:
    """One name per gene of ``space`` (see the module docstring)."""
    space = resolve_space(space)
    if space.type_name == "mobilenetv3":
        b, s = space.num_blocks, space.num_stages
        names = (tuple(f"kernel_sizes.{i}" for i in range(b)) + tuple(f"expand_ratios.{i}" for i in range(b))
                 + tuple(f"depths.{i}" for i in range(s)) + ("resolution",))
        if space.has_precision:
            names += tuple(f"weight_bits.{i}" for i in range(b)) + tuple(f"activation_bits.{i}" for i in range(b))
        return names
    if space.type_name == "transformer":
        layout = getattr(space, "gene_layout", None) or space._layout
        names = []
        for group, where in layout.items():
            field = _TRANSFORMER_FIELDS[group]
            count = where.stop - where.start
            names += [f"{field}.{i}" for i in range(count)] if field in _LIST_FIELDS else [field]
        return tuple(names)
    raise ConfigError(f"gene columns are not defined for {space.type_name} spaces (defined for: mobilenetv3, "
                      f"transformer)")


def gene_values(space, genes: np.ndarray) -> np.ndarray:
    """The decision values of a gene matrix (float64; NaN where a block or layer does not run)."""
    space = resolve_space(space)
    genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
    out = np.full(genes.shape, np.nan)
    for g, choices in enumerate(space.gene_choices):
        column = genes[:, g]
        used = column != SKIPPED
        out[used, g] = np.asarray(choices, dtype=np.float64)[column[used]]
    return out


def genes_from_values(space, values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`gene_values`: decision values (NaN: does not run) to a
    normalised gene matrix. A value that is not a choice of its gene is a
    :class:`~ofa.errors.ConfigError` naming the row, the column and the choices; a
    value given for a block the depth skips is ignored."""
    space = resolve_space(space)
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.shape[1] != space.num_genes:
        raise ConfigError(f"expected {space.num_genes} gene values per row, got {values.shape[1]}")
    names = gene_column_names(space)
    genes = np.full(values.shape, SKIPPED, dtype=np.int64)
    for g, choices in enumerate(space.gene_choices):
        table = np.asarray(choices, dtype=np.float64)
        for row in np.nonzero(~np.isnan(values[:, g]))[0]:
            match = np.nonzero(np.isclose(table, values[row, g], rtol=0, atol=1e-9))[0]
            if not len(match):
                raise ConfigError(f"row {row}: {names[g]} = {values[row, g]:g} is not a choice of the space; "
                                  f"allowed: {list(choices)}")
            genes[row, g] = match[0]
    genes[~space.active_genes(genes)] = SKIPPED
    return space.normalize_genes(genes)


__all__ = ["gene_column_names", "gene_values", "genes_from_values"]
