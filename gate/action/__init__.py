"""The GitHub Action (`gate action`, the container's entry point) and the fork-safe comment
from an artifact (`gate report comment`)."""
