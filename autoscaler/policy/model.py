"""The per-pool policy: what a pool must achieve and within which bounds.

One TOML file per pool in `policies/`; the pool's name is the file's stem. The models are
strict (unknown keys rejected) because a typo in a reviewed file must fail loudly, not be
ignored. Everything that ends up in the generated Supervisor file is checked here against
INI injection, so the renderer can trust it.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    model_validator,
)

from autoscaler.constants import (
    LARAVEL_DEFAULT_MEMORY_MB,
    LARAVEL_DEFAULT_QUEUE,
    LARAVEL_DEFAULT_TIMEOUT_S,
)
from autoscaler.policy.inisafe import check_ini_value
from autoscaler.policy.lifecycle import Lifecycle, MemorySizing
from autoscaler.policy.strict import FieldProblem, StrictModel

StrategyName = Literal["slo", "static", "horizon", "hpa", "step", "celery"]
STRATEGY_NAMES: tuple[StrategyName, ...] = ("slo", "static", "horizon", "hpa", "step", "celery")

IniStr = Annotated[str, AfterValidator(check_ini_value)]
# Laravel queue names go into Redis keys and into `--queue=a,b`, so no commas or spaces.
QueueName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_.:\-{}]+$", min_length=1, max_length=200),
]
# Supervisor section names: `[program:<name>_NN]`; no ':' (group separator) or brackets.
ProgramName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=100)
]
# Supervisor byte sizes: 1024, 100KB, 100MB, 1GB.
ByteSize = Annotated[str, StringConstraints(pattern=r"^[0-9]+(KB|MB|GB)?$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _check_env_value(value: str) -> str:
    check_ini_value(value)
    # Rendered as KEY="value"; Supervisor's parser has no escape for these.
    if '"' in value or "\\" in value:
        raise ValueError('must not contain " or \\')
    return value


EnvValue = Annotated[str, AfterValidator(_check_env_value)]


def _autorestart_word(value: object) -> object:
    """A TOML boolean as Supervisor's `true` / `false` (anything else is checked as is)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class SloTarget(StrictModel):
    """The wait-time objective: `percentile` % of jobs start within `wait_s` of being queued."""

    wait_s: float = Field(gt=0, description="Longest acceptable wait before a job starts, s.")
    percentile: float = Field(
        default=95.0, gt=0, lt=100, description="Share of jobs (in %) that must meet wait_s."
    )

    @property
    def allowed_miss_fraction(self) -> float:
        return 1.0 - self.percentile / 100.0


class SloKnobs(StrictModel):
    """Knobs of the `slo` strategy (docs/slo-strategy.md explains the algorithm)."""

    model: Literal["erlang_c", "sqrt"] = Field(
        default="erlang_c",
        description="Steady-state queueing model: Erlang C (M/M/c) or square-root staffing.",
    )
    steady_percentile: float = Field(
        default=50.0,
        gt=0,
        lt=100,
        description="Percentile of jobs the steady-state model alone keeps within the SLO "
        "wait; the backlog rule enforces the SLO's own percentile on the jobs that actually "
        "wait. Raise it towards the SLO percentile for more headroom (more worker-seconds).",
    )
    steady_load_slack: float = Field(
        default=0.7,
        ge=0,
        le=10,
        description="Busy workers' worth of load the steady-state model leaves to the backlog "
        "rule: it sizes for λ·S minus this. 0 sizes for the whole load (more worker-seconds, "
        "fewer waits).",
    )
    reaction_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of the interval until the next decision that the backlog rule sets "
        "aside: 1 starts every waiting job within its SLO even if the next decision added "
        "nobody; 0 leaves the younger jobs to the next decision (fewer worker-seconds).",
    )
    startup_s: float = Field(
        default=1.0, ge=0, description="Time from adding a worker until it takes jobs, s."
    )
    arrival_half_life_s: float = Field(
        default=120.0,
        gt=0,
        description="Half-life of the arrival-rate average (EWMA), s: shorter follows load "
        "changes sooner, longer is steadier on sparse arrivals.",
    )
    scale_down_window_s: float = Field(
        default=15.0,
        ge=0,
        description="Scale down only to the highest count needed during this window, s.",
    )
    scale_down_window_jobs: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="The scale-down window lasts at least this many mean run times: a pool "
        "of long jobs otherwise steps down job by job, a scale event each.",
    )
    scale_down_step: int = Field(
        default=2, ge=1, description="Most workers removed in one decision."
    )
    max_step_up: int | None = Field(
        default=None, ge=1, description="Most workers added in one decision (none: no limit)."
    )
    down_percentile: float = Field(
        default=0.0,
        ge=0,
        lt=100,
        description="Scale down only to a count that, in steady state at the current load, "
        "keeps this percentile of jobs within the SLO wait (0: no such check).",
    )
    reversal_hold_s: float = Field(
        default=0.0,
        ge=0,
        description="After a scale-up, do not go back to the count before it for this long, "
        "s (0: no hold).",
    )


