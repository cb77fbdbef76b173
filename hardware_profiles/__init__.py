"""Measuring real subnet latency on devices, into versioned profile datasets.

    >>> from hardware_profiles import get_backend, profile_space
    >>> profile = profile_space("mbv3-small", get_backend("cpu-ort"), 300, "profiles/cpu.jsonl")

Reading a profile does not load torch: the backends and the profiler (which do) are imported
when one of their names is first read.
"""

import importlib
from typing import Any

from ofa.errors import BackendUnavailableError

from .dataset import (SCHEMA_VERSION, Profile, ProfileWriter, block_record, host_info, latency_stats,
                      load_shipped_profile, make_block_header, make_header, read_profile,
                      shipped_block_profile_path, shipped_block_profiles, shipped_profile_path, shipped_profiles)
from .protocol import MeasurementProtocol, measure_runners
from .sampling import stratified_sample

# name -> the submodule that defines it (it loads torch), imported when the name is first read
_LAZY_NAMES = {
    "Backend": "backends", "get_backend": "backends", "list_backends": "backends", "register_backend": "backends",
    "profile_blocks": "profiler", "profile_header": "profiler", "profile_space": "profiler",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module 'hardware_profiles' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["SCHEMA_VERSION", "Backend", "BackendUnavailableError", "MeasurementProtocol", "Profile",
           "ProfileWriter", "get_backend", "host_info", "latency_stats", "list_backends", "make_header",
           "load_shipped_profile", "measure_runners", "profile_header", "profile_space", "read_profile",
           "register_backend", "shipped_profile_path", "shipped_profiles", "stratified_sample",
           "block_record", "make_block_header", "profile_blocks", "shipped_block_profile_path", "shipped_block_profiles"]
