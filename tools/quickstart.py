#!/usr/bin/env python
"""The whole product on the built-in default, on 2 CPU cores.

Same as the console command ``ofa-quickstart``; see :mod:`ofa_pipeline.commands.quickstart`.
"""

from ofa_pipeline.commands.quickstart import main

if __name__ == "__main__":
    raise SystemExit(main())
