"""Fake quantisation: training and evaluating a network as it would run at a few bits.

A quantised layer rounds its weights and its input activations to a grid of
``2^bits`` levels and computes in floating point on the rounded values
("fake" quantisation); the result equals what integer hardware computes, up
to the floating-point rounding of the sums.

* **Weights**: symmetric, per output channel, the scale from the channel's
  largest magnitude: ``scale_c = max|w_c| / (2^(bits-1) - 1)``,
  ``q = clamp(round(w / scale_c), -(2^(bits-1) - 1), 2^(bits-1) - 1)``.
  The scale follows the weights (nothing to learn or store); gradients pass
  the rounding unchanged (the straight-through estimator, Bengio et al. 2013).
* **Activations**: Learned Step Size Quantization (LSQ; Esser et al., "Learned
  Step Size Quantization", ICLR 2020): one step size ``s`` per quantiser,
  ``q = clamp(round(x / s), -Qn, Qp)``, learned by gradient descent with LSQ's
  gradient (straight-through for the rounding; the clamped region passes
  ``-Qn`` or ``Qp`` to ``s``) and its gradient scale ``1 / sqrt(N * Qp)``
  (N: elements per example). ``s`` starts at ``2 * mean|x| / sqrt(Qp)`` on
  the first batch the quantiser sees (LSQ's initialisation). A quantiser is
  unsigned (``Qn = 0``, ``Qp = 2^bits - 1``) where its input is never negative
  (after a ReLU) and signed (``Qn = 2^(bits-1)``, ``Qp = 2^(bits-1) - 1``)
  elsewhere.

``FLOAT_BITS`` (32) means no quantisation: the function is the identity.

**ONNX export.** While ``torch.onnx.export`` traces a quantised network
(``torch.onnx.is_in_onnx_export()``), the same values are computed with
``torch.fake_quantize_per_channel_affine`` (weights, axis 0) and
``torch.fake_quantize_per_tensor_affine`` (activations), which the exporter
writes as ``QuantizeLinear`` / ``DequantizeLinear`` pairs (per-channel from
opset 13; every opset the package exports, 14-20, has them). ONNX's integer
types there are int8 and uint8 (int4 arrives with opset 21, which the
exporter does not write), so a ``b``-bit tensor with ``b < 8`` is a ``Clip``
to its ``b``-bit range followed by an int8 pair: the same grid of values, run
by the runtime as int8. Weights need no clip: their per-channel scale maps
them into ``-(2^(b-1) - 1) .. 2^(b-1) - 1`` already.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

from ..spaces.precision import FLOAT_BITS, QUANTIZED_BITS


def weight_levels(bits: int) -> int:
    """Largest integer level of a symmetric ``bits``-bit weight: 2^(bits-1) - 1."""
    return 2 ** (bits - 1) - 1


def activation_range(bits: int, signed: bool) -> tuple[int, int]:
    """(Qn, Qp): the integer levels of an activation run from -Qn to Qp."""
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` whose gradient is the identity (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def weight_scales(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel scales, shaped to broadcast against ``weight`` (no gradient)."""
    peak = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8)
    return (peak / weight_levels(bits)).reshape(-1, *([1] * (weight.dim() - 1)))


def quantize_weight_levels(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integer levels as floats, per-channel scales) of ``weight`` at ``bits``."""
    scales = weight_scales(weight, bits)
    levels = weight_levels(bits)
    return torch.clamp(torch.round(weight.detach() / scales), -levels, levels), scales


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` rounded to ``bits`` bits per output channel; the identity at ``FLOAT_BITS``."""
    if bits == FLOAT_BITS:
        return weight
    if torch.onnx.is_in_onnx_export():  # the same values as a QuantizeLinear / DequantizeLinear pair
        scales = torch.tensor(weight_scales(weight, bits).flatten().tolist(), dtype=weight.dtype)  # constants
        zero_points = torch.zeros(len(scales), dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scales, zero_points, 0, -128, 127)
    scales = weight_scales(weight, bits)
    levels = weight_levels(bits)
    return torch.clamp(round_ste(weight / scales), -levels, levels) * scales


