"""Judging: the threshold registry turns the evidence of a run into Checks (statistics for
latency and paired accuracy); no TensorFlow."""
