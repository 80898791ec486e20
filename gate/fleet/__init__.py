"""Many models in one gate.yml (`models:`), parent side, no TF: run them one after the
other (`run`), list them and the ones a change touched (`changed`), merge the reports of
matrix legs (`merge`) and export the gated .tflite files with a manifest (`export`)."""
