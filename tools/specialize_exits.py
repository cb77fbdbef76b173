#!/usr/bin/env python
"""Specialise a subnet with early exits and its calibrated exit threshold for one device.

Same as the console command ``ofa-specialize-exits``; see :mod:`ofa_pipeline.commands.specialize_exits`.
"""

from ofa_pipeline.commands.specialize_exits import main

if __name__ == "__main__":
    raise SystemExit(main())
