"""The command line: parse, build settings, call one function, map the outcome to an exit code."""
