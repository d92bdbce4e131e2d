"""Independent simulations in forked processes that share the caller's data.

`simulate`, `tune` and `diff` run many simulations of one trace. The data they need (a
week's trace is hundreds of MB of arrays) is put in SHARED just before the processes fork,
so the children inherit it instead of receiving it pickled: only the tasks and the results
travel. With one process, or where fork is unavailable, the tasks run here, in order. Every
simulation is deterministic, so the results are the same either way.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")

# What the task functions read; set by `workers` for the length of its block (not reentrant).
SHARED: dict[str, Any] = {}


def default_processes() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class Workers:
    """Maps a task function over tasks: in the forked processes, or here."""

    def __init__(self, pool: multiprocessing.pool.Pool | None) -> None:
        self._pool = pool

    def map(self, function: Callable[[Task], Result], tasks: Sequence[Task]) -> list[Result]:
        """`function` of each task, in the order of the tasks."""
        if self._pool is None:
            return [function(task) for task in tasks]
        return self._pool.map(function, tasks, chunksize=1)


@contextmanager
def workers(processes: int, **shared: Any) -> Iterator[Workers]:
    """`processes` forked processes (or this one) that see `shared` in SHARED."""
    SHARED.update(shared)
    try:
        if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                yield Workers(pool)
        else:
            yield Workers(None)
    finally:
        SHARED.clear()
