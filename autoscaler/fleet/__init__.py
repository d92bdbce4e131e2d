"""Several hosts share each pool: heartbeats, one leader by a Redis lease, the split of each
pool's count over the hosts, and the assignments each host applies (docs/fleet.md)."""
