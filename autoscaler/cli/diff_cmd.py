"""`autoscaler diff BASE HEAD --trace T`: what a policy change does, for a pull request."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoscaler.cli.common import UsageError, add_format, build_settings, print_json
from autoscaler.cli.simulate_cmd import (
    add_jobs_option,
    add_world_options,
    processes,
    world_settings,
)
from autoscaler.review.diff import DiffError, compare_policies
from autoscaler.review.report import render_markdown


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "diff",
        help="compare two versions of the policies on traces (a pull request's report)",
        description="Validate the policies at BASE and at HEAD, simulate both on every "
        "trace with each pool's own strategy, and report per pool the fields that changed, "
        "p95 wait, SLO misses, worker-hours and peak memory before and after, and a verdict. "
        "BASE and HEAD are each a policy directory (an argument naming an existing directory "
        "is one) or a git revision: REV (the policy directory, AUTOSCALER_POLICIES_DIR, at "
        "REV) or REV:PATH (PATH at REV, from the repository's root, or from here when it "
        "starts with ./). Revisions are read from git's objects; the work tree is not "
        "touched. Exit 0 when no pool is worse on its SLO, 1 when some pool is, 2 on bad "
        "arguments, an unreadable revision or trace, or invalid policies at HEAD.",
    )
    parser.add_argument("base", metavar="BASE", help="directory or git revision before")
    parser.add_argument("head", metavar="HEAD", help="directory or git revision after")
    parser.add_argument(
        "--trace",
        dest="traces",
        action="append",
        type=Path,
        required=True,
        metavar="TRACE",
        help="trace to simulate on (job or rate trace, CSV or .csv.gz), repeatable",
    )
    add_world_options(parser)
    add_jobs_option(parser, "simulations run in parallel")
    add_format(parser, "markdown", "json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    world = world_settings(args, settings)
    jobs = processes(args)
    try:
        report = compare_policies(
            args.base,
            args.head,
            args.traces,
            default_path=settings.policies_dir,
            world=world,
            processes=jobs,
        )
    except DiffError as exc:
        raise UsageError(str(exc)) from exc
    for side in ("base", "head"):
        for error in report[side]["errors"]:
            where = f"{error['file']}:{error['line']}" if error["line"] else error["file"]
            print(f"{side.upper()}: {where}: {error['field']}: {error['problem']}", file=sys.stderr)
    if args.format == "json":
        print_json(report)
    else:
        sys.stdout.write(render_markdown(report))
    code: int = report["exit_code"]
    return code
