"""`autoscaler config`: the effective settings, secrets masked."""

from __future__ import annotations

import argparse

from autoscaler.cli.common import add_format, build_settings, print_json
from autoscaler.constants import EXIT_OK
from autoscaler.settings import CONFIG_ENV, describe_fields, effective_settings, searched_text
from autoscaler.table import render_table


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "config",
        help="print the effective settings (secrets masked)",
        description="Print the effective settings after env (AUTOSCALER_*), .env and the "
        "settings file are applied, and where each value came from. Passwords, also inside "
        "URLs, are masked. The settings file: --config, else AUTOSCALER_CONFIG, else the "
        "first of ./autoscaler.toml and /etc/autoscaler/autoscaler.toml that exists.",
    )
    add_format(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    shown = effective_settings(settings)
    if args.format == "json":
        print_json(shown)
        return EXIT_OK
    if settings.config_file is not None:
        print(f"settings file: {settings.config_file}")
    else:
        print(f"no settings file (looked for {searched_text()}; --config FILE or {CONFIG_ENV})")
    descriptions = describe_fields()
    rows = [
        (
            f"AUTOSCALER_{name.upper()}",
            "-" if value is None else str(value),
            settings.origin(name),
            descriptions[name],
        )
        for name, value in shown.items()
    ]
    print(render_table(("setting", "value", "from", "meaning"), rows))
    return EXIT_OK
