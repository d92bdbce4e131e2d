"""One tick of the control loop: observe -> decide -> act, then log, alert and export metrics.

The controller owns no time and no signals (the daemon does); it is handed the components
and runs one tick when told. Faults never escape a tick: Redis or Supervisor down means the
observation says so, decide holds every count it cannot see, and nothing is applied that
could scale a pool down on missing data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from loguru import logger

from autoscaler.act.actuator import Actuator
from autoscaler.act.apply_report import ApplyReport
from autoscaler.daemon.alerts import Alert, Alerter, AlertKind
from autoscaler.daemon.crashloop import CrashWatch
from autoscaler.daemon.metrics import Metrics
from autoscaler.daemon.outage import Outage
from autoscaler.daemon.published import publish
from autoscaler.daemon.recycler import Recycler
from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan
from autoscaler.observe.observation import Observation
from autoscaler.observe.observer import Observer
from autoscaler.policy.model import Policy


@dataclass(slots=True, kw_only=True)
class TickResult:
    observation: Observation
    plan: Plan
    report: ApplyReport | None  # None: nothing applied (dry run, or Supervisor down)
    changed: dict[str, tuple[int, int]] = field(default_factory=dict)  # pool -> (old, new)
    duration_s: float = 0.0


class Planner(Protocol):
    """Plans in place of decide: the fleet seam (autoscaler/fleet/member.py). A fleet host's
    plan is its share of the leader's fleet-wide decision, or its held counts."""

    def plan(
        self,
        observation: Observation,
        policies: Mapping[str, Policy],
        state: ControllerState,
        *,
        budget: MemoryBudget,
    ) -> tuple[Plan, ControllerState]: ...

    def host_policies(self, policies: Mapping[str, Policy]) -> Mapping[str, Policy]:
        """The policies as the actuator applies them on this host."""
        ...


