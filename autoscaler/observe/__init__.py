"""Observe: one tick's sample of every pool, from Redis, the workers' logs and Supervisor.

Public surface: `observation.Observation` / `PoolObservation` / `WorkSample` (what decide is
given), `observer.Observer` (takes the sample, with retries on outages), `logtail` (reads the
slots' logs through supervisord), `throughput` and `estimators` (rates, run times and arrivals
from raw counts), `meminfo` (the host's MemAvailable) and `recorder` (`autoscaler record`).
Never decides: it imports nothing from `decide` or `act`.
"""
