"""`autoscaler status --fleet`: the fleet as Redis holds it (lease, heartbeats), read-only.

Contract (docs/design.md): {"fleet", "leader", "epoch", "hosts": [{"host", "alive",
"last_seen_s", "memory_budget_mb", "pools": {POOL: {"workers", "assigned"}}}]}. `workers` is
what the host runs (running + starting), `assigned` its count in the assignment it applies;
both as of its last heartbeat, null where unknown.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from autoscaler.fleet.heartbeat import Heartbeat
from autoscaler.fleet.keys import FleetKeys
from autoscaler.fleet.lease import read_lease


def fleet_status(client: redis.Redis, fleet: str, *, now_s: float) -> dict[str, Any]:
    keys = FleetKeys(fleet)
    leader, epoch = read_lease(client, keys)
    beats = cast(dict[bytes, bytes], client.hgetall(keys.hosts))
    names = sorted(beats)
    alive = client.mget([keys.alive(n.decode()) for n in names]) if names else []
    hosts = []
    for name, flag in zip(names, alive, strict=True):
        beat = Heartbeat.from_json(beats[name])
        hosts.append(
            {
                "host": beat.host,
                "alive": flag is not None,
                "last_seen_s": round(max(0.0, now_s - beat.at_s), 1),
                "memory_budget_mb": beat.memory_budget_mb,
                "pools": {
                    pool: {
                        "workers": None if r.workers is None else r.workers.current,
                        "assigned": r.assigned,
                    }
                    for pool, r in sorted(beat.pools.items())
                },
            }
        )
    return {"fleet": fleet, "leader": leader, "epoch": epoch, "hosts": hosts}


def status_rows(status: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """The table: one row per host, a `workers/assigned` column per pool."""
    pools = sorted({pool for host in status["hosts"] for pool in host["pools"]})
    headers = ["host", "alive", "last seen s", "budget MB", *pools]
    rows: list[list[object]] = []
    for host in status["hosts"]:
        cells: list[object] = [
            host["host"] + (" *" if host["host"] == status["leader"] else ""),
            "yes" if host["alive"] else "no",
            host["last_seen_s"],
            host["memory_budget_mb"],
        ]
        for pool in pools:
            entry = host["pools"].get(pool)
            if entry is None:
                cells.append(None)
                continue
            workers, assigned = entry["workers"], entry["assigned"]
            cells.append(
                f"{'-' if workers is None else workers}/{'-' if assigned is None else assigned}"
            )
        rows.append(cells)
    return headers, rows
