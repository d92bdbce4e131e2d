"""`autoscaler config`: the effective settings, secrets masked."""

from __future__ import annotations

import argparse

from autoscaler.cli.common import add_format, build_settings, print_json
from autoscaler.constants import EXIT_OK
from autoscaler.settings import describe_fields, effective_settings
from autoscaler.table import render_table


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "config",
        help="print the effective settings (secrets masked)",
        description="Print the effective settings after env (AUTOSCALER_*), .env and the "
        "config file are applied. Passwords, also inside URLs, are masked.",
    )
    add_format(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    shown = effective_settings(build_settings(args))
    if args.format == "json":
        print_json(shown)
        return EXIT_OK
    descriptions = describe_fields()
    rows = [
        (f"AUTOSCALER_{name.upper()}", "-" if value is None else str(value), descriptions[name])
        for name, value in shown.items()
    ]
    print(render_table(("setting", "value", "meaning"), rows))
    return EXIT_OK
