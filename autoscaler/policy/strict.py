"""The base of every policy model: strict types, unknown keys rejected, and the error a
cross-field check raises (it names the field an operator should change)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FieldProblem(ValueError):
    """A cross-field check failed; `field` names the field an operator should change."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


class StrictModel(BaseModel):
    # Strict types: TOML has native ones, so `true` or "1" where a number belongs is a
    # mistake to report, not to convert (an int for a float field is still fine). Tuple
    # fields relax this for the container only (TOML arrays arrive as lists).
    # No inf/nan: TOML allows them, and every bound or rate computed from them breaks.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
