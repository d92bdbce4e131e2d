"""Simulate: replay a trace through the same `decide` the daemon runs, beside the peers.

Public surface: `engine.simulate` (one strategy over one trace), `world` (the simulated queues
and workers), `oracle` (the cost reference that knows the future), `comparison` (all strategies
side by side), `report` / `plot` / `targets` (tables, figures, goals), `tuning`
(`autoscaler tune`), `wait_stats`, `obs_builders` and `parallel` (fork-based fan-out).
"""
