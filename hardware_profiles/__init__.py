"""Measuring real subnet latency on devices, into versioned profile datasets."""

from .dataset import (SCHEMA_VERSION, Profile, ProfileWriter, host_info, latency_stats, make_header,
                      read_profile)

__all__ = ["SCHEMA_VERSION", "Profile", "ProfileWriter", "host_info", "latency_stats", "make_header",
           "read_profile"]
