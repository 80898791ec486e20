"""Running the gate in two processes. `parent/` (no TensorFlow) reads gate.yml once,
decides trust, checks out the base and hands one Job to `worker/` (TF, LiteRT, tfmot,
under resource limits), which measures and judges and returns the run record once. Beside
them, what both sides share: the messages (`protocol`), the log the record is filled in
(`stagelog`), `calibration`, `digest`. The parent imports worker code only in
`parent.isolate.run_in_process` (debugging); the worker never imports the parent
(tests/test_layers.py)."""
