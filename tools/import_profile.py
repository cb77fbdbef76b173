#!/usr/bin/env python
"""Import latencies measured with other tools (tables, Vitis AI, Once-for-All LUTs, TFLite) into a profile.

Same as the console command ``ofa-import-profile``; see :mod:`ofa_pipeline.commands.import_profile`.
"""

from ofa_pipeline.commands.import_profile import main

if __name__ == "__main__":
    raise SystemExit(main())
