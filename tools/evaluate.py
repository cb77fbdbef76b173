#!/usr/bin/env python
"""Evaluate subnets of a trained supernet: accuracy after BN re-calibration,

Same as the console command ``ofa-evaluate``; see :mod:`ofa_pipeline.commands.evaluate`.
"""

from ofa_pipeline.commands.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
