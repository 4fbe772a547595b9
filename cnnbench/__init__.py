"""cnnbench: the harness that runs the registered CNNs through tasks and records what they measure."""

import os

# TF's C++ start-up chatter (CUDA probing, oneDNN notices) drowns the suite's own output; users can set it back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
