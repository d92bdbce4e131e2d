"""`autoscaler run`: the control loop (observe -> decide -> act every interval)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoscaler.cli.common import build_settings
from autoscaler.constants import EXIT_FAILED
from autoscaler.daemon.lifecycle import Daemon
from autoscaler.daemon.logsetup import configure_logging
from autoscaler.policy.loader import PolicyErrors


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "run",
        help="run the control loop (the daemon)",
        description="Every AUTOSCALER_INTERVAL_S: observe the queues and workers, decide a "
        "count per pool, apply it to the Supervisor file autoscaler owns. One daemon per "
        "managed file is active (a lock beside it); others wait as standbys. SIGTERM/SIGINT "
        "finish the tick and exit 0 leaving the workers running; SIGHUP reloads the policies "
        "(they also reload when their files change). Run it under Supervisor: see deploy/.",
    )
    parser.add_argument("--once", action="store_true", help="run one tick and exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="log decisions and the file diff, change nothing (AUTOSCALER_DRY_RUN)",
    )
    parser.add_argument("--policies", type=Path, help="policy directory (AUTOSCALER_POLICIES_DIR)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = build_settings(
        args, dry_run=True if args.dry_run else None, policies_dir=args.policies
    )
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    daemon = Daemon(settings=settings, once=args.once)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    except PolicyErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print("refusing to start: the policies are invalid", file=sys.stderr)
        return EXIT_FAILED
