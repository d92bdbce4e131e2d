"""Values that are safe to write into a Supervisor INI file.

Supervisor's parser (RawConfigParser plus its own expansion) treats a newline as the end of
the value, `[` at a line start as a new section, ` ;` and ` #` as inline comments, and `%` as
the start of an expansion. A policy value carrying any of these would silently change the
generated file, so it is rejected before rendering.
"""

from __future__ import annotations

import re

from autoscaler.constants import SUPERVISOR_EXPANSIONS

# `%%` is a literal percent; `%(name)s` an expansion Supervisor knows; `%(ENV_X)s` an env var.
# Supervisor expands with Python's % operator, so any conversion works: `%(process_num)02d`,
# common in hand-written log paths (`init` copies them).
_PERCENT = re.compile(
    r"%%|%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)[-#0 +]*\d*(?:\.\d+)?[sdiouxXeEfFgGr]|%"
)


def check_ini_value(value: str) -> str:
    """Return `value` unchanged, or raise ValueError saying what would break the INI file."""
    if "\n" in value or "\r" in value:
        raise ValueError("must not contain a line break (it would end the INI value)")
    if "\x00" in value:
        raise ValueError("must not contain a NUL byte")
    if "[" in value or "]" in value:
        raise ValueError("must not contain [ or ] (a section header in the INI file)")
    if re.search(r"\s[;#]", value):
        raise ValueError("must not contain ' ;' or ' #' (an inline comment in the INI file)")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace (the INI parser strips it)")
    for match in _PERCENT.finditer(value):
        token = match.group(0)
        name = match.group("name")
        if token == "%":
            raise ValueError(
                "has an unescaped % (write %% for a literal percent, or %(name)s for an "
                "expansion Supervisor knows)"
            )
        if name is not None and name not in SUPERVISOR_EXPANSIONS and not name.startswith("ENV_"):
            raise ValueError(f"uses %({name})s, which Supervisor does not expand")
    return value
