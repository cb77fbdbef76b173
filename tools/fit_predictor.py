#!/usr/bin/env python
"""Fit a latency predictor on a device profile (or an accuracy predictor on

Same as the console command ``ofa-fit-predictor``; see :mod:`ofa_pipeline.commands.fit_predictor`.
"""

from ofa_pipeline.commands.fit_predictor import main

if __name__ == "__main__":
    raise SystemExit(main())
