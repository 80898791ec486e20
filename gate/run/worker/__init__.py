"""The worker process (`python -P -m gate.run.worker JOB_DIR`): everything that touches
the model. `main` (job in, result out), `check` (gate check, stage by stage), `candidate`
(measure one model), `base` (the base branch's candidate), `sections` (stage results ->
run record sections), `cached` + `cache` + `codec` (measured models kept across runs),
`calibrate` (gate calibrate)."""
