"""Precision as a decision: how many bits a block's weights and activations use.

A precision is an integer number of bits. ``FLOAT_BITS`` (32) stands for
"not quantised": the layer runs in floating point, as every layer of a space
without precision does. Quantised precisions are 2 to 8 bits (the range the
bit-serial and bit-fusion accelerator models and the export path handle).
"""

from __future__ import annotations

from ..errors import ConfigError

FLOAT_BITS = 32
QUANTIZED_BITS = tuple(range(2, 9))
ALLOWED_BITS = QUANTIZED_BITS + (FLOAT_BITS,)


def is_quantized(bits: int) -> bool:
    return bits != FLOAT_BITS


def check_bits_choices(name: str, values) -> None:
    """Refuse a space's precision choices that are not distinct values of ``ALLOWED_BITS``."""
    if (not isinstance(values, tuple) or any(isinstance(v, bool) or v not in ALLOWED_BITS for v in values)
            or len(set(values)) != len(values)):
        raise ConfigError(f"space field {name} must list distinct bit-widths from {list(QUANTIZED_BITS)} or "
                          f"{FLOAT_BITS} (floating point), got {values!r}")


def describe_bits(bits: int) -> str:
    return "float" if bits == FLOAT_BITS else f"{bits}-bit"


__all__ = ["ALLOWED_BITS", "FLOAT_BITS", "QUANTIZED_BITS", "check_bits_choices", "describe_bits", "is_quantized"]
