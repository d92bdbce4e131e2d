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


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_run_time(seconds: float) -> str:
    """WorkCommand::formatRunTime: `12.34ms` below a second, else CarbonInterval short form."""
    ms = seconds * 1000
    if ms <= 1000:
        return f"{ms:,.2f}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    rounded = round(secs, 2)
    if rounded:
        parts.append(f"{rounded:g}s")
    return " ".join(parts) or "0s"


class LogWriter:
    """The worker's per-job output in one of Laravel's three generations."""

    def __init__(self, style: str, out: TextIO) -> None:
        self.style = style
        self.out = out

    def banner(self, queues: str) -> None:
        if self.style == "modern":
            self._line(f"\n   INFO  Processing jobs from the [{queues}] queue.\n")
        elif self.style == "legacy":
            pass  # 8.x printed no banner

    def starting(self, job: PoppedJob, name: str, job_id: str, moment: float) -> None:
        if self.style == "legacy":
            self._line(f"[{stamp(moment)}][{job_id}] Processing: {name}")
        elif self.style == "modern":
            dots = max(TERMINAL_WIDTH - len(name) - 33, 0)
            self._line(f"  {stamp(moment)} {name} {'.' * dots} RUNNING")
        else:
            self._json(job, name, job_id, moment, status="starting", duration=None)

    def finished(
        self, job: PoppedJob, name: str, job_id: str, moment: float, *, run_s: float, ok: bool
    ) -> None:
        if self.style == "legacy":
            status = "Processed:" if ok else "Failed:"
            self._line(f"[{stamp(moment)}][{job_id}] {status.ljust(11)} {name}")
        elif self.style == "modern":
            run_time = format_run_time(run_s)
            dots = max(TERMINAL_WIDTH - len(name) - len(run_time) - 31, 0)
            self._line(
                f"  {stamp(moment)} {name} {'.' * dots} {run_time} {'DONE' if ok else 'FAIL'}"
            )
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
        event = {
            "level": "info",
            "id": job_id,
            "uuid": job.decoded.get("uuid"),
            "connection": "redis",
            "queue": job.queue,
            "job": name,
            "status": status,
            "timestamp": datetime.fromtimestamp(moment, tz=UTC).isoformat(),
        }
        if duration is not None:
            event["duration"] = round(duration, 6)
        self._line(json.dumps(event, separators=(",", ":")))

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
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
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1"))
    parser.add_argument("--prefix", default=DEFAULT_REDIS_PREFIX)
    parser.add_argument("--queue", default="default", help="queues in priority order, a,b")
    parser.add_argument("--sleep", type=float, default=0.2, help="idle sleep, s (--sleep)")
    parser.add_argument("--timeout", type=int, default=60, help="accepted, as queue:work's")
    parser.add_argument("--tries", type=int, default=1, help="accepted, as queue:work's")
    parser.add_argument("--memory", type=int, default=128, help="accepted, as queue:work's")
    parser.add_argument("--retry-after", type=float, default=90.0)
    parser.add_argument("--boot-s", type=float, default=0.0, help="start-up delay, s")
    parser.add_argument("--log-format", choices=("modern", "legacy", "json"), default="modern")
    parser.add_argument("--record", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    worker = Worker(args)
    signal.signal(signal.SIGTERM, worker.on_term)
    signal.signal(signal.SIGQUIT, worker.on_term)
    signal.signal(signal.SIGINT, worker.on_term)
    time.sleep(args.boot_s)  # the framework's boot time before the first pop
    return worker.loop()


if __name__ == "__main__":
    raise SystemExit(main())
