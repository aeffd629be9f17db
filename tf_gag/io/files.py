"""Result files written whole or not at all: through a temporary name, then renamed into place."""
import os


def write_atomic(path, write):
    """Call ``write(temporary_path)``, then move the result to ``path``.

    The temporary file sits beside ``path`` (``.<name>.partial``), so the
    rename stays on one file system and is atomic: a run killed midway leaves
    either the old file or the complete new one, never half of it.
    """
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_bytes(path, data):
    """``data`` (bytes) to ``path``, atomically."""

    def write(temporary):
        with open(temporary, "wb") as f:
            f.write(data)

    write_atomic(path, write)
