"""`autoscaler demo`: watch the real daemon scale a burst on a throwaway real stack."""

from __future__ import annotations

import argparse
import sys

from autoscaler.cli.common import UsageError
from autoscaler.daemon.demo import WORKER_CHOICES, run_demo
from autoscaler.testing.stack import StackError


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "demo",
        help="watch the daemon scale a burst on a throwaway real stack (about a minute)",
        description="Start redis-server and supervisord in a temp directory with two pools of "
        "Laravel workers, run the real daemon, push a burst and print what happens "
        "every second; then stop everything it started. The workers are real `php artisan "
        "queue:work` (a minimal Laravel 8 app) when PHP and Debian's Laravel are installed "
        "(apt-get install php-cli php-laravel-framework php-redis), else a Python stand-in; "
        "the output says which. Needs redis-server (apt-get install redis-server) and "
        "supervisord (installed with autoscaler). No configuration, nothing outside the temp "
        "directory is touched.",
    )
    parser.add_argument(
        "--worker",
        choices=WORKER_CHOICES,
        default="auto",
        help="real Laravel workers, the stand-in, or auto: Laravel when PHP can run it "
        "(default auto)",
    )
    parser.add_argument("--jobs", type=int, default=150, help="jobs in the burst (default 150)")
    parser.add_argument(
        "--max-seconds", type=float, default=90.0, help="stop after this long (default 90)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    try:
        return run_demo(
            burst_jobs=args.jobs,
            max_duration_s=args.max_seconds,
            keep=args.keep,
            worker=args.worker,
            out=sys.stdout,
        )
    except StackError as exc:
        raise UsageError(str(exc)) from exc
