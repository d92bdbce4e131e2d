"""The files in deploy/ are what they claim: Supervisor accepts the daemon's program and
the include line covers the default owned file (the example settings: test_daemon_parts)."""

from __future__ import annotations

import configparser
import signal
from pathlib import Path

from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions, UnhosedConfigParser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_daemon_program_passes_supervisors_parser(tmp_path: Path) -> None:
    text = (DEPLOY / "supervisor" / "autoscaler.conf").read_text()
    # The log directory exists on a real host; point it into the temp dir for the parser.
    text = text.replace("/var/log/autoscaler/", f"{tmp_path}/")
    parser = UnhosedConfigParser()
    parser.read_string(text)
    options = ServerOptions()
    options.here = str(tmp_path)
    (group,) = options.process_groups_from_parser(parser)
    (program,) = group.process_configs
    assert program.name == "autoscaler"
    assert program.command.endswith("autoscaler --config /etc/autoscaler/autoscaler.toml run")
    assert program.stopsignal == signal.SIGTERM
    assert program.autorestart is RestartUnconditionally
    assert program.stopwaitsecs == 30


def test_runbook_creates_the_daemons_log_directory() -> None:
    """supervisord refuses a program whose log directory is missing, so the runbook makes it."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read_string((DEPLOY / "supervisor" / "autoscaler.conf").read_text())
    log_dir = Path(parser.get("program:autoscaler", "stdout_logfile")).parent
    deploying = (DEPLOY.parent / "docs" / "deploying.md").read_text()
    assert f"mkdir -p {log_dir}`" in deploying
    assert f"mkdir -p {log_dir}\n" in (DEPLOY.parent / "README.md").read_text()


def test_include_snippet_names_the_default_owned_file() -> None:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read_string((DEPLOY / "supervisor" / "include.conf").read_text())
    assert parser.get("include", "files") == "/etc/supervisor/conf.d/*.conf"
