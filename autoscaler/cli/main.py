"""Entry point of the `autoscaler` command."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import autoscaler.cli
from autoscaler import __version__
from autoscaler.cli.common import UsageError, fail_usage
from autoscaler.constants import EXIT_OK


def verb_modules() -> list[ModuleType]:
    """Every `autoscaler/cli/<verb>_cmd.py`; each has register(verbs), which sets `func`."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(autoscaler.cli.__path__)
        if info.name.endswith("_cmd")
    )
    return [importlib.import_module(f"autoscaler.cli.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoscaler",
        description="SLO-driven autoscaling of Laravel queue workers run by Supervisor.",
    )
    parser.add_argument("--version", action="version", version=f"autoscaler {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings TOML file (default: $AUTOSCALER_CONFIG; env and .env override it)",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in verb_modules():
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        return fail_usage(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `autoscaler ... | head` closed the pipe: not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    return code
