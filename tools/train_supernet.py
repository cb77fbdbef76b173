#!/usr/bin/env python
"""Train a supernet end to end through every progressive-shrinking phase.

Same as the console command ``ofa-train-supernet``; see :mod:`ofa_pipeline.commands.train_supernet`.
"""

from ofa_pipeline.commands.train_supernet import main

if __name__ == "__main__":
    raise SystemExit(main())
