"""The ``q2c`` command run as a user runs it: a process of its own, with the test stack's
settings (the environment ``conftest`` exports), its output captured."""
import os
import subprocess
import sys


def q2c(*args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """``q2c ARGS``; ``env`` adds or overrides settings. Rich renders at 220 columns, so a table's
    cells are not wrapped where a test reads them."""
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "220", **env}, timeout=timeout)