class HorizonKnobs(StrictModel):
    """Knobs of Laravel Horizon's auto balancing (laravel/horizon src/AutoScaler.php)."""

    balance: Literal["auto", "simple", "false"] = Field(
        default="auto",
        description="Horizon's `balance`: auto (share maxProcesses by load), simple (an even "
        "split, no scaling), false (one process pool per supervisor, sized to the jobs "
        "waiting); with false every pool is a supervisor of its own.",
    )
    auto_scaling_strategy: Literal["time", "size"] = Field(
        default="time",
        description="autoScalingStrategy: share workers by time to clear (jobs x run time) or "
        "by jobs waiting.",
    )
    supervisor: str = Field(
        default="default",
        description="Horizon supervisor this pool belongs to; its pools share max_processes.",
    )
    max_processes: int | None = Field(
        default=None,
        ge=1,
        description="The supervisor's maxProcesses (none: the sum of its pools' max_processes).",
    )
    balance_max_shift: int = Field(
        default=1, ge=1, description="balanceMaxShift: most workers added or removed per pass."
    )
    balance_cooldown_s: float = Field(
        default=3.0, ge=0, description="balanceCooldown: seconds between balancing passes."
    )
    metrics_snapshot_s: float = Field(
        default=300.0,
        gt=0,
        description="Period of `horizon:snapshot`, which resets the run-time average the "
        "`time` strategy reads (Horizon's docs schedule it every five minutes), s.",
    )


class HpaPolicyRule(StrictModel):
    """One Kubernetes HPA scaling policy: at most `value` pods (or %) per `period_s`."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: `value` pods per period; Percent: `value` % of the current pods."
    )
    value: int = Field(gt=0, description="Pods, or percent of the current pods, per period.")
    period_s: float = Field(gt=0, le=1800, description="The rule's window (periodSeconds), s.")


SelectPolicy = Literal["Max", "Min", "Disabled"]


class HpaKnobs(StrictModel):
    """Knobs of KEDA's Redis list trigger feeding the Kubernetes HPA (defaults as upstream)."""

    list_length: float = Field(
        default=5.0, gt=0, description="KEDA listLength: target waiting jobs per worker."
    )
    metric_type: Literal["AverageValue", "Value"] = Field(
        default="AverageValue",
        description="KEDA metricType: AverageValue (replicas = LLEN / listLength) or Value "
        "(replicas = LLEN / listLength x ready workers).",
    )
    activation_list_length: float = Field(
        default=0.0,
        ge=0,
        description="KEDA activationListLength: scale from zero only above this (min 0 only).",
    )
    polling_interval_s: float = Field(
        default=30.0, gt=0, description="KEDA pollingInterval: activation checks, s."
    )
    cooldown_period_s: float = Field(
        default=300.0, ge=0, description="KEDA cooldownPeriod before scaling to zero, s."
    )
    sync_period_s: float = Field(
        default=15.0,
        gt=0,
        description="HPA controller sync period (--horizontal-pod-autoscaler-sync-period), s.",
    )
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="HPA tolerance around the target ratio 1.0."
    )
    scale_up_tolerance: float | None = Field(
        default=None, ge=0, description="behavior.scaleUp.tolerance (none: tolerance)."
    )
    scale_down_tolerance: float | None = Field(
        default=None, ge=0, lt=1, description="behavior.scaleDown.tolerance (none: tolerance)."
    )
    scale_up_stabilization_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="behavior.scaleUp.stabilizationWindowSeconds: scale up only to the lowest "
        "recommendation within this window, s.",
    )
    scale_down_stabilization_s: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="behavior.scaleDown.stabilizationWindowSeconds: scale down only to the "
        "highest recommendation within this window, s.",
    )
    scale_up_policies: tuple[HpaPolicyRule, ...] = Field(
        default=(
            HpaPolicyRule(type="Pods", value=4, period_s=15),
            HpaPolicyRule(type="Percent", value=100, period_s=15),
        ),
        strict=False,
        description="behavior.scaleUp.policies: the most pods added per period, each rule a "
        "table `{ type, value, period_s }`.",
    )
    scale_down_policies: tuple[HpaPolicyRule, ...] = Field(
        default=(HpaPolicyRule(type="Percent", value=100, period_s=15),),
        strict=False,
        description="behavior.scaleDown.policies: the most pods removed per period.",
    )
    scale_up_select_policy: SelectPolicy = Field(
        default="Max",
        description="behavior.scaleUp.selectPolicy: the rule allowing the most change (Max), "
        "the least (Min), or no scale-up (Disabled).",
    )
    scale_down_select_policy: SelectPolicy = Field(
        default="Max", description="behavior.scaleDown.selectPolicy, as for scale-up."
    )


