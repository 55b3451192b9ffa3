"""Start-up chatter of a backend's C++ runtime kept out of the logs (replayed on error)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_muted() -> Iterator[None]:
    """Send fd 2 to a scratch file while the block runs; replay it if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            scratch.seek(0)
            sys.stderr.write(scratch.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def set_keras_backend(name: str) -> None:
    """Point ``KERAS_BACKEND`` at ``name`` unless Keras is already loaded (then it is fixed)."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = name
