"""model-gate: a CI gate for on-device models."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("model-gate")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
