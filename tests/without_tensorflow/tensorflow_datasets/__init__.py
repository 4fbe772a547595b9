"""Stands in for tensorflow_datasets on PYTHONPATH: importing it fails, as without TensorFlow (the no-TF tier)."""

raise ImportError("tensorflow_datasets is blocked: this process runs as on a machine without TensorFlow")
