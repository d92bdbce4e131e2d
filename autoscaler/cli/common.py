"""What every verb shares: settings from the global flags, output formats, error exits."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from autoscaler.constants import EXIT_USAGE
from autoscaler.policy.loader import PolicyErrors, PolicySet, load_policies
from autoscaler.settings import (
    CONFIG_ENV,
    Settings,
    SettingsError,
    load_settings,
    searched_text,
)


class UsageError(Exception):
    """Bad arguments or configuration: printed without a traceback, exit code 2."""


def build_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings root from --config, the environment, .env and per-verb overrides."""
    try:
        return load_settings(config_file=args.config, **overrides)
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc


def unreachable_hint(settings: Settings, *fields: str) -> str:
    """When the fields of an unreachable service all hold their defaults and no settings
    file was found, a sentence saying so (the likely cause); else ""."""
    if settings.config_file is not None or not settings.defaults_used(*fields):
        return ""
    return (
        f" (at the default address: no settings file was found in {searched_text()}; "
        f"use --config FILE or {CONFIG_ENV}, or set AUTOSCALER_{fields[0].upper()})"
    )


def load_cli_policies(directory: Path | None, settings: Settings) -> PolicySet:
    """The policies in `directory` (None: the settings' policies_dir); any problem is a usage
    error that points at `autoscaler check`."""
    path = directory or settings.policies_dir
    try:
        return load_policies(path)
    except PolicyErrors as exc:
        raise UsageError(f"invalid policies (see `autoscaler check {path}`):\n{exc}") from exc


def add_format(parser: argparse.ArgumentParser, *choices: str) -> None:
    options = choices or ("table", "json")
    parser.add_argument(
        "--format",
        choices=options,
        default=options[0],
        help=f"output format (default {options[0]})",
    )


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=_json_default)
    sys.stdout.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def fail_usage(message: str) -> int:
    print(f"autoscaler: error: {message}", file=sys.stderr)
    return EXIT_USAGE
