"""HTTP API: thin routes over the Application (application.py). No SQL here: routes call the
scheduler, the consumer supervisor and storage's query functions."""
