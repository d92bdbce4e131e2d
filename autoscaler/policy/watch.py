"""Reload policies when their files change (or on SIGHUP), keeping the last valid set.

An edit that breaks a policy must not stop the daemon or change the workers: the last valid
policies stay in force and the errors are reported once per distinct broken state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoscaler.policy.loader import PolicyError, PolicyErrors, PolicySet, load_policies

Fingerprint = tuple[tuple[str, int, int, int], ...]


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


class PolicyWatcher:
    def __init__(self, *, directory: Path, usable_memory_mb: float | None) -> None:
        self.directory = directory
        self.usable_memory_mb = usable_memory_mb
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
        """Reload if the files changed (or `force`, for SIGHUP)."""
        current = fingerprint(self.directory)
        if not force and current == self._seen:
            return ReloadResult(changed=False, errors=self.errors, new_errors=False)
        self._seen = current
        try:
            loaded = load_policies(self.directory, usable_memory_mb=self.usable_memory_mb)
        except PolicyErrors as exc:
            self.errors = exc.errors
            new = current != self._reported
            self._reported = current
            return ReloadResult(changed=False, errors=exc.errors, new_errors=new)
        self.errors = []
        self._reported = None
        changed = self.policies is None or dict(loaded) != dict(self.policies)
        self.policies = loaded
        return ReloadResult(changed=changed, errors=[], new_errors=False)
