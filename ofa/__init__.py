"""Hardware-aware once-for-all neural architecture search.

The pieces, in the order data flows through them:

* :mod:`ofa.spaces` - search spaces and validated architecture values;
* :mod:`ofa.supernets` - elastic supernets (``create_supernet(space)``);
* :mod:`ofa.models` - the static networks that ``supernet.extract(arch)`` returns;
* :mod:`ofa.export` - ONNX export with an onnxruntime parity check;
* :mod:`hardware_profiles` and :mod:`predictors` - measured and predicted latency.
"""

from .errors import (BackendUnavailableError, CheckpointError, ConfigError, DataError, DiskFullError, OFAError,
                     PredictorError, ProfileError, SearchError, SpaceMismatchError)
from .spaces import get_space, list_spaces, resolve_space, space_from_dict
from .supernets import create_supernet
from .training import checkpoint as _checkpoint  # noqa: F401 (lets resolve_space read .pt checkpoints)
from . import families as _families  # noqa: F401 (registers every model family)

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "CheckpointError", "ConfigError", "DataError", "DiskFullError", "OFAError",
    "PredictorError", "ProfileError", "SearchError", "SpaceMismatchError", "create_supernet", "get_space",
    "list_spaces", "resolve_space", "space_from_dict", "__version__",
]
