"""A small stand-in for `php artisan queue:work redis`, for the tests and `autoscaler demo`.

It pops Laravel payloads the way Laravel's Lua scripts do, "runs" each job for the time in
its payload (`data.fake.run_s`), prints the log lines of the chosen Laravel generation, and on
SIGTERM finishes the job in hand and exits 0, as Laravel's worker does. With --record it
appends one line per finished job (`id queue attempts started finished pid status`), so
tests can prove that no job was lost or run twice.

    python -m autoscaler.testing.worker --redis-url URL --queue=high,default --sleep=0.2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

import redis

from autoscaler.constants import DEFAULT_REDIS_PREFIX
from autoscaler.testing.laravel import PoppedJob, delete_reserved, pop

TERMINAL_WIDTH = 80  # Symfony's Terminal width when stdout is not a TTY and COLUMNS is unset
LOG_FORMATS = ("modern", "oneline", "legacy", "json")

# CarbonInterval's short English units (lang/en.php) and cascade factors, largest first.
_CARBON_UNITS = (
    ("yr", 12 * 4 * 7 * 86400),
    ("mo", 4 * 7 * 86400),
    ("w", 7 * 86400),
    ("d", 86400),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
)


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def json_stamp(moment: float) -> str:
    """PHP's `Y-m-d\\TH:i:s.uP` in UTC: always six fraction digits and `+00:00`."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def format_ms(seconds: float) -> str:
    """PHP's number_format(ms, 2) . 'ms': a comma between thousands."""
    return f"{seconds * 1000:,.2f}ms"


def format_run_time(seconds: float) -> str:
    """InteractsWithTime::runTimeForHumans (10.13.1+): `12.34ms` up to a second, else
    CarbonInterval::milliseconds(ms)->cascade()->forHumans(short: true): whole units down to
    the second (the rest truncated), e.g. `1s`, `2m 3s`, `1h 1s`."""
    if seconds * 1000 <= 1000:
        return format_ms(seconds)
    rest = int(seconds * 1000) // 1000
    parts = []
    for name, size in _CARBON_UNITS:
        count, rest = divmod(rest, size)
        if count:
            plural = "s" if name in ("yr", "mo") and count != 1 else ""
            parts.append(f"{count}{name}{plural}")
    return " ".join(parts)


