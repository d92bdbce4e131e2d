"""`autoscaler check [DIR]`: validate every policy, print a summary or every error at once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoscaler.cli.common import UsageError, add_format, build_settings, fail_usage, print_json
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.policy.loader import PolicyError, PolicyErrors, PolicySet, load_policies
from autoscaler.review.annotations import error_annotations, workflow_command
from autoscaler.settings import Settings
from autoscaler.supervisord.include_file import SupervisorFileError, check_text
from autoscaler.supervisord.render import render_pool
from autoscaler.table import render_table


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "check",
        help="validate the policy files",
        description="Validate every policy in DIR (default: AUTOSCALER_POLICIES_DIR) and the "
        "pools' minimum memory against the host budget. Exit 0 when all are valid, 1 with "
        "every problem listed (file, field, problem) otherwise. --format github prints each "
        "problem as a GitHub Actions error annotation on its file and line. On the host "
        "(where the include file's directory exists, or with --host) it also checks each "
        "pool's program sections as supervisord would: log directories that do not exist, "
        "unknown users, %(ENV_X)s that is not set.",
    )
    parser.add_argument("directory", nargs="?", type=Path, help="policy directory")
    parser.add_argument(
        "--host",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check what supervisord on this host would refuse (default: when the include "
        "file's directory exists)",
    )
    add_format(parser, "table", "json", "github")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = build_settings(args)
    except UsageError as exc:
        # CI reads stdout: every failure gets its answer there, as the policies' errors do.
        if args.format == "json":
            config = None if args.config is None else str(args.config)
            entry = {"file": config, "line": None, "field": "(settings)", "problem": str(exc)}
            print_json({"ok": False, "errors": [entry]})
        elif args.format == "github":
            print(workflow_command("error", str(exc), {"title": "autoscaler check"}))
        raise
    directory: Path = args.directory or settings.policies_dir
    if not directory.is_dir():
        problem = "not a directory"
        if args.format == "github":
            message = f"{directory}: {problem}"
            print(workflow_command("error", message, {"title": "autoscaler check"}))
        elif args.format == "json":
            missing = PolicyError(file=directory, field="(directory)", problem=problem)
            print_json(_errors_json([missing]))
        return fail_usage(f"{directory}: {problem}")
    try:
        policies = load_policies(directory, usable_memory_mb=settings.usable_memory_mb)
        on_host = args.host if args.host is not None else settings.include_file.parent.is_dir()
        if on_host:
            host_errors = host_problems(policies, settings.include_file)
            if host_errors:
                raise PolicyErrors(host_errors)
    except PolicyErrors as exc:
        if args.format == "json":
            print_json(_errors_json(exc.errors))
        elif args.format == "github":
            # Annotations are workflow commands: the runner reads them from stdout.
            for line in error_annotations(exc.errors):
                print(line)
            print(f"{len(exc.errors)} problem(s) in {directory}", file=sys.stderr)
        else:
            for error in exc.errors:
                print(error, file=sys.stderr)
            print(f"{len(exc.errors)} problem(s) in {directory}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        print_json({"ok": True, "pools": summary_rows(policies), "budget": _budget(settings)})
    else:
        print(summary_table(policies, settings))
    return EXIT_OK


def host_problems(policies: PolicySet, include_file: Path) -> list[PolicyError]:
    """What supervisord on this host would refuse in each pool's sections (it refuses the
    whole file: the daemon holds such a pool back and alerts). Its first and last slot are
    checked: their log paths differ only by the slot number."""
    errors: list[PolicyError] = []
    for pool, policy in policies.items():
        indices = sorted({0, max(policy.max_processes - 1, 0)})
        try:
            check_text(render_pool(pool, policy, indices), path=include_file)
        except SupervisorFileError as exc:
            problem = str(exc).removeprefix(f"{include_file}: ")
            file = policies.files.get(pool, Path(f"{pool}.toml"))
            errors.append(PolicyError(file=file, field="[supervisor]", problem=problem))
    return errors


def _errors_json(errors: list[PolicyError]) -> dict[str, object]:
    return {
        "ok": False,
        "errors": [
            {"file": str(e.file), "line": e.line, "field": e.field, "problem": e.problem}
            for e in errors
        ],
    }


def summary_rows(policies: PolicySet) -> list[dict[str, object]]:
    return [
        {
            "pool": pool,
            "queues": ",".join(p.queues),
            "min": p.min_processes,
            "static": p.static_processes,
            "max": p.max_processes,
            "memory_at_min_mb": p.memory_at_min_mb,
            "memory_at_max_mb": p.memory_at_max_mb,
            "slo_wait_s": p.slo.wait_s,
            "slo_percentile": p.slo.percentile,
            "strategy": p.strategy.name,
        }
        for pool, p in policies.items()
    ]


def _budget(settings: Settings) -> dict[str, float]:
    return {
        "memory_budget_mb": settings.memory_budget_mb,
        "memory_reserve_mb": settings.memory_reserve_mb,
        "usable_memory_mb": settings.usable_memory_mb,
    }


def summary_table(policies: PolicySet, settings: Settings) -> str:
    rows = [
        (
            r["pool"],
            r["queues"],
            f"{r['min']} / {r['static']} / {r['max']}",
            r["memory_at_min_mb"],
            r["memory_at_max_mb"],
            f"p{r['slo_percentile']:g} <= {r['slo_wait_s']:g}s",
            r["strategy"],
        )
        for r in summary_rows(policies)
    ]
    table = render_table(
        ("pool", "queues", "min / static / max", "MB at min", "MB at max", "SLO", "strategy"),
        rows,
    )
    at_min = sum(p.memory_at_min_mb for p in policies.values())
    at_max = sum(p.memory_at_max_mb for p in policies.values())
    at_static = sum(p.static_processes * p.memory_per_worker_mb for p in policies.values())
    return (
        f"{table}\n\n{len(policies)} {'pool' if len(policies) == 1 else 'pools'} valid. "
        f"Memory: {at_min:.0f} MB at min, "
        f"{at_static:.0f} MB at static, {at_max:.0f} MB at max; usable budget "
        f"{settings.usable_memory_mb:.0f} MB."
    )
