"""A benchmark run's folder: the settings it began with, one result file per unit and batch with its checksum, resuming.

    OUT/benchmark.json                            the run's settings (model and its hash, data, batch size, ...)
    OUT/scores/<unit key>/batch-00000.npz         one batch's per-image scores and curves, for one unit
    OUT/scores/<unit key>/batch-00000.npz.sha256  that file's SHA-256, a line as ``sha256sum`` writes it
    OUT/tables.json, tables.md, table1.png ...    the tables, computed from the stored files only

Every file is written under a temporary name and renamed when complete
(`tf_gag.io.files`), so a run killed midway leaves each file whole or absent:
resumed, it computes only the batches without a file, and its tables equal an
uninterrupted run's.

A whole file can still be damaged later (a disk or a copy that truncates it
or flips a bit, a machine that stops before its file system wrote the file
out), so every batch file is checked against the SHA-256 of the bytes that
were written, on resuming (`Store.has`) and again when the tables read it
(`Store.load`). A file that fails is computed again, with a warning naming it
and why; the tables are never built from one.

Where the checksum lives, and why: in a sidecar per batch file, written
(atomically) before the file itself, from the bytes held in memory.

* Before, so a crash between the two writes leaves a checksum without its
  file, which is a batch not stored yet (computed as any other, no warning),
  never a good file without its checksum. Every batch file this code writes
  therefore exists only after its checksum is whole: a file that lacks one
  was not written here or lost it, and is computed again, never trusted
  unchecked. A broken file cannot pass either: the checksum is of the exact
  bytes renamed into place.
* Per file, not one manifest for the run: a manifest rewritten after every
  batch costs time growing with the run (units x batches entries, each
  write), and one damaged manifest would condemn every batch; a sidecar is
  written once, and a damaged one condemns its own batch only. In
  ``sha256sum`` format, ``sha256sum -c *.sha256`` in a unit's folder checks
  its files by hand.
"""
import hashlib
import io
import json
import os
import re
import warnings

import numpy as np

from ..io.files import write_atomic, write_bytes

MANIFEST = "benchmark.json"
#: A batch file's checksum sits beside it, under its name with this suffix.
CHECKSUM = ".sha256"


class BrokenBatch(ValueError):
    """A stored batch file that fails its check; the message names the file and why."""

    def __init__(self, path, why):
        super().__init__(f"the stored batch {path} {why}")


