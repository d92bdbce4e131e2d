"""Which fields of a policy changed: dotted paths with their old and new values.

Policies are compared by their effective values (defaults filled in), so moving a value to
another line, adding a comment or writing out a default is no change, while removing a key
whose default differs is one. Values are shown as TOML, the way the policy file spells them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.policy.model import Policy
from autoscaler.policy.tomlfmt import toml_value

UNSET = "(unset)"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    field: str  # dotted path, as `check` names fields: `slo.wait_s`, `strategy.slo.startup_s`
    before: str  # TOML text, or "(unset)"
    after: str


def changed_fields(before: Policy, after: Policy) -> list[FieldChange]:
    """Every leaf that differs, in the order of the policy's fields."""
    old = dict(_leaves(before.model_dump(mode="json")))
    new = dict(_leaves(after.model_dump(mode="json")))
    order = list(old) + [key for key in new if key not in old]
    return [
        FieldChange(field=key, before=_shown(old, key), after=_shown(new, key))
        for key in order
        if old.get(key, _MISSING) != new.get(key, _MISSING)
    ]


_MISSING = object()


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every value that is not a table, in the model's field order
    (a free-form table's keys, `supervisor.environment`, in the file's order); tables are
    walked, lists and None are leaves."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _shown(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    return UNSET if value is None else toml_value(value)
