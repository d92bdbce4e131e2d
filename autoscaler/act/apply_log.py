"""The actuator's log lines: each slot call done or failed, and refusals and slot problems
logged when they appear or change, not on every tick they last."""

from __future__ import annotations

from collections.abc import Mapping

from loguru import logger

from autoscaler.act.apply_report import SlotProblem
from autoscaler.act.reconcile import KILLED, SlotChange


class ApplyLog:
    """Remembers what was logged last, so a lasting refusal or problem is logged once."""

    def __init__(self) -> None:
        self._logged_refusals: dict[str, str] = {}
        self._logged_problems: set[str] = set()

    def refusals(self, refused: Mapping[str, str]) -> None:
        """Log a pool's refusal when it appears or its reason changes, and when it ends."""
        for pool, reason in refused.items():
            if self._logged_refusals.get(pool) != reason:
                logger.error(f"pool {pool} not applied: {reason}")
        for pool in set(self._logged_refusals) - set(refused):
            logger.info(f"pool {pool} applies again")
        self._logged_refusals = dict(refused)

    def problems(self, problems: list[SlotProblem]) -> None:
        """Log a slot problem when it appears, not on every tick it lasts."""
        keys = {f"{p.slot}:{p.state}" for p in problems}
        for problem in problems:
            if f"{problem.slot}:{problem.state}" not in self._logged_problems:
                logger.warning(f"slot {problem}")
        self._logged_problems = keys


def log_calls(done: list[SlotChange], failed: list[tuple[SlotChange, str]]) -> None:
    """One line per slot call: killed workers as warnings, failures as errors."""
    for change in done:
        if change.reason.endswith(KILLED):
            logger.warning(f"{change.action} {change.slot}: {change.reason}")
        else:
            logger.info(f"{change.action} {change.slot}: {change.reason}")
    for change, why in failed:
        logger.error(f"{change.action} {change.slot} failed: {why}")


def counts_text(before: Mapping[str, int], after: Mapping[str, int]) -> str:
    """The pools whose count moved, for the 'wrote the file' line."""
    moved = [f"{pool} {before.get(pool, 0)} -> {n}" for pool, n in after.items()]
    moved = [m for m, (pool, n) in zip(moved, after.items(), strict=True) if before.get(pool) != n]
    return ", ".join(moved) if moved else "same counts, new content"