class StepKnobs(StrictModel):
    """Knobs of the Judoscale/HireFire-style latency band (none: derived from the SLO)."""

    latency_high_s: float | None = Field(
        default=None, gt=0, description="Scale up above this oldest-job age (none: SLO wait / 2)."
    )
    latency_low_s: float | None = Field(
        default=None, ge=0, description="Scale down below this age (none: SLO wait / 10)."
    )
    up_jump: int = Field(default=1, ge=1, description="Workers added per scale-up.")
    up_cooldown_s: float = Field(default=60.0, ge=0, description="Wait between scale-ups, s.")
    down_jump: int = Field(default=1, ge=1, description="Workers removed per scale-down.")
    downscale_delay_s: float = Field(
        default=600.0, ge=0, description="Latency must stay low this long before scaling down."
    )

    @model_validator(mode="after")
    def _band(self) -> StepKnobs:
        high, low = self.latency_high_s, self.latency_low_s
        if high is not None and low is not None and low >= high:
            raise FieldProblem(
                "latency_low_s", f"latency_low_s ({low}) must be below latency_high_s ({high})"
            )
        return self


class CeleryKnobs(StrictModel):
    """Knobs of Celery's `--autoscale=max,min` (celery/worker/autoscale.py); max and min are
    the pool's max_processes and min_processes."""

    keepalive_s: float = Field(
        default=30.0,
        gt=0,
        description="AUTOSCALE_KEEPALIVE: no scale-down until this long after the last "
        "scale-up, s.",
    )


class StrategySpec(StrictModel):
    """Which strategy the daemon uses for this pool, and every strategy's knobs.

    All knobs are kept (with defaults) so the simulator can compare every strategy on the
    same policies.
    """

    name: StrategyName = Field(
        default="slo", description="The strategy the daemon runs for this pool."
    )
    slo: SloKnobs = SloKnobs()
    horizon: HorizonKnobs = HorizonKnobs()
    hpa: HpaKnobs = HpaKnobs()
    step: StepKnobs = StepKnobs()
    celery: CeleryKnobs = CeleryKnobs()


class SupervisorOptions(StrictModel):
    """Options copied into every worker slot's `[program:...]` section."""

    user: IniStr | None = Field(default=None, description="Unix user the workers run as.")
    directory: IniStr | None = Field(
        default=None, description="Working directory of the workers (the Laravel app root)."
    )
    environment: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Environment variables of the workers, an inline table "
        '`{ APP_ENV = "production" }`.',
    )
    stopwaitsecs: int | None = Field(
        default=None,
        gt=0,
        description="Seconds a worker may take to finish its job after SIGTERM before "
        "SIGKILL; must exceed the worker's --timeout (none: --timeout + 30).",
    )
    startsecs: int = Field(
        default=1, ge=0, description="Seconds a worker must stay up to count as started."
    )
    startretries: int = Field(
        default=3, ge=0, description="Failed starts in a row before Supervisor gives up (FATAL)."
    )
    # TOML's own `true` / `false` (what `init` writes), or "unexpected"; the quoted strings
    # "true" / "false" of earlier files still work. Kept as Supervisor's word for the INI.
    autorestart: Annotated[
        Literal["true", "false", "unexpected"], BeforeValidator(_autorestart_word)
    ] = Field(
        default="true",
        description="Restart a worker that exits: true, false or unexpected (a TOML boolean "
        "or the word).",
    )
    stdout_logfile: IniStr | None = Field(
        default=None,
        description="Log path; each slot writes its own file, with `_NN` inserted before the "
        "extension unless the path already uses %(program_name)s.",
    )
    stdout_logfile_maxbytes: ByteSize = Field(
        default="100MB", description="Size at which Supervisor rotates a slot's log."
    )
    stdout_logfile_backups: int = Field(
        default=5, ge=0, description="Rotated log files Supervisor keeps per slot."
    )
    redirect_stderr: bool = Field(
        default=True, description="Send the workers' stderr to their stdout log."
    )
    stderr_logfile: IniStr | None = Field(
        default=None, description="Separate stderr log (with redirect_stderr = false)."
    )


