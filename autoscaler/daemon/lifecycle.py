"""`autoscaler run`: the daemon's lifecycle — lock, ticks at a steady interval, signals.

- One active controller per managed file (ControllerLock); a second daemon waits as a standby
  and takes over within one interval when the active one dies.
- Ticks at start + k x interval (Ticker), whatever each tick took.
- SIGTERM / SIGINT: finish the tick, exit 0, leave the workers running.
- SIGHUP, or a change to a policy file: reload the policies; an invalid edit keeps the last
  valid ones in force and is reported (log and alert).
"""

from __future__ import annotations

import signal
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from types import FrameType

from loguru import logger

from autoscaler.act.actuator import Actuator
from autoscaler.daemon.agefile import restore_ages, save_ages
from autoscaler.daemon.alerts import Alert, Alerter
from autoscaler.daemon.controller import Controller, TickResult
from autoscaler.daemon.lock import ControllerLock
from autoscaler.daemon.metrics import Metrics
from autoscaler.daemon.ticker import Ticker
from autoscaler.decide.plan import MemoryBudget
from autoscaler.fleet.member import FleetMember
from autoscaler.observe.observer import Observer
from autoscaler.policy.model import Policy
from autoscaler.policy.watch import PolicyWatcher
from autoscaler.settings import Settings
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.supervisord.rpc import SupervisorUnavailable
from autoscaler.supervisord.slots import worker_counts


