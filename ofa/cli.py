"""What every command-line tool shares: user errors end with their message, not a traceback."""

from __future__ import annotations

import sys
from typing import Any, Callable

from .errors import OFAError


def run_command(body: Callable[[Any], Any], args: Any) -> int:
    """Run a tool's ``body(args)``; an :class:`OFAError` (bad input the user can
    fix) prints ``error: <Type>: <message>`` and gives exit status 2."""
    try:
        body(args)
    except OFAError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    return 0
