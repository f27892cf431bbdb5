"""HTTP API: thin routes over a running service's parts (service.py's Application). No SQL here:
routes call the scheduler, the consumer supervisor and storage's query functions.

`ROUTERS` are the route modules' routers as declared; a ServiceScheduler serves them bound to
itself (binding.py), as `scheduler.router`.
"""
