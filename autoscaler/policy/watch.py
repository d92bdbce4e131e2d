"""Reload policies when their files change (or on SIGHUP), keeping the last valid set.

An edit that breaks a policy must not stop the daemon or change the workers: the last valid
policies stay in force and the errors are reported once per distinct broken state.

A policy file that disappears (an editor's rename-save, a `git checkout` in progress) does not
stop its pool at once: the pool keeps its last valid policy for REMOVAL_GRACE_S and is
removed only if its file is still gone then. A pool whose queues or program another file
now claims (the file was renamed) is replaced at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.policy.loader import PolicyError, PolicyErrors, PolicySet, load_policies

Fingerprint = tuple[tuple[str, int, int, int], ...]
REMOVAL_GRACE_S = 60.0  # a pool whose file is gone keeps running this long


def fingerprint(directory: Path) -> Fingerprint:
    """Name, size, mtime (ns) and inode of every policy file: changes when any file does."""
    entries = []
    for path in sorted(directory.glob("*.toml")):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((path.name, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(entries)


@dataclass(slots=True, kw_only=True)
class ReloadResult:
    changed: bool  # a new valid set is in force
    errors: list[PolicyError]  # problems of the files on disk (empty when valid)
    new_errors: bool  # errors not reported before (report them now)
    missing: dict[str, Path] = field(default_factory=dict)  # files gone, pools kept for now
    removed: list[str] = field(default_factory=list)  # pools dropped after the grace period


class PolicyWatcher:
    def __init__(
        self,
        *,
        directory: Path,
        usable_memory_mb: float | None,
        grace_s: float = REMOVAL_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.usable_memory_mb = usable_memory_mb
        self.grace_s = grace_s
        self._clock = clock
        self._gone_since: dict[str, float] = {}  # pool -> when its file was first missed
        self.missing: dict[str, Path] = {}  # pools kept although their file is gone
        self._seen: Fingerprint | None = None
        self._reported: Fingerprint | None = None
        self.policies: PolicySet | None = None
        self.errors: list[PolicyError] = []

    def load_initial(self) -> PolicySet:
        """The first load must succeed: raises PolicyErrors (the daemon refuses to start)."""
        self._seen = fingerprint(self.directory)
        self.policies = load_policies(self.directory, usable_memory_mb=self.usable_memory_mb)
        return self.policies

    def poll(self, *, force: bool = False) -> ReloadResult:
        """Reload if the files changed (or `force`, for SIGHUP), or a missing file's grace
        period ran out."""
        current = fingerprint(self.directory)
        expired = any(self._clock() - since >= self.grace_s for since in self._gone_since.values())
        if not force and current == self._seen and not expired:
            return ReloadResult(
                changed=False, errors=self.errors, new_errors=False, missing=self.missing
            )
        self._seen = current
        try:
            loaded = load_policies(self.directory, usable_memory_mb=self.usable_memory_mb)
        except PolicyErrors as exc:
            self.errors = exc.errors
            new = current != self._reported
            self._reported = current
            return ReloadResult(
                changed=False, errors=exc.errors, new_errors=new, missing=self.missing
            )
        self.errors = []
        self._reported = None
        merged, missing, removed = self._keep_missing(loaded)
        self.missing = missing
        changed = self.policies is None or dict(merged) != dict(self.policies)
        self.policies = merged
        return ReloadResult(
            changed=changed, errors=[], new_errors=False, missing=missing, removed=removed
        )

    def _keep_missing(self, loaded: PolicySet) -> tuple[PolicySet, dict[str, Path], list[str]]:
        """`loaded` plus the pools in force whose file is gone, within their grace period."""
        previous = self.policies
        if previous is None:
            return loaded, {}, []
        now = self._clock()
        claimed_queues = {q for p in loaded.values() for q in p.queues}
        claimed_programs = {p.program for p in loaded.values()}
        kept = {}
        missing: dict[str, Path] = {}
        removed: list[str] = []
        for pool, policy in previous.items():
            if pool in loaded:
                continue
            renamed = policy.program in claimed_programs or claimed_queues & set(policy.queues)
            since = self._gone_since.setdefault(pool, now)
            if renamed or now - since >= self.grace_s:
                removed.append(pool)
                continue
            kept[pool] = policy
            missing[pool] = previous.files.get(pool, self.directory / f"{pool}.toml")
        self._gone_since = {pool: at for pool, at in self._gone_since.items() if pool in kept}
        if not kept:
            return loaded, missing, removed
        files = {**loaded.files, **missing}
        return PolicySet({**loaded, **kept}, files=files), missing, removed
