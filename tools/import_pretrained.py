#!/usr/bin/env python
"""Import Once-for-All's published supernets and accuracy predictor.

Same as the console command ``ofa-import-pretrained``; see :mod:`ofa_pipeline.commands.import_pretrained`.
"""

from ofa_pipeline.commands.import_pretrained import main

if __name__ == "__main__":
    raise SystemExit(main())
