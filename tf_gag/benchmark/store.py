"""A benchmark run's folder: the settings it began with, one result file per unit and batch, resuming.

    OUT/benchmark.json                        the run's settings (model and its hash, data, batch size, ...)
    OUT/scores/<unit key>/batch-00000.npz     one batch's per-image scores and curves, for one unit
    OUT/tables.json, tables.md, table1.png ... the tables, computed from the stored files only

Every file is written under a temporary name and renamed when complete
(`tf_gag.io.files`), so a batch file that exists is whole: a run killed midway
and resumed computes only the batches without a file, and its tables equal an
uninterrupted run's.
"""
import json
import os
import zipfile

import numpy as np

from ..io.files import write_atomic, write_bytes

MANIFEST = "benchmark.json"


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
        with open(manifest) as f:
            self.begun = json.load(f)

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
        """Where the unit's batch ``index`` is stored."""
        return os.path.join(self.out, "scores", unit.key, f"batch-{index:05d}.npz")

    def has(self, unit, index):
        """Whether the batch is stored whole (a file that cannot be read counts as missing and is written again)."""
        try:
            with np.load(self.path(unit, index)) as stored:
                return "names" in stored.files
        except (OSError, ValueError, zipfile.BadZipFile):
            return False

    def save(self, unit, index, arrays):
        """Store one batch's {name: array} (see `compute.score`)."""
        path = self.path(unit, index)
        os.makedirs(os.path.dirname(path), exist_ok=True)

        def write(temporary):
            with open(temporary, "wb") as f:
                np.savez(f, **arrays)

        write_atomic(path, write)

    def load(self, unit, index):
        """One stored batch as {name: array}."""
        with np.load(self.path(unit, index)) as stored:
            return dict(stored)

    def write_tables(self, tables, markdown, figures):
        """tables.json, tables.md and one PNG per figure; returns the file names."""
        write_bytes(os.path.join(self.out, "tables.json"), json.dumps(tables, indent=1).encode())
        write_bytes(os.path.join(self.out, "tables.md"), (markdown.rstrip() + "\n").encode())
        for name, figure in figures.items():
            write_atomic(os.path.join(self.out, f"{name}.png"), lambda p, f=figure: f.savefig(p, format="png",
                                                                                                 dpi=110))
        return ["tables.json", "tables.md", *(f"{name}.png" for name in figures)]
