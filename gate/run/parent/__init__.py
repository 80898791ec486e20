"""The parent process (no TensorFlow): `run` (gate check: config, trust, base, worker,
report on every exit path), `trust`, `baseline` + `gitrepo` (the base checkout), `isolate`
(the worker under limits), `calibrate` (gate calibrate)."""
