"""Observe: one tick's sample of every pool, from Redis, the workers' logs and Supervisor.

Public surface: `observation.Observation` / `PoolObservation` / `WorkSample` (what decide is
given), `observer.Observer` (puts one tick's sample together) over its sources:
`redis_reader` (the queues), `supervisor_reader` (the processes) and `slot_logs` (each pool's
slot logs, read with `logtail`), each retried on outages by `retry`; `pool_work` (a pool's work,
from logs or Little's law) and `flow_balance` (arrivals, `QueueFlow`) over `throughput` and
`estimators` (rates, run times and arrivals from raw counts); `meminfo` (the host's
MemAvailable) and `recorder` (`autoscaler record`).
Never decides: it imports nothing from `decide` or `act`.
"""