class LogWriter:
    """The worker's per-job output as Laravel's WorkCommand writes it without a TTY.

    `legacy` (up to 9.20), `oneline` (9.21-9.40: the start is left open, the end appended),
    `modern` (9.41+, run times as 10.13.1+), `json` (11.27+ `--json`, fields as 12.x).
    """

    def __init__(self, style: str, out: TextIO) -> None:
        if style not in LOG_FORMATS:
            raise ValueError(f"unknown log format {style!r}")
        self.style = style
        self.out = out

    def banner(self, queues: str) -> None:
        # components->info(): a blank line, the message, a blank line. Not in legacy or json.
        if self.style in ("modern", "oneline"):
            noun = "queues" if "," in queues else "queue"
            self._write(f"\n   INFO  Processing jobs from the [{queues}] {noun}.\n\n")

    def starting(self, job: PoppedJob, name: str, job_id: str, moment: float) -> None:
        if self.style == "legacy":
            self._write(f"[{stamp(moment)}][{job_id}] {'Processing:'.ljust(11)} {name}\n")
        elif self.style == "oneline":
            self._write(f"  {stamp(moment)} {name}")  # no newline until the job ends
        elif self.style == "modern":
            dots = max(TERMINAL_WIDTH - len(name) - 33, 0)
            self._write(f"  {stamp(moment)} {name} {'.' * dots} RUNNING\n")
        else:
            self._json(job, name, job_id, moment, status="starting", duration=None)

    def finished(
        self, job: PoppedJob, name: str, job_id: str, moment: float, *, run_s: float, ok: bool
    ) -> None:
        status = "DONE" if ok else "FAIL"
        if self.style == "legacy":
            word = "Processed:" if ok else "Failed:"
            self._write(f"[{stamp(moment)}][{job_id}] {word.ljust(11)} {name}\n")
        elif self.style == "oneline":
            run_time = format_ms(run_s)
            dots = max(TERMINAL_WIDTH - len(name) - len(run_time) - 31, 0)
            self._write(f" {'.' * dots} {run_time} {status}\n")
        elif self.style == "modern":
            run_time = format_run_time(run_s)
            dots = max(TERMINAL_WIDTH - len(name) - len(run_time) - 31, 0)
            self._write(f"  {stamp(moment)} {name} {'.' * dots} {run_time} {status}\n")
        else:
            self._json(
                job, name, job_id, moment, status="success" if ok else "failed", duration=run_s
            )

    def _json(
        self,
        job: PoppedJob,
        name: str,
        job_id: str,
        moment: float,
        *,
        status: str,
        duration: float | None,
    ) -> None:
        decoded = job.decoded
        failed = status == "failed"
        # writeOutputAsJson: array_filter drops empty values; the end events add `duration`.
        event: dict[str, object] = {
            "level": "info" if status in ("starting", "success") else "warning",
            "id": job_id,
            "uuid": decoded.get("uuid"),
            "connection": "redis",
            "queue": job.queue,
            "job": name,
            "status": status,
        }
        if status != "starting":
            event["result"] = "deleted"
        event["attempts"] = decoded.get("attempts")
        if failed:
            event["exception"] = "RuntimeException"
            event["message"] = "The fake job failed."
        event["timestamp"] = json_stamp(moment)
        if duration is not None:
            event["duration"] = round(duration, 6)
        text = json.dumps({k: v for k, v in event.items() if v}, separators=(",", ":"))
        self._write(text.replace("/", "\\/") + "\n")  # json_encode escapes slashes

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.client = redis.Redis.from_url(args.redis_url, socket_timeout=5)
        self.prefix: str = args.prefix
        self.queues: list[str] = [q for q in args.queue.split(",") if q]
        self.sleep_s: float = args.sleep
        self.retry_after_s: float = args.retry_after
        self.record: Path | None = args.record
        self.log = LogWriter(args.log_format, sys.stdout)
        self.stopping = False
        self.busy = False
        # A leak, for the recycling tests: this many MB more held (and touched) after each job.
        self.grow_mb: float = args.grow_mb_per_job
        self.hoard: list[bytes] = []

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if not self.busy:
            raise SystemExit(0)

    def next_job(self) -> PoppedJob | None:
        for queue in self.queues:
            job = pop(self.client, self.prefix, queue, retry_after_s=self.retry_after_s)
            if job is not None:
                return job
        return None

    def run_one(self, job: PoppedJob) -> None:
        payload = job.decoded
        name = str(payload.get("displayName", "App\\Jobs\\Unknown"))
        job_id = str(payload.get("id", ""))
        fake = payload.get("data", {}).get("fake", {})
        run_s = float(fake.get("run_s", 0.0))
        ok = not bool(fake.get("fail", False))
        started = time.time()
        self.log.starting(job, name, job_id, started)
        time.sleep(run_s)  # SIGTERM does not cut this short: the handler only sets a flag
        delete_reserved(self.client, self.prefix, job)
        if self.grow_mb > 0:
            self.hoard.append(b"\x01" * int(self.grow_mb * 1024 * 1024))  # resident: written
        finished = time.time()
        self.log.finished(job, name, job_id, finished, run_s=finished - started, ok=ok)
        if self.record is not None:
            line = (
                f"{job_id} {job.queue} {payload.get('attempts')} {started:.6f} {finished:.6f} "
                f"{os.getpid()} {'done' if ok else 'failed'}\n"
            )
            with self.record.open("a", encoding="utf-8") as handle:
                handle.write(line)  # one short O_APPEND write: lines never interleave

    def loop(self) -> int:
        self.log.banner(",".join(self.queues))
        while not self.stopping:
            self.busy = True
            try:
                job = self.next_job()
                if job is not None:
                    self.run_one(job)
                    continue
            except redis.RedisError as exc:
                print(f"   ERROR  Redis unavailable: {exc}", file=sys.stderr, flush=True)
            finally:
                self.busy = False
            if self.stopping:
                break
            time.sleep(self.sleep_s)
        return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artisan",
        nargs="*",
        metavar="WORD",
        help="accepted and ignored, so a command reads like artisan's: queue:work redis ...",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1"))
    parser.add_argument("--prefix", default=DEFAULT_REDIS_PREFIX)
    parser.add_argument("--queue", default="default", help="queues in priority order, a,b")
    parser.add_argument("--sleep", type=float, default=0.2, help="idle sleep, s (--sleep)")
    parser.add_argument("--timeout", type=int, default=60, help="accepted, as queue:work's")
    parser.add_argument("--tries", type=int, default=1, help="accepted, as queue:work's")
    parser.add_argument("--memory", type=int, default=128, help="accepted, as queue:work's")
    parser.add_argument("--retry-after", type=float, default=90.0)
    parser.add_argument("--boot-s", type=float, default=0.0, help="start-up delay, s")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="modern")
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument(
        "--grow-mb-per-job", type=float, default=0.0, help="leak this many MB per job (tests)"
    )
    parser.add_argument(
        "--refuse-start-if",
        type=Path,
        default=None,
        help="exit 1 at once when this file exists (a deploy whose new code does not boot)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.refuse_start_if is not None and args.refuse_start_if.exists():
        print(f"   ERROR  cannot boot: {args.refuse_start_if} exists", file=sys.stderr, flush=True)
        return 1
    worker = Worker(args)
    signal.signal(signal.SIGTERM, worker.on_term)
    signal.signal(signal.SIGQUIT, worker.on_term)
    signal.signal(signal.SIGINT, worker.on_term)
    time.sleep(args.boot_s)  # the framework's boot time before the first pop
    return worker.loop()


if __name__ == "__main__":
    raise SystemExit(main())
