"""Decide: the pure decision core, shared line for line by the daemon and the simulator.

Public surface: `core.decide` (observation + policies + previous state -> plan + new state),
`plan.Plan` / `PoolDecision` / `ControllerState` / `MemoryBudget`, `budget` (the memory-budget
allocator), `queueing` (queueing formulas) and `strategies` (slo, static, horizon, hpa, step).
No clock, no I/O: nothing here imports `act`, `daemon`, `simulate`, `review` or `cli`.
"""
