"""What Supervisor defines: its XML-RPC API, its program sections and the include file we own.

Named `supervisord`, not `supervisor`, which is the library's own package. Public surface:
`rpc.SupervisorClient` and `rpc.ProcessInfo`, `slots` (one program per worker slot, its name, log
file and `WorkerCounts`), `render` (policies to program sections) and `include_file` (the
generated file: read, check with Supervisor's parser, write atomically, keep the previous one).
"""
