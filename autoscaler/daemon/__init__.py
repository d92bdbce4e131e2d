"""The daemon: `autoscaler run`, the loop that observes, decides and acts every tick.

Public surface: `lifecycle.Daemon` (lock, ticks, signals, policy reloads), `controller.Controller`
(one tick: observe -> decide -> act), `alerts`, `metrics` (Prometheus), `outage`, `lock`,
`ticker`, `logsetup` and `demo` (the same daemon on a throwaway stack). It owns time, signals,
retries and locking; the decisions are `decide`'s.
"""
