"""Queueing formulas a controller can use: Erlang C, square-root staffing, backlog drain.

All scalar and pure (the `slo` strategy calls them every tick, so no numpy). Notation as in
docs/slo-strategy.md: λ arrival rate (jobs/s), S mean run time (s), a = λ·S offered load
(busy workers needed on average), c workers, T the SLO wait, ε = 1 − percentile/100 the
share of jobs allowed to wait longer than T.

M/M/c (Erlang C): an arriving job waits with probability C(c, a), and
    P(wait > t) = C(c, a) · exp(−(c − a)·t / S)        for c > a.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Bisection steps for the Halfin–Whitt β: 2^-40 of the bracket, far below a worker.
_BISECT_STEPS = 40
_BETA_MAX = 12.0


def erlang_b(servers: int, load: float) -> float:
    """Erlang B blocking probability B(c, a), by the stable recursion
    B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1))."""
    if servers < 0:
        raise ValueError("servers must be >= 0")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arriving job has to wait, C(c, a); 1 when c <= a (unstable)."""
    if servers <= load:
        return 1.0
    blocking = erlang_b(servers, load)
    return blocking / (1.0 - (load / servers) * (1.0 - blocking))


def wait_exceed_probability(
    servers: int, arrival_rate_per_s: float, service_s: float, wait_s: float
) -> float:
    """P(wait > wait_s) in an M/M/c queue; 1 when the queue is unstable (c <= λ·S)."""
    load = arrival_rate_per_s * service_s
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    return erlang_c(servers, load) * math.exp(-(servers - load) * wait_s / service_s)


def erlang_c_servers(
    arrival_rate_per_s: float, service_s: float, wait_s: float, percentile: float
) -> int:
    """The fewest workers c with P(wait > wait_s) <= 1 − percentile/100 (Erlang C).

    0 when nothing arrives. The search starts at the first stable count ⌊a⌋ + 1 and carries
    the Erlang B recursion along, so it costs O(c) in total.
    """
    load = arrival_rate_per_s * service_s
    if load <= 0 or service_s <= 0:
        return 0
    allowed = 1.0 - percentile / 100.0
    servers = math.floor(load) + 1
    blocking = erlang_b(servers, load)
    decay = wait_s / service_s
    while True:
        waiting = blocking / (1.0 - (load / servers) * (1.0 - blocking))
        if waiting * math.exp(-(servers - load) * decay) <= allowed:
            return servers
        servers += 1
        blocking = load * blocking / (servers + load * blocking)


def halfin_whitt_wait_probability(beta: float) -> float:
    """P(wait) for c = a + β·√a in the Halfin–Whitt regime: 1 / (1 + β·Φ(β)/φ(β))."""
    if beta <= 0:
        return 1.0
    cdf = 0.5 * (1.0 + math.erf(beta / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * beta * beta) / math.sqrt(2.0 * math.pi)
    return 1.0 / (1.0 + beta * cdf / pdf)


def sqrt_staffing_servers(
    arrival_rate_per_s: float, service_s: float, wait_s: float, percentile: float
) -> int:
    """Square-root staffing c = ⌈a + β·√a⌉, β the smallest with
    P(wait) · exp(−β·√a·T/S) <= 1 − percentile/100 (Halfin–Whitt approximation)."""
    load = arrival_rate_per_s * service_s
    if load <= 0 or service_s <= 0:
        return 0
    allowed = 1.0 - percentile / 100.0
    root = math.sqrt(load)
    decay = root * wait_s / service_s

    def late(beta: float) -> float:
        return halfin_whitt_wait_probability(beta) * math.exp(-beta * decay)

    low, high = 0.0, _BETA_MAX
    for _ in range(_BISECT_STEPS):
        middle = 0.5 * (low + high)
        if late(middle) <= allowed:
            high = middle
        else:
            low = middle
    return max(1, math.ceil(load + high * root - 1e-9))


_rules: dict[tuple[str, float], Callable[[float, float], int]] = {}


def staffing_rule(model: str, percentile: float) -> Callable[[float, float], int]:
    """A steady-state model as f(load a, T/S) -> workers, run times as the unit of time
    (`erlang_c` or `sqrt`). One function object per model and percentile, so that what is
    memoised about it can be shared."""
    key = (model, percentile)
    rule = _rules.get(key)
    if rule is None:
        search = sqrt_staffing_servers if model == "sqrt" else erlang_c_servers

        def rule(load: float, decay: float) -> int:
            return search(load, 1.0, decay, percentile)

        _rules[key] = rule
    return rule


def backlog_servers(  # noqa: PLR0917 - positional on the slo strategy's hot path
    waiting: float,
    oldest_wait_s: float,
    arrival_rate_per_s: float,
    service_s: float,
    wait_s: float,
    startup_s: float,
    reaction_s: float,
    reaction_share: float = 1.0,
) -> float:
    """Workers needed so that the jobs waiting now start within the SLO, taken FIFO.

    With c workers the k-th waiting job starts about (k+1)·S/c from now. The count decided
    now stays until the next decision, `reaction_s` later, and a worker added then serves
    only after the start-up delay d; so every waiting job must be on its way within its SLO
    less r = reaction_s + d. Two groups bind:
    - the youngest waiting job: c >= B·S / (T − r);
    - the jobs older than the arrival rate explains (a burst: B − λ·w of them, all about as
      old as the oldest, w): c >= (B − λ·w)·S / (T − w − r).
    A horizon shorter than `reaction_s` (jobs already late, or about to be) counts as
    `reaction_s`, so late work is drained fast but not with an infinite count. With
    `reaction_share` f < 1 only f·reaction_s of the wait for the next decision is set aside
    (r = f·reaction_s + d): the next decision may still add workers for the younger jobs,
    so sizing every job as if it could not is more than the SLO needs. Returns a real
    number; the caller rounds up.
    """
    if waiting <= 0 or service_s <= 0:
        return 0.0
    # (conditionals, not max(): this runs for every pool with a backlog at every tick)
    horizon_s = wait_s - startup_s - reaction_share * reaction_s
    young = waiting * service_s / (horizon_s if horizon_s > reaction_s else reaction_s)
    burst = waiting - arrival_rate_per_s * oldest_wait_s
    if burst <= 0:
        return young
    horizon_s -= oldest_wait_s
    old = burst * service_s / (horizon_s if horizon_s > reaction_s else reaction_s)
    return old if old > young else young