class Store:
    """The folder ``out``; without ``resume`` it must be new or empty, with it it must hold a run's settings."""

    def __init__(self, out, resume=False):
        self.out = os.fspath(out)
        self.begun = None  # the settings of the run found in ``out``
        if not os.path.exists(self.out):
            return
        if not os.path.isdir(self.out):
            raise NotADirectoryError(f"out: {self.out} is not a folder")
        if not os.listdir(self.out):
            return
        if not resume:
            raise FileExistsError(f"out: {self.out} is not empty; pass resume=True (CLI: --resume) to continue the "
                                  "run there, or choose a new folder")
        manifest = os.path.join(self.out, MANIFEST)
        if not os.path.exists(manifest):
            raise FileNotFoundError(f"resume: {self.out} holds no benchmark run (no {MANIFEST}); choose a new or "
                                    "empty out folder")
        self.begun = _read_settings(manifest)

    def begin(self, settings):
        """Record ``settings`` (JSON values) for a new run; for a resumed one, refuse settings that differ."""
        if self.begun is not None:
            changed = [k for k in dict.fromkeys([*self.begun, *settings]) if self.begun.get(k) != settings.get(k)]
            if changed:
                detail = "; ".join(f"{k} {self.begun.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
                raise ValueError(f"resume: the run in {self.out} was begun with other settings ({detail}); resume "
                                 "it with its own settings, or choose a new out folder")
            return
        try:
            os.makedirs(self.out, exist_ok=True)
        except OSError as error:
            raise ValueError(f"out: cannot create {self.out} ({error.strerror})") from None
        write_bytes(os.path.join(self.out, MANIFEST), json.dumps(settings, indent=1).encode())

    def path(self, unit, index):
        """Where the unit's batch ``index`` is stored (its checksum: this path + `CHECKSUM`)."""
        return os.path.join(self.out, "scores", unit.key, f"batch-{index:05d}.npz")

    def has(self, unit, index):
        """Whether the batch is stored and passes its check; a file that fails is reported (a warning) and
        counts as missing, so it is computed and written again."""
        try:
            return self._read(unit, index) is not None
        except BrokenBatch as broken:
            warnings.warn(f"{broken}; computing it again", stacklevel=2)
            return False

    def save(self, unit, index, arrays):
        """Store one batch's {name: array} (see `compute.score`): its checksum first, then the file."""
        path = self.path(unit, index)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_bytes(path + CHECKSUM, f"{hashlib.sha256(data).hexdigest()}  {os.path.basename(path)}\n".encode())
        write_bytes(path, data)

    def load(self, unit, index):
        """One stored batch as {name: array}; a ValueError naming the file if it is missing or fails its check."""
        try:
            data = self._read(unit, index)
        except BrokenBatch as broken:
            raise ValueError(f"tables: {broken}, and the tables are not built from it; resume the run "
                             "(resume=True, CLI: --resume) to compute it again") from None
        if data is None:
            raise ValueError(f"tables: the batch file {self.path(unit, index)} is missing; resume the run "
                             "(resume=True, CLI: --resume) to compute it")
        with np.load(io.BytesIO(data)) as stored:
            return dict(stored)

    def _read(self, unit, index):
        """The batch file's bytes if they have the SHA-256 recorded when it was written; None if there is no file.

        Raises `BrokenBatch` when the file cannot be read, has no readable
        checksum, or differs from it (truncated or altered since).
        """
        path = self.path(unit, index)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise BrokenBatch(path, f"cannot be read ({error.strerror})") from None
        name = os.path.basename(path)
        try:
            with open(path + CHECKSUM, "rb") as f:
                line = f.read()
        except FileNotFoundError:
            raise BrokenBatch(path, f"has no checksum ({name + CHECKSUM} is missing)") from None
        except OSError as error:
            raise BrokenBatch(path, f"has no readable checksum ({name + CHECKSUM}: {error.strerror})") from None
        recorded = re.fullmatch(rb"([0-9a-f]{64})  " + re.escape(name.encode()) + rb"\n", line)
        if recorded is None:
            raise BrokenBatch(path, f"has no readable checksum ({name + CHECKSUM} is not its sha256sum line)")
        if hashlib.sha256(data).hexdigest().encode() != recorded.group(1):
            raise BrokenBatch(path, f"does not match the SHA-256 recorded when it was written ({name + CHECKSUM}): "
                              "it was truncated or altered since")
        return data

    def write_tables(self, tables, markdown, figures):
        """tables.json, tables.md and one PNG per figure; returns the file names."""
        write_bytes(os.path.join(self.out, "tables.json"), json.dumps(tables, indent=1).encode())
        write_bytes(os.path.join(self.out, "tables.md"), (markdown.rstrip() + "\n").encode())
        for name, figure in figures.items():
            write_atomic(os.path.join(self.out, f"{name}.png"), lambda p, f=figure: f.savefig(p, format="png",
                                                                                                 dpi=110))
        return ["tables.json", "tables.md", *(f"{name}.png" for name in figures)]


def _read_settings(path):
    """The settings recorded in ``path`` (benchmark.json), or a ValueError naming it and what is wrong."""
    try:
        with open(path, "rb") as f:
            settings = json.loads(f.read())
    except OSError as error:
        why = f"cannot be read ({error.strerror})"
    except json.JSONDecodeError as error:
        why = f"is not valid JSON ({error})"
    except UnicodeDecodeError:
        why = "is not UTF-8 text"
    else:
        if isinstance(settings, dict):
            return settings
        why = f"is not a JSON object of settings (it holds a {type(settings).__name__})"
    raise ValueError(f"resume: {path} {why}, so the run there cannot be resumed; choose a new out folder")
