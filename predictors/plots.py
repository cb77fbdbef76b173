"""Parity plots: predicted against measured values, one colour per model."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ofa.io import atomic_write_bytes


def save_parity_plot(path: str | os.PathLike, y_true, predictions: dict[str, np.ndarray], title: str,
                     unit: str = "ms", band: float | None = 0.10) -> Path:
    """PNG of predicted vs measured, with the identity line and (for latency)
    the +-``band`` relative band; written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    y_true = np.asarray(y_true, dtype=np.float64)
    figure, axes = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    low = min(y_true.min(), *(np.min(p) for p in predictions.values()))
    high = max(y_true.max(), *(np.max(p) for p in predictions.values()))
    line = np.linspace(low, high, 50)
    axes.plot(line, line, color="black", linewidth=1, label="measured = predicted")
    if band:
        axes.fill_between(line, line * (1 - band), line * (1 + band), color="grey", alpha=0.2,
                          label=f"+-{band:.0%}")
    for name, prediction in predictions.items():
        axes.scatter(y_true, prediction, s=10, alpha=0.7, label=name)
    axes.set_xlabel(f"measured ({unit})")
    axes.set_ylabel(f"predicted ({unit})")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
