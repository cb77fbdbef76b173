#!/usr/bin/env python
"""Bort-style optimal sub-architecture extraction over an encoder-only space.

Same as the console command ``ofa-extract-optimal``; see :mod:`ofa_pipeline.commands.extract_optimal`.
"""

from ofa_pipeline.commands.extract_optimal import main

if __name__ == "__main__":
    raise SystemExit(main())
