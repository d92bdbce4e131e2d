"""`autoscaler status --fleet`: who leads, which hosts beat, each pool's workers/assigned."""

from __future__ import annotations

import sys
import time

import redis

from autoscaler.cli.common import UsageError, print_json
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.fleet.status import fleet_status, status_rows
from autoscaler.laravel.sampler import connect_redis, describe_redis_error
from autoscaler.settings import Settings
from autoscaler.table import render_table


def show(settings: Settings, name: str, output: str) -> int:
    fleet = name or settings.fleet
    if not fleet:
        raise UsageError("--fleet needs a fleet name: --fleet NAME or AUTOSCALER_FLEET")
    client = connect_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)
    try:
        status = fleet_status(client, fleet, now_s=time.time())
    except (redis.RedisError, OSError) as exc:
        print(f"autoscaler: {describe_redis_error(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    if output == "json":
        print_json(status)
        return EXIT_OK
    leader = status["leader"] or "none (no lease)"
    print(f"fleet {fleet}: leader {leader}, epoch {status['epoch'] or '-'}")
    if not status["hosts"]:
        print("no host has sent a heartbeat")
        return EXIT_OK
    headers, rows = status_rows(status)
    print(render_table(headers, rows))
    print("  pools: workers/assigned as of each host's last heartbeat; * the leader")
    return EXIT_OK
