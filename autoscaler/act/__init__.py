"""Act: make Supervisor run what a plan asks, the way `supervisorctl update` would.

Public surface: `actuator.Actuator` (apply a plan: write the include file, add and remove slot
programs without touching the slots that stay), `planner` (one apply's layout and file text),
`reread` (supervisord's reread, and the rollback when it refuses), `reconcile` (desired vs
running slots), `slot_calls` (the XML-RPC calls of one change), `slot_watch` (slots that fail
to start or drain), `apply_report` (what an apply did) and `apply_log` (its log lines, once).
Level-based: a converged system causes no writes.
It imports nothing from `observe` or `decide`.
"""
