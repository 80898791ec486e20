"""gate.yml and policy files -> validated, typed, frozen objects (no TensorFlow):
load (GateConfig), policies (presets, extends), schema and steps (the shapes), validation
(errors with file, field and line), yamlio (YAML with the line of every key)."""
