"""`autoscaler record --out TRACE --duration D`: a rate trace of live traffic for `simulate`."""

from __future__ import annotations

import argparse
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from autoscaler.cli.common import UsageError, build_settings, load_cli_policies
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.observe.observer import Observer
from autoscaler.observe.recorder import TraceRecorder
from autoscaler.settings import Settings, mask_url

CHECKPOINT_S = 60.0  # rewrite the file this often, so a crash loses at most a minute
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "record",
        help="record live traffic as a rate trace for the simulator",
        description="Sample the live system every --interval seconds for --duration and write "
        "a rate trace (time_s,queue,arrivals,service_s; docs/design.md): arrivals by flow "
        "balance of each queue, service_s from the workers' logged run times. The file is "
        "written atomically, rewritten every minute while recording, and finished early (with "
        "what was recorded) on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--out", type=Path, required=True, help="trace file (.csv or .csv.gz)")
    parser.add_argument(
        "--duration", required=True, help="how long to record: seconds, or 90s, 15m, 2h, 1d"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="S",
        help="bucket length, s (default AUTOSCALER_INTERVAL_S)",
    )
    parser.add_argument("--policies", type=Path, default=None, help="policy directory")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.set_defaults(func=run)


def parse_duration_s(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"--duration {text!r}: expected seconds or a number with s, m, h or d")
    return float(match.group("value")) * _UNIT_S[match.group("unit")]


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    duration_s = parse_duration_s(args.duration)
    interval_s = args.interval if args.interval is not None else settings.interval_s
    if duration_s <= 0 or interval_s <= 0 or interval_s > duration_s:
        raise UsageError("--duration and --interval must be > 0, with --interval <= --duration")
    out: Path = args.out
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")
    if out.exists() and not args.force:
        raise UsageError(f"--out {out}: exists (use --force to overwrite)")
    policies = load_cli_policies(args.policies, settings)

    stop = _StopFlag()
    observer = Observer.from_settings(settings, policies)
    try:
        first = observer.observe()
        recorder = TraceRecorder(policies=policies, started_at_s=first.at_s)

        def header(ticks: int, ended: str) -> list[str]:
            return _header(settings, first.at_s, duration_s, interval_s, ticks, ended, recorder)

        ticks = _loop(
            observer,
            recorder,
            stop,
            out=out,
            header=header,
            duration_s=duration_s,
            interval_s=interval_s,
        )
        ended = "interrupted" if stop.raised else "complete"
        recorder.write(out, header(ticks, ended))
    finally:
        stop.restore()
        observer.close()
    print(
        f"wrote {len(recorder.rows)} row(s) for {len(recorder.queues)} queue(s) over "
        f"{ticks} tick(s) to {out} ({ended})",
        file=sys.stderr,
    )
    return EXIT_OK if recorder.rows else EXIT_FAILED


def _loop(
    observer: Observer,
    recorder: TraceRecorder,
    stop: _StopFlag,
    *,
    out: Path,
    header: Callable[[int, str], list[str]],
    duration_s: float,
    interval_s: float,
) -> int:
    started = time.monotonic()
    last_checkpoint = started
    ticks = 0
    while not stop.raised:
        deadline = started + (ticks + 1) * interval_s
        if deadline - started > duration_s + 1e-9:
            break
        if not stop.sleep_until(deadline):
            break
        observation = observer.observe()
        ticks += 1
        problem = observation.redis_error or next(iter(observer.log_problems.values()), None)
        recorder.add(at_s=observation.at_s, flows=observer.flows, problem=problem)
        if time.monotonic() - last_checkpoint >= CHECKPOINT_S:
            recorder.write(out, header(ticks, "in progress"))
            last_checkpoint = time.monotonic()
    return ticks


def _header(  # noqa: PLR0917 - one call site, all positional for brevity
    settings: Settings,
    started_at_s: float,
    duration_s: float,
    interval_s: float,
    ticks: int,
    ended: str,
    recorder: TraceRecorder,
) -> list[str]:
    started = datetime.fromtimestamp(started_at_s, tz=UTC).isoformat(timespec="seconds")
    sources = ", ".join(
        f"{pool}={'+'.join(sorted(kinds))}" for pool, kinds in sorted(recorder.sources.items())
    )
    return [
        "rate trace recorded by `autoscaler record` (docs/design.md, Trace format)",
        f"host {socket.gethostname()}, redis {mask_url(settings.redis_url)}, "
        f"prefix {settings.redis_prefix}",
        f"started {started}, asked {duration_s:g} s, bucket {interval_s:g} s, "
        f"{ticks} tick(s), {ended}",
        "arrivals: flow balance per bucket (completions + change in pending + reserved + due "
        "delayed); service_s: mean logged run time, else the last one, else the policy's",
        f"work source per pool: {sources or 'none yet'} (logs: counted; redis: estimated)",
    ]


class _StopFlag:
    """Ctrl-C and SIGTERM end the recording early; the trace is still written."""

    def __init__(self) -> None:
        self.raised = False
        self._previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.raised = True

    def sleep_until(self, deadline: float) -> bool:
        """Sleep until `deadline` (monotonic) in short steps; False if asked to stop."""
        while not self.raised:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.2))
        return False

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