def _scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``factor`` (LSQ's step-size gradient scale)."""
    return (x - x * factor).detach() + x * factor


def fake_quantize_activation(x: torch.Tensor, step: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    """LSQ: ``clamp(round(x / step), -Qn, Qp) * step`` with LSQ's gradients for ``x`` and ``step``."""
    if bits == FLOAT_BITS:
        return x
    qn, qp = activation_range(bits, signed)
    if torch.onnx.is_in_onnx_export():  # Clip to the b-bit range, then a QuantizeLinear / DequantizeLinear pair
        scale = float(step.detach().abs().clamp_min(1e-8))
        if bits < 8:  # at 8 bits the int8 / uint8 range is the range
            x = torch.clamp(x, -qn * scale, qp * scale)
        low, high = (0, 255) if (qn, qp) == (0, 255) else (-128, 127)
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, low, high)
    grad_factor = 1.0 / math.sqrt(max(1, x[0].numel()) * qp)
    step = _scale_gradient(step.abs().clamp_min(1e-8), grad_factor)
    return round_ste(torch.clamp(x / step, -qn, qp)) * step


_lockstep = False  # True inside lockstep_initialization()


@contextmanager
def lockstep_initialization():
    """Within this block a quantiser's first step size is averaged over the data-parallel processes.
    Only for code every process runs with the same subnets in the same order (the trainer's training
    steps); evaluation that one process runs alone must stay outside, or it would wait for the others."""
    global _lockstep
    previous, _lockstep = _lockstep, True
    try:
        yield
    finally:
        _lockstep = previous


class ActivationQuantizer(nn.Module):
    """The LSQ quantiser of one layer's input: ``bits``, signedness and a learned ``step``."""

    def __init__(self, bits: int, signed: bool):
        super().__init__()
        if bits not in QUANTIZED_BITS:
            raise ValueError(f"activation quantiser bits {bits!r}: allowed {list(QUANTIZED_BITS)}")
        self.bits, self.signed = bits, signed
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        _, qp = activation_range(self.bits, self.signed)
        mean_magnitude = x.detach().abs().mean()
        if _lockstep and torch.distributed.is_available() and torch.distributed.is_initialized():
            # every data-parallel process reaches this quantiser on the same step, each with its own share
            # of the batch: all start from the same step size, the global batch's
            torch.distributed.all_reduce(mean_magnitude)
            mean_magnitude /= torch.distributed.get_world_size()
        self.step.copy_((2 * mean_magnitude / math.sqrt(qp)).clamp_min(1e-4))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self._initialize(x)
        return fake_quantize_activation(x, self.step, self.bits, self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"


class ElasticActivationQuantizer(nn.Module):
    """One :class:`ActivationQuantizer` per quantised precision a supernet layer may run at:
    a step size learned for 2 bits is far from one learned for 8."""

    def __init__(self, bits_choices, signed: bool):
        super().__init__()
        self.signed = signed
        self.by_bits = nn.ModuleDict({str(b): ActivationQuantizer(b, signed)
                                      for b in sorted(bits_choices) if b != FLOAT_BITS})

    def forward(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        return x if bits == FLOAT_BITS else self.by_bits[str(bits)](x)


class QuantizedConv2d(nn.Conv2d):
    """``nn.Conv2d`` on fake-quantised weights (``weight_bits``) and inputs (``input_quantizer``, LSQ);
    the state dict holds the float weights and the learned step."""

    def __init__(self, *args, weight_bits: int = FLOAT_BITS, activation_bits: int = FLOAT_BITS,
                 signed_input: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.input_quantizer = (None if activation_bits == FLOAT_BITS
                                else ActivationQuantizer(activation_bits, signed_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return self._conv_forward(x, fake_quantize_weight(self.weight, self.weight_bits), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_bits={self.weight_bits}, activation_bits={self.activation_bits}"


def quantized_convs(module: nn.Module):
    """``(name, QuantizedConv2d)`` of every quantised conv in ``module``, in order."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, QuantizedConv2d)]


__all__ = ["ActivationQuantizer", "ElasticActivationQuantizer", "QuantizedConv2d", "activation_range",
           "lockstep_initialization",
           "fake_quantize_activation", "fake_quantize_weight", "quantize_weight_levels", "quantized_convs",
           "round_ste", "weight_levels", "weight_scales"]