class Daemon:
    def __init__(self, *, settings: Settings, once: bool = False) -> None:
        self.settings = settings
        self.once = once
        self.state_dir = settings.state_dir or default_state_dir(settings.include_file)
        self.lock = ControllerLock(state_dir=self.state_dir)
        self.watcher = PolicyWatcher(
            directory=settings.policies_dir,
            # In a fleet the minimums are the fleet's: one host's budget need not hold them.
            usable_memory_mb=None if settings.fleet else settings.usable_memory_mb,
        )
        webhook = settings.webhook_url.get_secret_value() if settings.webhook_url else None
        self.alerter = Alerter(
            interval_s=settings.alert_interval_s,
            webhook_url=webhook,
            webhook_format=settings.webhook_format,
        )
        self.metrics: Metrics | None = None
        self.controller: Controller | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._reload = False
        self._missing_reported: set[str] = set()
        self.last: TickResult | None = None

    # -- signals -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        self._wake.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True
        self._wake.set()

    def stop(self) -> None:
        self._on_stop(signal.SIGTERM, None)

    # -- lifecycle -----------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (or one tick with `once`). Returns the exit code."""
        policies = self.watcher.load_initial()  # PolicyErrors: refuse to start
        closers: list[Callable[[], None]] = []
        farewell = "stopped"
        try:
            if not self._wait_for_lock():
                # --once beside an active daemon did nothing: say so in the exit code.
                return 1 if self.once else 0
            # Only the active daemon serves metrics: a standby on the same host would find
            # the port taken, and has nothing to report.
            self._serve_metrics()
            observer = Observer.from_settings(self.settings, policies)
            restore_ages(observer.sampler.ages, self.state_dir)
            actuator = Actuator.from_settings(self.settings, policies)
            closers.extend([
                lambda: save_ages(observer.sampler.ages, self.state_dir),
                observer.close,
                actuator.client.close,
            ])  # fmt: skip
            member = FleetMember.from_settings(self.settings) if self.settings.fleet else None
            if member is not None:  # the lease is released first, the client closed last
                closers[:0] = [member.close]
                closers.append(member.client.close)
            self.controller = Controller(
                policies=policies,
                observer=observer,
                actuator=actuator,
                budget=MemoryBudget(
                    budget_mb=self.settings.memory_budget_mb,
                    reserve_mb=self.settings.memory_reserve_mb,
                ),
                alerter=self.alerter,
                metrics=self.metrics,
                dry_run=self.settings.dry_run,
                summary_interval_s=self.settings.summary_interval_s,
                publish_dir=self.lock.path.parent,
                interval_s=self.settings.interval_s,
                planner=member,
            )
            logger.info(
                "active: {} pools, interval {:g}s, {}managing {}",
                len(policies),
                self.settings.interval_s,
                "DRY RUN, " if self.settings.dry_run else "",
                self.settings.include_file,
            )
            self._loop()
            farewell = self._workers_left()
        finally:
            for close in closers:
                close()
            self.lock.release()
            self.alerter.close()
            if self.metrics is not None:
                self.metrics.close()
        logger.info(farewell)
        return 1 if self.once and not _tick_succeeded(self.last) else 0

    def _workers_left(self) -> str:
        """The last log line, saying what is true: `supervisorctl stop all` stops the workers
        with the daemon, a `supervisorctl stop autoscaler` leaves them running."""
        assert self.controller is not None
        actuator = self.controller.actuator
        try:
            counts = worker_counts(actuator.client.processes(), self.controller.policies)
        except (SupervisorUnavailable, xmlrpc.client.Fault) as exc:
            return f"stopped; the workers are left as they are (supervisord: {exc})"
        running = sum(c.running + c.starting for c in counts.values())
        stopping = sum(c.draining for c in counts.values())
        if running == 0 and stopping == 0:
            return "stopped; no worker slot of ours is running"
        finishing = f", {stopping} finishing their job" if stopping else ""
        return f"stopped; {running} worker slot(s) keep running{finishing}"

    def _serve_metrics(self) -> None:
        if self.settings.metrics_port is None:
            return
        self.metrics = Metrics()
        where = f"{self.settings.metrics_host}:{self.settings.metrics_port}"
        try:
            self.metrics.serve(host=self.settings.metrics_host, port=self.settings.metrics_port)
        except OSError as exc:
            # Autoscaling matters more than its metrics: run without them, and say so.
            self.metrics = None
            message = (
                f"cannot serve metrics on {where} ({exc.strerror or exc}): running without "
                "metrics; free the port or set AUTOSCALER_METRICS_PORT, then restart"
            )
            logger.error(message)
            self.alerter.raise_(
                Alert(kind="metrics_unavailable", subject=where, message=message, at_s=time.time())
            )
            return
        logger.info(
            "metrics on http://{}:{}/metrics",
            self.settings.metrics_host,
            self.settings.metrics_port,
        )

    def _wait_for_lock(self) -> bool:
        """Become the active controller, or wait as a standby. False: stopped while waiting."""
        announced = False
        while not self._stopping:
            if self.lock.acquire():
                if announced:
                    logger.info("the active daemon is gone: taking over")
                return True
            if self.once:
                logger.error(
                    "pid {} holds {}: another daemon is active; --once did nothing",
                    self.lock.holder_pid(),
                    self.lock.path,
                )
                return False
            if not announced:
                logger.info(
                    "standby: pid {} holds {}; taking over when it stops",
                    self.lock.holder_pid(),
                    self.lock.path,
                )
                announced = True
            self._wake.wait(self.settings.interval_s)
            self._wake.clear()
        return False

    def _loop(self) -> None:
        ticker = Ticker(interval_s=self.settings.interval_s)
        number = 0
        while True:
            self._reload_policies()
            number += 1
            self.last = self.tick()
            if self.last is not None:
                logger.debug("tick {} took {:.0f} ms", number, self.last.duration_s * 1000)
            if self.once or self._stopping:
                return
            delay = ticker.next_delay_s()
            if self._wake.wait(delay):
                self._wake.clear()
            if self._stopping:
                return

    def tick(self) -> TickResult | None:
        """One tick; None when it failed unexpectedly (logged with its traceback)."""
        assert self.controller is not None
        try:
            return self.controller.tick()
        except Exception:
            # A bug must not stop the controller: the apply is level-based, so the next tick
            # starts from what Supervisor and the file say, not from where this one stopped.
            logger.exception("tick failed; trying again next tick")
            if self.metrics is not None:
                self.metrics.errors.labels("tick").inc()
            return None

    def _reload_policies(self) -> None:
        force, self._reload = self._reload, False
        result = self.watcher.poll(force=force)
        if result.errors and result.new_errors:
            for error in result.errors:
                logger.error("invalid policy, keeping the last valid ones: {}", error)
            self.alerter.raise_(
                Alert(
                    kind="policy_invalid",
                    subject=str(self.settings.policies_dir),
                    message=f"{len(result.errors)} problem(s), first: {result.errors[0]}",
                    at_s=time.time(),
                )
            )
        for pool, path in result.missing.items():
            if pool not in self._missing_reported:
                message = (
                    f"{path} is gone: pool {pool} keeps its last policy and workers for "
                    f"{self.watcher.grace_s:g}s, and is removed if the file is still gone then"
                )
                logger.warning(message)
                self.alerter.raise_(
                    Alert(kind="policy_missing", subject=pool, message=message, at_s=time.time())
                )
        for pool in self._missing_reported - set(result.missing) - set(result.removed):
            logger.info("the policy file of pool {} is back", pool)
            self.alerter.clear("policy_missing", pool)
        for pool in result.removed:
            logger.warning(
                "pool {} removed: its policy file is gone (for {:g}s, or another file now "
                "claims its queues or program); its workers are stopped gracefully",
                pool,
                self.watcher.grace_s,
            )
        self._missing_reported = set(result.missing)
        if result.changed and self.watcher.policies is not None and self.controller is not None:
            logger.info(
                "policies reloaded: {}", reload_summary(self.controller.policies,
                                                        self.watcher.policies)
            )  # fmt: skip
            self.controller.set_policies(self.watcher.policies)


def reload_summary(old: Mapping[str, Policy], new: Mapping[str, Policy]) -> str:
    """Which pools a reload changed, added or removed (not every pool)."""
    parts = []
    changed = [pool for pool in new if pool in old and old[pool] != new[pool]]
    added = [pool for pool in new if pool not in old]
    removed = [pool for pool in old if pool not in new]
    for word, pools in (("changed", changed), ("added", added), ("removed", removed)):
        if pools:
            parts.append(f"{word} {', '.join(pools)}")
    return "; ".join(parts) or "no pool changed (comments or formatting only)"


def _tick_succeeded(result: TickResult | None) -> bool:
    """For --once: the tick ran, saw Redis and Supervisor, and its apply (if any) worked."""
    if result is None:
        return False
    observation = result.observation
    if observation.redis_error is not None or observation.supervisor_error is not None:
        return False
    return result.report is None or result.report.error is None
