"""The host memory budget: which pool gets how many workers when not all wants fit.

The rule (docs/deciding.md and docs/slo-strategy.md repeat it for operators):

1. Workers that are draining (stopping after SIGTERM, finishing their job) hold their memory
   until they exit, but that memory is about to be freed: it never cuts a pool (its own or
   another's). The counts are shared out as if they had exited (steps 2-4); step 5 then holds
   back only what would be added until they have.
2. Every pool keeps its min_processes; a pool whose data is missing keeps the count it holds.
3. Keeping up comes first: each pool may grow to the count that keeps up with its arrivals
   (the `slo` strategy's ⌈λ·S⌉, the whole load; for the other strategies, all they want), lower
   `priority` first, and among equal priorities the pool furthest past its SLO (oldest wait
   ÷ SLO wait) first. A pool whose oldest waiting job still has more than DEFER_SLACK_S
   before its SLO wait (a batch pool with a long SLO) waits for step 4 instead: its jobs can
   wait, those of a pool about to be late cannot (earliest deadline first).
4. Catching up comes next: the rest of each want (draining a backlog), to the pool furthest
   past its SLO first, then by priority. A pool whose workers are larger than the room left
   gets none while a later, smaller one may still fit.
5. Draining workers, and a pool being scaled down, still hold memory until their workers
   exit (the actuator stops idle workers first, and those exit at once). So scale-ups are
   granted only as far as memory is free right after this decision:
   Σ (held + draining) × memory per worker must stay within the limit, where held is the
   desired count, or for a pool being scaled down the current count less the idle workers
   it stops.
   Where it would not, scale-ups are held back, lowest priority first, never below what a
   pool runs; they go ahead on a later tick, once the stopped workers have exited.

So a burst on a high-priority pool cannot starve another pool of the workers it needs just
to keep pace, late work is drained where it is latest, and a count does not flap while
workers drain: charging another pool's draining workers first cut a healthy pool 6 -> 3 and
gave the workers back once they had exited (issue 19).

Invariants (property-tested): no pool below its min or above what it asked; when the floors
(the mins, and the held counts) fit, Σ desired × memory <= limit; memory right after the
decision exceeds the limit only where the workers already running (and draining) did; with
the same wants, draining workers never lower a count below min(what it runs, what it would
get once they exit), nor raise one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

_EPS = 1e-9
# Slack (SLO wait − oldest wait) above which a pool's keep-up share waits for the catch-up
# tier: twelve decisions at the default 5 s interval, so a deferred pool is back in the race
# long before its jobs are late. Measured on all_busy drawn with six seeds
# (tests/benchmarks/bench_budget_seeds.py): pools missing their SLO 9 -> 3 at a 0.26 s
# start-up and 10 -> 4 at 1 s, with 60 or 120 s alike (30 s: one more miss at 0.26 s).
# Pools with SLOs of 60 s or less are never deferred.
DEFER_SLACK_S = 60.0


class ClaimConstants(Protocol):
    """What the allocator reads from a pool's policy."""

    @property
    def min_processes(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def slo_wait_s(self) -> float: ...


class Claim(Protocol):
    """One pool's demand on the budget; `granted` and `cap` are the allocator's answer."""

    @property
    def pool(self) -> str: ...
    @property
    def const(self) -> ClaimConstants: ...
    @property
    def memory_mb(self) -> float:  # one worker's size this tick (declared or measured)
        ...
    @property
    def wanted(self) -> int:  # within [min_processes, max_processes]
        ...
    @property
    def fixed(self) -> bool:  # held (data missing): `wanted` is its count and may not change
        ...
    @property
    def current(self) -> int:  # running + starting
        ...
    @property
    def workers_known(self) -> bool:  # False: Supervisor could not say (current meaningless)
        ...
    @property
    def draining(self) -> int: ...
    @property
    def idle(self) -> int:  # running or starting workers without a job: stopped, they exit now
        ...
    @property
    def keep_up(self) -> int:  # of `wanted`, what keeps up with arrivals (the rest catches up)
        ...
    @property
    def urgency(self) -> float:  # oldest wait / SLO wait
        ...

    granted: int
    cap: str  # "", "budget" (no room) or "draining" (room only after workers exit)


def allocate(claims: Sequence[Claim], limit_mb: float) -> tuple[float, float]:
    """Grant every claim a count (in place); return (planned MB, MB right after applying).

    planned = Σ (granted + draining) × memory; right after = Σ (held + draining) × memory,
    held = granted, or for a pool scaled down its current count less the idle workers stopped.
    """
    # Most ticks nothing competes: when every want fits, grant it without sorting.
    want_mb = peak_mb = 0.0
    for claim in claims:
        memory_mb = claim.memory_mb
        wanted = claim.wanted
        claim.granted = wanted
        claim.cap = ""
        want_mb += (wanted + claim.draining) * memory_mb
        held = _held(claim, wanted)
        peak_mb += (held + claim.draining) * memory_mb
    if want_mb <= limit_mb + _EPS and peak_mb <= limit_mb + _EPS:
        return want_mb, peak_mb
    return _contended(claims, limit_mb)


def _held(claim: Claim, granted: int) -> int:
    """Workers holding memory right after scaling to `granted`: the stopped busy ones drain."""
    if not claim.workers_known or claim.current <= granted:
        return granted
    return max(granted, claim.current - claim.idle)


def _floor(claim: Claim) -> int:
    return claim.wanted if claim.fixed else claim.const.min_processes


def _keep_up(claim: Claim) -> int:
    keep_up = claim.keep_up
    return keep_up if 0 < keep_up < claim.wanted else claim.wanted


def _slack_s(claim: Claim) -> float:
    """Seconds before the pool's oldest waiting job passes its SLO wait."""
    return claim.const.slo_wait_s * (1.0 - claim.urgency)


def _contended(claims: Sequence[Claim], limit_mb: float) -> tuple[float, float]:
    # Shared out as if the draining workers had exited (rule 1): they only hold back
    # additions, below.
    used = 0.0
    for claim in claims:
        floor = _floor(claim)
        claim.granted = floor
        used += floor * claim.memory_mb
    growing = [c for c in claims if not c.fixed and c.wanted > c.granted]
    # keeping up with arrivals: by priority, then by how far past the SLO
    keep_order = sorted(growing, key=lambda c: (c.const.priority, -c.urgency, c.pool))
    # catching up with backlogs: by how far past the SLO, then by priority
    catch_order = sorted(growing, key=lambda c: (-c.urgency, c.const.priority, c.pool))
    for order, keeping_up in ((keep_order, True), (catch_order, False)):
        for claim in order:
            memory_mb = claim.memory_mb
            if keeping_up and _slack_s(claim) > DEFER_SLACK_S:
                continue  # its jobs can wait: step 4 serves it by lateness
            target = _keep_up(claim) if keeping_up else claim.wanted
            extra = target - claim.granted
            if extra <= 0:
                continue
            room = max(0, math.floor((limit_mb - used) / memory_mb + _EPS))
            if room < extra:
                extra = room
                claim.cap = "budget"
            claim.granted += extra
            used += extra * memory_mb

    peak = 0.0
    for claim in claims:
        held = _held(claim, claim.granted)
        peak += (held + claim.draining) * claim.memory_mb
    if peak > limit_mb + _EPS:
        for claim in reversed(keep_order):
            if not claim.workers_known:
                continue
            memory_mb = claim.memory_mb
            keep = max(claim.current, _floor(claim))
            if claim.granted <= keep:
                continue
            over = math.ceil((peak - limit_mb) / memory_mb - _EPS)
            cut = min(claim.granted - keep, over)
            claim.granted -= cut
            claim.cap = "draining"
            peak -= cut * memory_mb
            if peak <= limit_mb + _EPS:
                break
    planned = 0.0
    for claim in claims:
        planned += (claim.granted + claim.draining) * claim.memory_mb
    return planned, peak
