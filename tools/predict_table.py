#!/usr/bin/env python
"""Predict the latency of new rows of a table with a plain-feature predictor.

Same as the console command ``ofa-predict-table``; see :mod:`ofa_pipeline.commands.predict_table`.
"""

from ofa_pipeline.commands.predict_table import main

if __name__ == "__main__":
    raise SystemExit(main())
