#!/usr/bin/env python
"""Measure subnet latencies of a search space on one backend, into a profile file.

Same as the console command ``ofa-profile-device``; see :mod:`ofa_pipeline.commands.profile_device`.
"""

from ofa_pipeline.commands.profile_device import main

if __name__ == "__main__":
    raise SystemExit(main())
