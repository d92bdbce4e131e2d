"""Names and defaults shared across the package: Laravel's Redis keys, Supervisor's facts.

Facts come from laravel/framework (RedisQueue.php, LuaScripts.php, WorkCommand.php) and a real
supervisord 4.3; see docs/research.md for the sources.
"""

from typing import Final

# Laravel <= 11 skeleton: Str::slug(APP_NAME, '_') . '_database_'; 12+: '-database-'.
DEFAULT_REDIS_PREFIX: Final = "laravel_database_"

QUEUE_KEY: Final = "queues:{queue}"  # LIST of waiting payloads, RPUSH / LPOP
RESERVED_SUFFIX: Final = ":reserved"  # ZSET, score = reservation expiry (unix s)
DELAYED_SUFFIX: Final = ":delayed"  # ZSET, score = available-at (unix s)
NOTIFY_SUFFIX: Final = ":notify"  # LIST of "1" per push, used with block_for

# `queue:work` defaults (Illuminate\Queue\Console\WorkCommand).
LARAVEL_DEFAULT_TIMEOUT_S: Final = 60
LARAVEL_DEFAULT_QUEUE: Final = "default"
LARAVEL_DEFAULT_MEMORY_MB: Final = 128  # --memory: the worker exits past this (PHP's count)
LARAVEL_DEFAULT_RETRY_AFTER_S: Final = 90

# Supervisor's process states (supervisor/states.py).
SUPERVISOR_STATES: Final = {
    0: "STOPPED",
    10: "STARTING",
    20: "RUNNING",
    30: "BACKOFF",
    40: "STOPPING",
    100: "EXITED",
    200: "FATAL",
    1000: "UNKNOWN",
}

# Expansions Supervisor substitutes in program values; any other `%` must be written `%%`.
SUPERVISOR_EXPANSIONS: Final = frozenset(
    {"program_name", "process_num", "group_name", "host_node_name", "here", "numprocs"}
)

# Exit codes of every CLI verb.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
