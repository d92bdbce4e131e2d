"""Act: make Supervisor run what a plan asks, the way `supervisorctl update` would.

Public surface: `actuator.Actuator` (apply a plan: write the include file, add and remove slot
programs without touching the slots that stay), `reconcile` (desired vs running slots),
`slot_calls` (the XML-RPC calls of one change), `slot_watch` (slots that fail to start or drain)
and `apply_report` (what an apply did). Level-based: a converged system causes no writes.
It imports nothing from `observe` or `decide`.
"""
