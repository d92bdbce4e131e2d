"""Traces: backlog traces in the project's CSV format, and the tools that make them.

Public surface: `loader.load_trace` / `parse_trace`, `jobs.Trace` and `jobs.QueueJobs` (one
queue's arrival and run-time arrays), `writer` (write a trace), `convert` (public workload
traces into ours) and `scenarios` (the seeded synthetic scenarios). Imports only `policy`.
"""
