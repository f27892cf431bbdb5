"""The soak (`python -m bench.soak`, `make soak`): the real service under steady load for minutes, its
resources sampled and everything it produced and ran accounted for at the end; writes
docs/reliability.md. `harness` runs it; `service`, `load`, `tasks`/`task_plan`, `database`, `probe`,
`accounting`, `verdict`, `faults` and `report` are its parts."""