class Controller:
    def __init__(
        self,
        *,
        policies: Mapping[str, Policy],
        observer: Observer,
        actuator: Actuator,
        budget: MemoryBudget,
        alerter: Alerter,
        metrics: Metrics | None = None,
        dry_run: bool = False,
        summary_interval_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        publish_dir: Path | None = None,
        interval_s: float = 5.0,
        planner: Planner | None = None,
    ) -> None:
        self.publish_dir = publish_dir  # where `status` finds the last decision (None: off)
        self.crash_watch = CrashWatch()
        self.interval_s = interval_s
        self.policies = policies
        self.planner = planner
        if planner is not None:
            actuator.policies = planner.host_policies(policies)
        self.observer = observer
        self.actuator = actuator
        self.budget = budget
        self.alerter = alerter
        self.metrics = metrics
        self.dry_run = dry_run
        self.summary_interval_s = summary_interval_s
        self._clock = clock
        self.redis = Outage(name="redis", clock=clock)
        self.supervisor = Outage(name="supervisor", clock=clock)
        self.applying = Outage(name="apply", clock=clock)  # the file cannot be written/applied
        # A restarted daemon starts from what the file says it last wanted, so a pool it
        # cannot see yet keeps that count rather than jumping to the static one.
        self.state = ControllerState(last_desired=dict(actuator.file_counts()))
        self.recycler = Recycler(replacer=actuator.replacer, alerter=alerter, metrics=metrics)
        self._last_summary_s = 0.0
        self._last_dry_diff = ""
        self._refused: set[str] = set()
        self._head_problems: dict[str, str] = {}

    def set_policies(self, policies: Mapping[str, Policy]) -> None:
        """New valid policies (a file edit or SIGHUP): every component follows them."""
        self.policies = policies
        self.observer.set_policies(policies)
        self.actuator.policies = self.planner.host_policies(policies) if self.planner else policies

    def tick(self) -> TickResult:
        started = time.monotonic()
        observation = self.observer.observe()
        pools = observation.pools.values()
        held = [obs.pool for obs in pools if obs.queues is None]
        self._track(
            self.redis,
            observation.redis_error,
            # Redis answered, but a key of another type spoils the pools that read it.
            "redis_unreachable" if len(held) == len(observation.pools) else "queue_unreadable",
            held=held,
        )
        self._track(
            self.supervisor,
            observation.supervisor_error,
            "supervisor_unreachable",
            held=[obs.pool for obs in pools if obs.workers is None],
        )
        self._log_head_problems(self.observer.head_problems)
        previous = dict(self.state.last_desired)
        if self.planner is not None:
            plan, self.state = self.planner.plan(
                observation, self.policies, self.state, budget=self.budget
            )
        else:
            plan, self.state = decide(
                observation, self.policies, self.state, now_s=observation.at_s, budget=self.budget
            )
        changed = {
            pool: (previous.get(pool, d.current or 0), d.desired)
            for pool, d in plan.decisions.items()
            if previous.get(pool, d.current) != d.desired
        }
        for pool, (old, new) in changed.items():
            logger.bind(pool=pool, old=old, new=new).info(
                "{} {} -> {}: {}", pool, old, new, plan.decisions[pool].reason
            )
        if not self.dry_run:
            self.recycler.tick(observation, plan, self.policies)
        report = self._act(observation, plan)
        self._publish(plan)
        self.recycler.after_apply()
        self._alert(observation, plan, report)
        self._crashes(observation.at_s)
        duration = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.record(observation, plan, previous)
            self.metrics.tick_duration.observe(duration)
        self._summary(observation, plan)
        return TickResult(
            observation=observation,
            plan=plan,
            report=report,
            changed=changed,
            duration_s=duration,
        )

    def _crashes(self, now_s: float) -> None:
        """Unexpected worker exits: counted (metric), logged, alerted above a rate."""
        for pool in set(self.crash_watch.pools()) | set(self.observer.crashes):
            exits = self.observer.crashes.get(pool, [])
            if exits and self.metrics is not None:
                self.metrics.worker_exits.labels(pool).inc(len(exits))
            recent = self.crash_watch.add(pool, len(exits), now_s)
            crossed = self.crash_watch.crossed(pool, recent)
            last = f"{exits[-1].name} ({exits[-1].how})" if exits else ""
            if crossed is False:
                logger.info("{}: workers stopped exiting unexpectedly", pool)
                self.alerter.clear("workers_crashing", pool)
            elif crossed is True or recent >= self.crash_watch.threshold:
                message = (
                    f"{recent} worker exit(s) not expected in the last "
                    f"{self.crash_watch.window_s:.0f}s, last {last or '-'}: a crash loop "
                    "(--memory exits 12; see the slot's log: autoscaler logs POOL)"
                )
                if crossed:
                    logger.warning("{}: {}", pool, message)
                self.alerter.raise_(
                    Alert(kind="workers_crashing", subject=pool, message=message, at_s=now_s)
                )
            else:
                for event in exits:
                    logger.info("{}: {} exited unexpectedly ({})", pool, event.name, event.how)

    def _publish(self, plan: Plan) -> None:
        if self.publish_dir is None:
            return
        try:
            publish(
                self.publish_dir,
                plan,
                interval_s=self.interval_s,
                dry_run=self.dry_run,
                waiting_for_room=self.recycler.waiting_for_room,
            )
        except OSError as exc:  # status recomputes instead; the loop goes on
            logger.warning("cannot publish the decision for status: {}", exc)

    def _log_head_problems(self, problems: Mapping[str, str]) -> None:
        """A head job whose payload cannot be used costs its queue the precise age, nothing
        else: say so when it appears (not every tick)."""
        for queue, problem in problems.items():
            if self._head_problems.get(queue) != problem:
                logger.warning("queue {}: {}", queue, problem)
        self._head_problems = dict(problems)

    def _act(self, observation: Observation, plan: Plan) -> ApplyReport | None:
        if observation.supervisor_error is not None:
            return None  # nothing can be applied; decide held the counts it could not see
        counts = plan.counts()
        if self.dry_run:
            try:
                preview = self.actuator.plan(counts, busy_slots=self.observer.busy_slots())
            except Exception as exc:
                logger.error("dry run: cannot compute the plan: {}", exc)
                return None
            diff = preview.diff()
            if diff and diff != self._last_dry_diff:
                logger.info(
                    "dry run: would apply {} -> {}\n{}", preview.before, preview.after, diff
                )
            self._last_dry_diff = diff
            return None
        report = self.actuator.apply(counts, busy_slots=self.observer.busy_slots())
        if report.error is not None and self.metrics is not None:
            self.metrics.errors.labels("apply").inc()
        self._track_apply(report)
        return report

    def _track_apply(self, report: ApplyReport) -> None:
        """An apply that fails (a full disk, a read-only include directory, a refused reread)
        alerts once when it starts and when its cause changes, never every tick; a pool
        refused on its own alerts by name."""
        now = self._clock()
        if report.error is None or report.unreachable:
            length = self.applying.recovered()
            if length is not None:
                logger.info("applying works again after {:.0f}s", length)
                self.alerter.clear("apply_failed", "include_file")
        elif report.error != self.applying.reason:
            self.applying.failed(report.error)
            self.alerter.clear("apply_failed", "include_file")
            self.alerter.raise_(
                Alert(
                    kind="apply_failed",
                    subject="include_file",
                    message=f"nothing can be applied: {report.error}",
                    at_s=now,
                )
            )
        for pool in self._refused - set(report.refused):
            self.alerter.clear("pool_refused", pool)
        for pool, reason in report.refused.items():
            self.alerter.raise_(Alert(kind="pool_refused", subject=pool, message=reason, at_s=now))
        self._refused = set(report.refused)

    def _track(
        self, outage: Outage, error: str | None, kind: AlertKind, *, held: list[str]
    ) -> None:
        """Log an outage once when it starts and once when it ends; alert (rate-limited)."""
        if error is None:
            length = outage.recovered()
            if length is not None:
                logger.info("{} is back after {:.0f}s", outage.name, length)
                self.alerter.clear(kind, outage.name)
                if kind == "redis_unreachable":
                    self.alerter.clear("queue_unreadable", outage.name)
            return
        if self.metrics is not None:
            self.metrics.errors.labels(outage.name).inc()
        if outage.failed(error):
            if len(held) == len(self.policies):
                logger.error("{} unavailable, holding every count: {}", outage.name, error)
            else:  # e.g. one queue key of another type: only its pool is held
                logger.error("{}: holding {}: {}", outage.name, ", ".join(held), error)
        if kind == "queue_unreadable":
            self.alerter.raise_(
                Alert(kind=kind, subject=outage.name, message=f"holding {', '.join(held)}: "
                      f"{error}", at_s=self._clock())
            )  # fmt: skip
            return
        self.alerter.raise_(
            Alert(
                kind=kind,
                subject=outage.name,
                message=f"down for {self._clock() - (outage.down_since_s or 0):.0f}s: {error}",
                at_s=self._clock(),
            )
        )

    def _alert(self, observation: Observation, plan: Plan, report: ApplyReport | None) -> None:
        now = observation.at_s
        # While nothing can be applied, "more workers needed" points the operator at capacity
        # instead of the cause (apply_failed / pool_refused say it).
        stuck = self._refused | (set(plan.decisions) if self.applying.down else set())
        for pool, obs in observation.pools.items():
            policy = self.policies.get(pool)
            decision = plan.decisions.get(pool)
            if policy is None or decision is None:
                continue
            if obs.workers is not None and obs.workers.failed:
                self.alerter.raise_(
                    Alert(
                        kind="workers_fatal",
                        subject=pool,
                        message=f"{obs.workers.failed} worker slot(s) FATAL or EXITED",
                        at_s=now,
                    )
                )
            if decision.crashing:
                self.alerter.raise_(
                    Alert(
                        kind="workers_crashing",
                        subject=pool,
                        message=f"{decision.crashing} slot(s) crash at start (BACKOFF/FATAL): "
                        "not scaled up, and their memory is not charged; see the slots' logs",
                        at_s=now,
                    )
                )
            oldest = obs.oldest_wait_s
            if (
                oldest is not None
                and pool not in stuck
                and oldest > policy.slo.wait_s
                and decision.desired >= policy.max_processes
            ):
                self.alerter.raise_(
                    Alert(
                        kind="slo_missed_at_max",
                        subject=pool,
                        message=f"oldest wait {oldest:.0f}s > SLO {policy.slo.wait_s:g}s at "
                        f"max_processes {policy.max_processes}",
                        at_s=now,
                    )
                )
        capped = [pool for pool, d in plan.decisions.items() if d.capped]
        if capped and not self.applying.down:
            self.alerter.raise_(
                Alert(
                    kind="budget_exhausted",
                    subject="host",
                    message=f"memory limit {plan.memory_limit_mb:.0f} MB reached; held back: "
                    + ", ".join(capped),
                    at_s=now,
                )
            )
        if report is not None:
            for change in report.killed():
                self.alerter.raise_(
                    Alert(
                        kind="workers_killed",
                        subject=change.pool or change.slot,
                        message=f"{change.slot} {change.reason}",
                        at_s=now,
                    )
                )
            for problem in report.problems:
                if problem.state in ("FATAL", "BACKOFF") and problem.pool is not None:
                    self.alerter.raise_(
                        Alert(kind="workers_fatal", subject=problem.pool, message=str(problem),
                              at_s=now)
                    )  # fmt: skip

    def _summary(self, observation: Observation, plan: Plan) -> None:
        now = observation.at_s
        if now - self._last_summary_s < self.summary_interval_s:
            return
        self._last_summary_s = now
        parts = []
        for pool, decision in plan.decisions.items():
            obs = observation.pools.get(pool)
            waiting = obs.waiting if obs is not None else None
            age = obs.oldest_wait_s if obs is not None else None
            parts.append(
                f"{pool} {decision.desired}"
                f" (waiting {'?' if waiting is None else waiting},"
                f" oldest {'-' if age is None else f'{age:.0f}s'})"
            )
        logger.info(
            "summary: {} | memory {:.0f}/{:.0f} MB",
            "; ".join(parts),
            plan.memory_planned_mb,
            plan.memory_limit_mb,
        )
