"""Random TOML never produces a traceback: always a valid policy or a clear error."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.policy.loader import PolicyErrors, parse_policy
from tests.policy_helpers import BASE, to_toml

FIELDS = [*BASE, "strategy", "supervisor", "expected_run_time_s", "unknown"]
NESTED = {
    "slo": ["wait_s", "percentile", "x"],
    "strategy": ["name", "slo", "horizon", "hpa", "step"],
    "supervisor": ["user", "directory", "environment", "stopwaitsecs", "stdout_logfile"],
}

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(["%", " ;x", "a\nb", "[x]", "%(here)s", "slo", "hpa", "Pods", "-1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = dict(BASE)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        if key in NESTED and draw(st.booleans()):
            doc[key] = {
                sub: draw(values)
                for sub in draw(st.lists(st.sampled_from(NESTED[key]), max_size=3))
            }
        else:
            doc[key] = draw(values)
    for key in draw(st.lists(st.sampled_from(list(BASE)), max_size=2)):
        doc.pop(key, None)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_documents())
def test_random_documents_give_a_policy_or_clear_errors(doc: dict[str, Any]) -> None:
    path = Path(tempfile.gettempdir()) / "fuzz.toml"
    try:
        text = to_toml(doc)
    except (TypeError, ValueError):
        return  # not expressible as TOML by our writer; nothing to parse
    try:
        policy = parse_policy(path, text)
    except PolicyErrors as exc:
        assert exc.errors
        for error in exc.errors:
            assert str(error).startswith(str(path))
            assert error.field and error.problem
        return
    assert policy.min_processes <= policy.static_processes <= policy.max_processes


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    path = Path("random.toml")
    try:
        parse_policy(path, text)
    except PolicyErrors as exc:
        assert all(e.file == path for e in exc.errors)
