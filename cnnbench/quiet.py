"""TensorFlow's start-up chatter, hidden unless ``-v``: the lines absl writes to stderr before TensorFlow reads
``TF_CPP_MIN_LOG_LEVEL`` (the CUDA probe on a machine without a GPU, oneDNN's notice, absl's own preamble) — from a
suite's cell processes (``Relay`` on their stderr pipe) and from the CLI's own process (``hidden_chatter``)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections import deque

CHATTER = re.compile(r"[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] |WARNING: All log messages before absl::InitializeLog")


class Relay:
    """``stream`` relayed line by line to ``out`` (``sys.stderr`` where None) without ``CHATTER``; the last hidden
    lines are kept for a process that fails or dies (``show``)."""

    def __init__(self, stream, out=None):
        self.out = out
        self.hidden: deque[str] = deque(maxlen=50)
        self.thread = threading.Thread(target=self._relay, args=(stream,), daemon=True)
        self.thread.start()

    def _write(self, lines) -> None:
        out = self.out or sys.stderr
        out.writelines(lines)
        out.flush()

    def _relay(self, stream) -> None:
        for line in stream:
            if CHATTER.match(line):
                self.hidden.append(line)
            else:
                self._write([line])

    def show(self) -> None:
        if self.hidden:
            self._write(["(TensorFlow's log lines, hidden without -v:)\n", *self.hidden])


@contextlib.contextmanager
def hidden_chatter():
    """This process's file descriptor 2 through a ``Relay`` while the block runs: the C++ libraries write there
    directly, below Python's ``sys.stderr``. Everything else reaches the terminal as before."""
    sys.stderr.flush()
    terminal = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    relay = Relay(os.fdopen(read, errors="replace"), os.fdopen(terminal, "w", closefd=True))
    try:
        yield relay
    finally:
        sys.stderr.flush()
        os.dup2(relay.out.fileno(), 2)  # the pipe's last writer closes: the relay reads to its end
        relay.thread.join(timeout=5)
        relay.out.close()