def command_option(command: str, name: str) -> str | None:
    """The value of `--name=value` or `--name value` in a shell command, or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    pattern = re.compile(rf"^--{re.escape(name)}(?:=(.*))?$")
    for index, word in enumerate(words):
        match = pattern.match(word)
        if match is None:
            continue
        if match.group(1) is not None:
            return match.group(1)
        if index + 1 < len(words):
            return words[index + 1]
    return None


# The stopwaitsecs a worker gets when none is set: its --timeout plus this, so SIGKILL never
# interrupts a job that is still within its own time limit.
STOPWAIT_MARGIN_S = 30


def worker_timeout_s(command: str) -> int:
    """A `queue:work` command's `--timeout` (Laravel's default 60 when absent)."""
    raw = command_option(command, "timeout")
    return int(raw) if raw is not None and raw.isdigit() else LARAVEL_DEFAULT_TIMEOUT_S


def worker_memory_limit_mb(command: str) -> int:
    """A `queue:work` command's `--memory` (Laravel's default 128 when absent), MB."""
    raw = command_option(command, "memory")
    return int(raw) if raw is not None and raw.isdigit() else LARAVEL_DEFAULT_MEMORY_MB


class Policy(StrictModel):
    """One worker pool: the queues it consumes, its bounds, its SLO and its Supervisor options."""

    queues: tuple[QueueName, ...] = Field(
        min_length=1,
        strict=False,
        description="Laravel queues the workers consume, highest priority first.",
    )
    program: ProgramName = Field(
        description="Supervisor program name; slots are rendered as <program>_00, _01, ..."
    )
    command: IniStr = Field(min_length=1, description="The worker command (php artisan ...).")
    min_processes: int = Field(
        ge=0, le=1000, description="Fewest workers, whatever the load (0: none when idle)."
    )
    max_processes: int = Field(ge=1, le=1000, description="Most workers, whatever the load.")
    static_processes: int = Field(
        ge=0, le=1000, description="What the hand-written config ran; the starting point."
    )
    memory_per_worker_mb: float = Field(
        gt=0,
        le=1_000_000,
        description="One worker's memory as the budget counts it (AUTOSCALER_MEMORY_BUDGET_MB), "
        "MB; [memory] size = measured can replace it by what the workers use.",
    )
    priority: int = Field(
        ge=0,
        le=999,
        description="Importance under memory pressure, lower wins (as Supervisor's priority).",
    )
    expected_run_time_s: float = Field(
        default=1.0,
        gt=0,
        description="Typical job run time before any is measured; used by the simulator for "
        "rate traces without service_s.",
    )
    slo: SloTarget
    strategy: StrategySpec = StrategySpec()
    supervisor: SupervisorOptions = SupervisorOptions()
    memory: MemorySizing = MemorySizing()
    lifecycle: Lifecycle = Lifecycle()

    @model_validator(mode="after")
    def _bounds_and_command(self) -> Policy:
        if self.min_processes > self.max_processes:
            raise FieldProblem(
                "min_processes",
                f"min_processes ({self.min_processes}) is above max_processes "
                f"({self.max_processes})",
            )
        if not self.min_processes <= self.static_processes <= self.max_processes:
            raise FieldProblem(
                "static_processes",
                f"static_processes ({self.static_processes}) must lie within min_processes "
                f"({self.min_processes}) and max_processes ({self.max_processes})",
            )
        if len(set(self.queues)) != len(self.queues):
            raise FieldProblem("queues", "lists a queue twice")
        queue_flag = command_option(self.command, "queue")
        if queue_flag is not None and tuple(queue_flag.split(",")) != self.queues:
            raise FieldProblem(
                "command",
                f"consumes --queue={queue_flag} but queues is {','.join(self.queues)}",
            )
        timeout_flag = command_option(self.command, "timeout")
        if timeout_flag is not None and not timeout_flag.isdigit():
            raise FieldProblem(
                "command", f"--timeout={timeout_flag} is not a whole number of seconds"
            )
        if self.supervisor.stopwaitsecs is not None and (
            self.supervisor.stopwaitsecs <= self.timeout_s
        ):
            raise FieldProblem(
                "supervisor.stopwaitsecs",
                f"{self.supervisor.stopwaitsecs} must be above the worker's --timeout "
                f"({self.timeout_s}), or SIGKILL interrupts running jobs",
            )
        return self

    @property
    def timeout_s(self) -> int:
        """The worker's `--timeout` (Laravel's default 60 when absent)."""
        return worker_timeout_s(self.command)

    @property
    def worker_memory_limit_mb(self) -> int:
        """The worker's `--memory` (Laravel's default 128 when absent), MB."""
        return worker_memory_limit_mb(self.command)

    @property
    def stopwaitsecs(self) -> int:
        """Effective stopwaitsecs: the configured one, else --timeout + 30."""
        return self.supervisor.stopwaitsecs or self.timeout_s + STOPWAIT_MARGIN_S

    @property
    def memory_at_min_mb(self) -> float:
        return self.min_processes * self.memory_per_worker_mb

    @property
    def memory_at_max_mb(self) -> float:
        return self.max_processes * self.memory_per_worker_mb


def default_queue_list(command: str) -> tuple[str, ...]:
    """Queues a `queue:work` command consumes: its --queue list, else Laravel's default."""
    flag = command_option(command, "queue")
    if not flag:
        return (LARAVEL_DEFAULT_QUEUE,)
    return tuple(q for q in flag.split(",") if q)
