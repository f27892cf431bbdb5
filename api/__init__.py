"""HTTP API: thin routes over the AppRuntime (runtime.py)."""
