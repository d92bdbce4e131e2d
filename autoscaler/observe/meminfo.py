"""The host's available memory (Linux `MemAvailable`), for the memory budget."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def memory_available_mb(path: Path = MEMINFO) -> float | None:
    """MemAvailable in MB; None where the file or the line is missing (not Linux, old kernel)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == "MemAvailable":
            fields = rest.split()
            try:
                value = float(fields[0])
            except (IndexError, ValueError):
                return None
            unit = fields[1].lower() if len(fields) > 1 else "kb"
            return value / 1024.0 if unit == "kb" else value / (1024.0 * 1024.0)
    return None
