"""TensorFlow's start-up chatter, hidden unless ``-v``: the lines absl writes to stderr before TensorFlow reads
``TF_CPP_MIN_LOG_LEVEL`` (the CUDA probe on a machine without a GPU, oneDNN's notice, absl's own preamble, tf.data's
notice of an op attribute newer than its registry) — from a suite's cell processes (``Relay`` on their stderr pipe)
and from the CLI's own process (``hidden_chatter``). Fatal lines and errors other than the CUDA probe's pass; a cell or
command that fails shows what was hidden."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections import deque

_ABSL = r"\d{4} [\d:.]+ +\d+ "
CHATTER = re.compile(rf"[IW]{_ABSL}[\w.]+:\d+\] |E{_ABSL}cuda\w*\.cc:\d+\] "
                     r"|WARNING: All log messages before absl::InitializeLog"
                     # tf.data's graph names an attribute this op registry predates (the augmentation's map): benign
                     rf"|E{_ABSL}node_def_util\.cc:\d+\] NodeDef mentions attribute \w+ which is not in the op")
#: the terminal while ``hidden_chatter`` holds file descriptor 2: what a ``Relay`` writes must not pass the filter
#: twice (a failed cell's hidden lines would be hidden again)
_terminal = None


class Relay:
    """``stream`` relayed line by line to ``out`` (the terminal) without ``CHATTER``; the last hidden lines are kept
    for a process that fails or dies (``show``). A write that fails drops the line and goes on reading, so the
    writer never blocks on a full pipe."""

    def __init__(self, stream, out=None):
        self.out = out
        self.hidden: deque[str] = deque(maxlen=50)
        self.failed = False  # set by the relayed command: ``hidden_chatter`` then shows the hidden lines at its end
        self.thread = threading.Thread(target=self._relay, args=(stream,), daemon=True)
        self.thread.start()

    def _write(self, lines) -> None:
        out = self.out or _terminal or sys.stderr
        with contextlib.suppress(OSError, ValueError):
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
    directly, below Python's ``sys.stderr``. Everything else reaches the terminal as before (progress bars' carriage
    returns included). A command that fails sets the relay's ``failed``: what was hidden is shown at the end, once
    the relay has read everything."""
    global _terminal
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", errors="backslashreplace")
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    relay = Relay(os.fdopen(read, errors="replace", newline=""), terminal)
    _terminal = terminal
    try:
        yield relay
    finally:
        sys.stderr.flush()
        os.dup2(terminal.fileno(), 2)  # the pipe's last writer here closes: the relay reads to its end
        relay.thread.join(timeout=5)
        if relay.failed:
            relay.show()
        _terminal = None
        if not relay.thread.is_alive():  # else a child still writes to the pipe: the relay keeps the stream
            terminal.close()
