"""Read `policies/*.toml` into a PolicySet, or report every problem at once.

Each problem names the file, the field (dotted path) and what is wrong, with a line number
where one can be found, so `check` can print them all and CI can annotate them.
"""

from __future__ import annotations

import datetime
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autoscaler.policy.model import Policy, StrategyName
from autoscaler.policy.strict import FieldProblem

POOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyError:
    file: Path
    field: str
    problem: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.field}: {self.problem}"


class PolicyErrors(Exception):
    """Every problem found in a policy directory."""

    def __init__(self, errors: list[PolicyError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class PolicySet(Mapping[str, Policy]):
    """Pools by name (the file stem), sorted by name; immutable."""

    def __init__(self, policies: Mapping[str, Policy], *, files: Mapping[str, Path]) -> None:
        self._policies = dict(sorted(policies.items()))
        self.files = dict(files)
        self._pool_by_queue = {q: pool for pool, p in self._policies.items() for q in p.queues}

    def __getitem__(self, pool: str) -> Policy:
        return self._policies[pool]

    def __iter__(self) -> Iterator[str]:
        return iter(self._policies)

    def __len__(self) -> int:
        return len(self._policies)

    def pool_for_queue(self, queue: str) -> str | None:
        return self._pool_by_queue.get(queue)

    @property
    def min_memory_mb(self) -> float:
        return sum(p.memory_at_min_mb for p in self._policies.values())

    def with_strategy(self, name: StrategyName) -> PolicySet:
        """The same pools, all run by strategy `name` (the simulator compares strategies)."""
        changed = {
            pool: p.model_copy(update={"strategy": p.strategy.model_copy(update={"name": name})})
            for pool, p in self._policies.items()
        }
        return PolicySet(changed, files=self.files)


def load_policies(directory: Path, *, usable_memory_mb: float | None = None) -> PolicySet:
    """Parse and cross-check every `*.toml` in `directory`; raise PolicyErrors on any problem."""
    errors: list[PolicyError] = []
    if not directory.is_dir():
        raise PolicyErrors(
            [PolicyError(file=directory, field="(directory)", problem="not a directory")]
        )
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise PolicyErrors(
            [PolicyError(file=directory, field="(directory)", problem="holds no *.toml policy")]
        )
    policies: dict[str, Policy] = {}
    files: dict[str, Path] = {}
    texts: dict[str, str] = {}
    for path in paths:
        loaded = _load_one(path, errors)
        if loaded is not None:
            policies[path.stem], texts[path.stem] = loaded
            files[path.stem] = path
    errors.extend(_cross_check(policies, files, texts, usable_memory_mb))
    if errors:
        raise PolicyErrors(errors)
    return PolicySet(policies, files=files)


def parse_policy(path: Path, text: str) -> Policy:
    """Parse one policy's text; raise PolicyErrors naming `path`."""
    errors: list[PolicyError] = []
    policy = _parse(path, text, errors)
    if policy is None:
        raise PolicyErrors(errors)
    return policy


def _load_one(path: Path, errors: list[PolicyError]) -> tuple[Policy, str] | None:
    if not POOL_NAME.match(path.stem):
        errors.append(
            PolicyError(
                file=path,
                field="(file name)",
                problem="the pool name (file stem) may hold only letters, digits, _ . -",
            )
        )
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(PolicyError(file=path, field="(file)", problem=f"cannot read: {exc}"))
        return None
    policy = _parse(path, text, errors)
    return None if policy is None else (policy, text)


def _parse(path: Path, text: str, errors: list[PolicyError]) -> Policy | None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(exc)
        errors.append(PolicyError(file=path, field="(toml)", problem=str(exc), line=line))
        return None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            field, problem = _describe(err)
            errors.append(
                PolicyError(file=path, field=field, problem=problem, line=find_line(text, field))
            )
        return None


def _describe(err: Any) -> tuple[str, str]:
    cause = (err.get("ctx") or {}).get("error")
    loc = [str(p) for p in err["loc"]]
    if isinstance(cause, FieldProblem):
        return ".".join([*loc, cause.field]) if loc else cause.field, str(cause)
    field = ".".join(loc) if loc else "(policy)"
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown key (typo?)"
    elif err["type"] == "missing":
        message = "required but missing"
    elif str(err["type"]).endswith("_type") and (kind := _toml_kind(err.get("input"))):
        message = f"{message}, not {kind}"  # the kind, never the value (it may be a secret)
    message = message.removeprefix("Value error, ")
    return field, message


def _toml_kind(value: object) -> str | None:
    """What a parsed TOML value was written as, for 'should be X, not Y' messages."""
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "a boolean"),  # before int: bool is an int in Python
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        ((datetime.date, datetime.time), "a date or time"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), None)


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else None


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r'^\s*("?)([A-Za-z0-9_.\-]+)\1\s*=')


def find_line(text: str, field: str) -> int | None:
    """Best-effort 1-based line of a dotted field in TOML text (for annotations)."""
    wanted = [p for p in field.split(".") if not p.isdigit()]
    best: tuple[int, int] | None = None  # (matched parts, line)
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = [p.strip().strip('"') for p in header.group(1).split(".")]
            path = table
        else:
            key = _KEY.match(line)
            if key is None:
                continue
            path = table + key.group(2).split(".")
        matched = _common_prefix(path, wanted)
        if matched == len(path) and matched and (best is None or matched > best[0]):
            best = (matched, number)
    return best[1] if best else None


def _common_prefix(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def _cross_check(
    policies: Mapping[str, Policy],
    files: Mapping[str, Path],
    texts: Mapping[str, str],
    usable_memory_mb: float | None,
) -> Iterator[PolicyError]:
    queue_owner: dict[str, str] = {}
    program_owner: dict[str, str] = {}
    for pool, policy in policies.items():
        path, text = files[pool], texts[pool]
        for queue in policy.queues:
            other = queue_owner.setdefault(queue, pool)
            if other != pool:
                yield PolicyError(
                    file=path,
                    field="queues",
                    problem=f"queue {queue!r} is already consumed by pool {other!r} "
                    f"({files[other].name})",
                    line=find_line(text, "queues"),
                )
        other = program_owner.setdefault(policy.program, pool)
        if other != pool:
            yield PolicyError(
                file=path,
                field="program",
                problem=f"program {policy.program!r} is already used by pool {other!r} "
                f"({files[other].name})",
                line=find_line(text, "program"),
            )
    if usable_memory_mb is not None:
        at_min = sum(p.memory_at_min_mb for p in policies.values())
        if at_min > usable_memory_mb:
            directory = next(iter(files.values())).parent if files else Path(".")
            yield PolicyError(
                file=directory,
                field="min_processes",
                problem=f"the pools' minimums need {at_min:.0f} MB, above the usable memory "
                f"budget of {usable_memory_mb:.0f} MB (AUTOSCALER_MEMORY_BUDGET_MB minus "
                f"AUTOSCALER_MEMORY_RESERVE_MB)",
            )
