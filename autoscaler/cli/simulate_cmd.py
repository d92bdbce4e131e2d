"""`autoscaler simulate [TRACE]`: replay a trace through every strategy and compare them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoscaler.bundled import DEFAULT_TRACE_NAME, default_trace_path, seed_policies_dir
from autoscaler.cli.common import UsageError, add_format, build_settings, print_json
from autoscaler.constants import EXIT_OK
from autoscaler.policy.loader import PolicyErrors, PolicySet, load_policies
from autoscaler.settings import Settings
from autoscaler.simulate.comparison import SIMULATED_STRATEGIES, run_all
from autoscaler.simulate.engine import WorldSettings
from autoscaler.simulate.parallel import default_processes
from autoscaler.simulate.report import build_report, render_markdown, render_text
from autoscaler.traces.loader import Trace, TraceError, load_trace


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "simulate",
        help="replay a trace through the strategies and compare them",
        description="Replay TRACE (a job or rate trace, CSV or .csv.gz) through each strategy: "
        "the production decide code for slo, static, horizon, hpa and step, and the "
        "look-ahead oracle as the cost reference. Without TRACE, runs the bundled "
        f"{DEFAULT_TRACE_NAME} on the seed policies shipped with autoscaler. Needs no Redis "
        "and no Supervisor.",
    )
    parser.add_argument("trace", nargs="?", type=Path, help="trace file (default: bundled)")
    add_simulation_options(parser)
    parser.add_argument(
        "--strategy",
        action="append",
        choices=SIMULATED_STRATEGIES,
        metavar="NAME",
        help=f"strategy to run, repeatable: {', '.join(SIMULATED_STRATEGIES)} (default: all)",
    )
    add_format(parser, "table", "json", "markdown")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw backlog, workers and wait over time per pool, as PNG (or SVG when "
        "FILE ends in .svg; needs autoscaler[plot])",
    )
    add_jobs_option(parser, "strategies run in parallel")
    parser.set_defaults(func=run)


def add_simulation_options(parser: argparse.ArgumentParser) -> None:
    """Options `simulate` and `tune` share: the policies and the world."""
    parser.add_argument(
        "--policies",
        type=Path,
        metavar="DIR",
        help="policy directory (default: AUTOSCALER_POLICIES_DIR if it exists, else the seed "
        "policies shipped with autoscaler)",
    )
    add_world_options(parser)


def add_world_options(parser: argparse.ArgumentParser) -> None:
    """Options of the simulated world (`world_settings` reads them): `simulate`, `tune` and
    `diff` share them."""
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        metavar="MB",
        help="memory budget for all workers (default: AUTOSCALER_MEMORY_BUDGET_MB)",
    )
    parser.add_argument(
        "--interval-s",
        type=float,
        help="seconds between decisions (default: AUTOSCALER_INTERVAL_S)",
    )
    parser.add_argument(
        "--startup-s",
        type=float,
        metavar="S",
        help="seconds from adding a worker to its first job (default: "
        "AUTOSCALER_SIMULATE_STARTUP_S, measured on a real supervisord)",
    )


def add_jobs_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help=f"{what} (default: one per CPU)",
    )


def processes(args: argparse.Namespace) -> int:
    """The processes `--jobs` asks for (add_jobs_option)."""
    count: int = args.jobs if args.jobs is not None else default_processes()
    if count < 1:
        raise UsageError(f"--jobs must be at least 1, got {count}")
    return count


def world_settings(args: argparse.Namespace, settings: Settings) -> WorldSettings:
    budget = args.memory_budget_mb if args.memory_budget_mb is not None else None
    interval = args.interval_s if args.interval_s is not None else settings.interval_s
    startup = args.startup_s if args.startup_s is not None else settings.simulate_startup_s
    for flag, value in (("--interval-s", interval), ("--startup-s", startup)):
        if value < 0 or (flag == "--interval-s" and value <= 0):
            raise UsageError(f"{flag} must be positive, got {value:g}")
    if budget is not None and budget <= 0:
        raise UsageError(f"--memory-budget-mb must be positive, got {budget:g}")
    return WorldSettings(
        interval_s=interval,
        startup_s=startup,
        memory_budget_mb=budget if budget is not None else settings.memory_budget_mb,
        memory_reserve_mb=settings.memory_reserve_mb,
    )


def load_inputs(
    args: argparse.Namespace, settings: Settings, *, trace_required: bool = False
) -> tuple[Trace, PolicySet]:
    """The trace and the policies named by the arguments (or the bundled ones)."""
    trace_path: Path | None = args.trace
    if trace_path is None and trace_required:
        raise UsageError("a TRACE file is required")
    directory = args.policies
    if directory is None:
        configured = settings.policies_dir
        directory = configured if trace_path is not None and configured.is_dir() else None
    if directory is None:
        directory = seed_policies_dir()
        if trace_path is not None:
            print(
                f"autoscaler: no {settings.policies_dir}/ here: using the seed policies "
                "shipped with autoscaler (pass --policies DIR for yours)",
                file=sys.stderr,
            )
    policies = load_policy_dir(directory)
    if not policies:
        raise UsageError(f"{directory}: no policy files (*.toml)")
    try:
        if trace_path is None:
            trace = load_trace(default_trace_path(), policies, name=f"bundled:{DEFAULT_TRACE_NAME}")
        else:
            trace = load_trace(trace_path, policies)
    except TraceError as exc:
        raise UsageError(str(exc)) from exc
    return trace, policies


def load_policy_dir(directory: Path) -> PolicySet:
    """The policies in `directory`; a usage error when it is no directory or they are invalid."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    try:
        return load_policies(directory)
    except PolicyErrors as exc:
        raise UsageError(f"invalid policies in {directory}:\n{exc}") from exc


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    world = world_settings(args, settings)
    trace, policies = load_inputs(args, settings)
    names = list(dict.fromkeys(args.strategy or SIMULATED_STRATEGIES))
    jobs = processes(args)
    if args.plot is not None:
        from autoscaler.simulate.plot import PlotUnavailable, check_plotting

        try:
            check_plotting()
        except PlotUnavailable as exc:
            raise UsageError(str(exc)) from exc
    results = run_all(
        trace,
        policies,
        names,
        settings=world,
        keep_series=args.plot is not None,
        processes=jobs,
    )
    report = build_report(results, interval_s=world.interval_s, startup_s=world.startup_s)
    if args.format == "json":
        print_json(report)
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(report))
    else:
        print(render_text(report))
    if args.plot is not None:
        from autoscaler.simulate.plot import plot_results

        plot_results(results, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return EXIT_OK
