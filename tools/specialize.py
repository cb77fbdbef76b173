#!/usr/bin/env python
"""Specialise a trained supernet for one or more devices and latency budgets.

Same as the console command ``ofa-specialize``; see :mod:`ofa_pipeline.commands.specialize`.
"""

from ofa_pipeline.commands.specialize import main

if __name__ == "__main__":
    raise SystemExit(main())
