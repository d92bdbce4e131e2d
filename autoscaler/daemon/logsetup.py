"""Log configuration for the daemon and the CLI (loguru): level, text or JSON lines, stderr."""

from __future__ import annotations

import sys

from loguru import logger

TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"


def configure_logging(*, level: str, json_lines: bool) -> None:
    """Replace loguru's default sink. Messages never carry secrets: URLs are masked upstream."""
    logger.remove()
    logger.add(
        sys.stderr,
        level=level,
        format=TEXT_FORMAT,
        serialize=json_lines,
        backtrace=False,
        diagnose=False,  # diagnose would print local variables, which may hold secrets
    )
