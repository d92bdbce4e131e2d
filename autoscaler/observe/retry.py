"""The retry schedule of an unreachable Redis or supervisord (1 s doubling to 30 s).

A host that drops packets costs a connect timeout per try, and a dependency coming back is
not met by every daemon at once; between tries the last error is reported with the wait.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from autoscaler.backoff import Backoff

# Retrying an unreachable Redis or supervisord: the first retry after this, then doubling.
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0  # the longest a recovery goes unnoticed


def retry_backoff(clock: Callable[[], float]) -> Backoff:
    return Backoff(initial_s=RETRY_INITIAL_S, max_s=RETRY_MAX_S, clock=clock)


def waiting(failure: str, wait_s: float) -> str:
    """The last failure, with when the next try is due."""
    return f"{failure} (next try in {math.ceil(wait_s)}s)"
