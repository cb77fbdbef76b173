"""Measuring real subnet latency on devices, into versioned profile datasets.

    >>> from hardware_profiles import get_backend, profile_space
    >>> profile = profile_space("mbv3-small", get_backend("cpu-ort"), 300, "profiles/cpu.jsonl")
"""

from ofa.errors import BackendUnavailableError

from .backends import Backend, get_backend, list_backends, register_backend
from .dataset import (SCHEMA_VERSION, Profile, ProfileWriter, block_record, host_info, latency_stats,
                      load_shipped_profile, make_block_header, make_header, read_profile,
                      shipped_block_profile_path, shipped_block_profiles, shipped_profile_path, shipped_profiles)
from .profiler import profile_blocks, profile_header, profile_space
from .protocol import MeasurementProtocol, measure_runners
from .sampling import stratified_sample

__all__ = ["SCHEMA_VERSION", "Backend", "BackendUnavailableError", "MeasurementProtocol", "Profile",
           "ProfileWriter", "get_backend", "host_info", "latency_stats", "list_backends", "make_header",
           "load_shipped_profile", "measure_runners", "profile_header", "profile_space", "read_profile",
           "register_backend", "shipped_profile_path", "shipped_profiles", "stratified_sample",
           "block_record", "make_block_header", "profile_blocks", "shipped_block_profile_path", "shipped_block_profiles"]
