"""`autoscaler logs POOL [-f] [-n N]`: the pool's slot logs merged, each line with its slot."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from autoscaler.cli.actuation import check_pool
from autoscaler.cli.common import UsageError, build_settings, load_cli_policies
from autoscaler.constants import EXIT_OK
from autoscaler.observe.poollog import LogLine, PoolLog
from autoscaler.observe.slot_logs import policy_log_paths
from autoscaler.policy.model import Policy
from autoscaler.supervisord.rpc import SupervisorClient, SupervisorUnavailable
from autoscaler.supervisord.slots import parse_slot

POLL_S = 0.5
DEFAULT_LINES = 10


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "logs",
        help="a pool's worker logs, every slot merged in time order",
        description="Print the last lines of every slot log of POOL, merged in time order, "
        "each prefixed with its slot. With -f, keep printing new lines: slots added later, "
        "rotated and truncated files are followed. Paths come from the policy "
        "(stdout_logfile with _NN) and, when it can be reached, from supervisord.",
    )
    parser.add_argument("pool", metavar="POOL")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument(
        "-n",
        "--lines",
        type=int,
        default=DEFAULT_LINES,
        metavar="N",
        help=f"last N lines of all slots together (default {DEFAULT_LINES})",
    )
    parser.add_argument(
        "--policies", type=Path, default=None, metavar="DIR", help="policy directory"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    policies = load_cli_policies(args.policies, settings)
    pool = check_pool(args.pool, policies)
    if args.lines < 0:
        raise UsageError("-n must be >= 0")
    policy = policies[pool]
    client = SupervisorClient.from_settings(settings)
    log = PoolLog()
    try:
        paths = slot_paths(policy, client)
        if not paths:
            raise UsageError(
                f"pool {pool}: no log path known (the policy sets no [supervisor] "
                "stdout_logfile and supervisord cannot be asked)"
            )
        _print(log.last(paths, args.lines))
        if not args.follow:
            return EXIT_OK
        try:
            while True:
                time.sleep(POLL_S)
                _print(log.poll(slot_paths(policy, client)))
        except KeyboardInterrupt:
            return EXIT_OK
    finally:
        log.close()
        client.close()


def slot_paths(policy: Policy, client: SupervisorClient | None) -> dict[str, str]:
    """Log path -> slot, for every slot the policy may have (0..max-1) and every slot of the
    pool supervisord reports (its own path wins: %(here)s, AUTO logs in childlogdir)."""
    paths = policy_log_paths(policy)
    if client is None:
        return paths
    try:
        processes = client.processes()
    except SupervisorUnavailable:
        return paths
    for process in processes:
        slot = parse_slot(process.name)
        if slot is None or slot.program != policy.program or process.group != process.name:
            continue
        path = process.stdout_logfile
        if path and path not in ("NONE", "AUTO") and not path.startswith("/dev/"):
            paths[path] = process.name
    return paths


def _print(lines: list[LogLine]) -> None:
    if not lines:
        return
    width = max(len(line.slot) for line in lines)
    sys.stdout.write("".join(f"{line.slot:<{width}} | {line.text}\n" for line in lines))
    sys.stdout.flush()
