"""Stands in for tensorflow on PYTHONPATH: importing it fails, as on a machine without it (the no-TensorFlow tier)."""

raise ImportError("tensorflow is blocked: this process runs as on a machine without TensorFlow")
