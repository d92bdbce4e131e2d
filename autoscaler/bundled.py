"""Files shipped inside the package: the seed's policies and the default trace.

`autoscaler simulate` with no arguments runs on these, so it works right after
`pip install autoscaler` with no checkout, no Redis and no Supervisor. They are copies of
`policies/*.toml` and `simulations/traces/flash_burst.csv.gz`; a test keeps them identical.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_TRACE_NAME = "flash_burst.csv.gz"


def _data_dir() -> Path:
    # Installed packages are directories on disk (setuptools does not zip them).
    return Path(str(files("autoscaler"))) / "data"


def seed_policies_dir() -> Path:
    return _data_dir() / "policies"


def default_trace_path() -> Path:
    return _data_dir() / "traces" / DEFAULT_TRACE_NAME


def laravel_app_dir() -> Path:
    """A minimal real Laravel 8 application (tests and `autoscaler demo`; needs PHP)."""
    return _data_dir() / "laravel_app"
