"""Running the gate. The parent process (parent, trust, baseline, gitrepo, isolate; no
TensorFlow) prepares one Job (protocol) for the worker process (worker -> check or
calibrate -> candidate, base, parts), which measures under resource limits."""
