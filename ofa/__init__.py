"""Hardware-aware once-for-all neural architecture search.

The pieces, in the order data flows through them:

* :mod:`ofa.spaces` - search spaces and validated architecture values;
* :mod:`ofa.supernets` - elastic supernets (``create_supernet(space)``);
* :mod:`ofa.models` - the static networks that ``supernet.extract(arch)`` returns;
* :mod:`ofa.export` - ONNX export with an onnxruntime parity check;
* :mod:`hardware_profiles` and :mod:`predictors` - measured and predicted latency.

Importing :mod:`ofa` loads only the named errors: ``get_space``, ``create_supernet`` and the other
names below are imported on first use, so reading a profile, loading a predictor or printing a
command's ``--help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (BackendUnavailableError, CheckpointError, ConfigError, DataError, DiskFullError, OFAError,
                     PredictorError, ProfileError, SearchError, SpaceMismatchError)

__version__ = "0.1.0"

# name -> the submodule that defines it, imported when the name is first read
_LAZY_NAMES = {
    "get_space": "spaces", "list_spaces": "spaces", "resolve_space": "spaces", "space_from_dict": "spaces",
    "create_supernet": "supernets",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module 'ofa' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    globals()[name] = value  # later reads skip this function
    return value


__all__ = [
    "BackendUnavailableError", "CheckpointError", "ConfigError", "DataError", "DiskFullError", "OFAError",
    "PredictorError", "ProfileError", "SearchError", "SpaceMismatchError", "create_supernet", "get_space",
    "list_spaces", "resolve_space", "space_from_dict", "__version__",
]
