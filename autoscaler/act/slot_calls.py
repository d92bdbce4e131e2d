"""Carry out slot changes on supervisord: every call of one apply in one round trip.

Each SlotChange becomes one or two XML-RPC calls, sent together with system.multicall in a
fixed order (removals, re-adds, additions, stops, starts). Faults that mean the goal is
already met (ALREADY_ADDED on add, NOT_RUNNING on stop, ...) count as success; any other
fault fails that change only. STILL_RUNNING on a removal (the slot was restarted between the
read and the call) is neither: the change is left for a later apply.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from autoscaler.act.reconcile import SlotChange
from autoscaler.supervisord.rpc import Faults, SupervisorClient, fault_name

# Faults that mean the call's goal is already met.
_BENIGN = {
    "add": {Faults.ALREADY_ADDED},
    "remove": {Faults.BAD_NAME},
    "stop": {Faults.BAD_NAME, Faults.NOT_RUNNING},
    "start": {Faults.ALREADY_STARTED},
}
# Faults that mean "not yet": the change is neither done nor failed.
_LATER = {"remove": {Faults.STILL_RUNNING}}
_ORDER = {"remove": 0, "replace": 1, "add": 2, "stop": 3, "start": 4}


def execute(
    client: SupervisorClient, changes: list[SlotChange]
) -> tuple[list[SlotChange], list[tuple[SlotChange, str]]]:
    """(changes done, (change, what went wrong) for those refused); changes left for later
    are in neither. Transport problems raise SupervisorUnavailable: then nothing is known
    about the batch."""
    ordered = sorted(changes, key=lambda c: (_ORDER[c.action], c.slot))
    calls: list[tuple[str, tuple[Any, ...]]] = []
    owners: list[tuple[SlotChange, str]] = []
    for change in ordered:
        for step in _steps(change):
            calls.append(_call(step, change.slot))
            owners.append((change, step))
    results = client.multicall(calls)
    failures: dict[SlotChange, str] = {}
    later: set[SlotChange] = set()
    for (change, step), result in zip(owners, results, strict=True):
        if isinstance(result, xmlrpc.client.Fault) and result.faultCode in _LATER.get(step, ()):
            later.add(change)
            continue
        problem = _failure(step, result)
        if problem is not None and change not in failures:
            failures[change] = f"{step} refused: {problem}"
    done = [c for c in ordered if c not in failures and c not in later]
    failed = [(c, failures[c]) for c in ordered if c in failures and c not in later]
    return done, failed


def is_unknown_name(detail: str) -> bool:
    """The failure says supervisord has no configuration loaded under that name."""
    return Faults.BAD_NAME.name in detail


def _steps(change: SlotChange) -> list[str]:
    return ["remove", "add"] if change.action == "replace" else [change.action]


def _call(step: str, slot: str) -> tuple[str, tuple[Any, ...]]:
    if step == "add":
        return "addProcessGroup", (slot,)
    if step == "remove":
        return "removeProcessGroup", (slot,)
    if step == "stop":
        # stopProcess on the group's only process, not stopProcessGroup: the same SIGTERM,
        # but stopProcessGroup answers through a deferred that supervisord resolves on its
        # next main-loop pass, up to a second later (measured with tests/benchmarks).
        return "stopProcess", (f"{slot}:{slot}", False)
    return "startProcess", (f"{slot}:{slot}", False)


def _failure(step: str, result: Any) -> str | None:
    """None when the call reached its goal, else what went wrong."""
    if isinstance(result, xmlrpc.client.Fault):
        if result.faultCode in _BENIGN.get(step, set()):
            return None
        return f"{fault_name(result.faultCode)}: {result.faultString}"
    return None
