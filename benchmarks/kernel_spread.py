"""How far the demo's table and the paper's Tables 1-3 move between CPU kernel sets.

TensorFlow picks its CPU kernels by instruction set (oneDNN's at the widest ISA
the CPU has, on by default only on CPUs with AVX-512 VNNI/BF16 or AMX; Eigen's
with oneDNN off), and each set rounds float32 differently. RCAP, DAUC, IAUC
and GAG's guide threshold the maps, so a rounding change that swaps two
near-tied pixels moves a score: this measures by how much, on the real model
and photos. Each setting runs in its own processes:

* the README's demo (``python -m tf_gag.tools.demo``): its printed table;
* ``tf-gag benchmark`` on the photos of ``benchmarks.tables`` (the same code
  and data as that benchmark, written to the work folder, not to results/).

A setting whose demo maps equal an earlier setting's bit for bit runs the same
kernels, so its tables are that setting's (noted, not recomputed). Writes
``results/kernel_spread.{json,md}``: every value under every setting and its
spread (max - min), per table. About 12 minutes per distinct kernel set on 2
cores.

    python -m benchmarks.kernel_spread [--work DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np

from benchmarks import report

#: (name, environment) of each kernel setting: the defaults, then the issue's two others, then oneDNN at AVX.
SETTINGS = (
    ("defaults", {}),
    ("oneDNN off", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("oneDNN on, AVX2", {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("oneDNN on, AVX", {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX"}),
)
METRICS = ("rcap", "dauc", "iauc")


def run_setting(work, name, environment, photos):
    """Run the demo and (unless ``photos`` is None) tf-gag benchmark under ``environment``; their output folder."""
    folder = os.path.join(work, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **environment}
    for key in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA"):
        if key not in environment:
            env.pop(key, None)
    demo = _run([sys.executable, "-m", "tf_gag.tools.demo", "--out", os.path.join(folder, "demo"), "--quiet"], env)
    for stream in ("stdout", "stderr"):  # stderr: what a user sees besides the table (warnings, TF's lines)
        with open(os.path.join(folder, "demo", f"{stream}.txt"), "w") as f:
            f.write(getattr(demo, stream))
    if photos is not None:
        _run([sys.executable, "-m", "tf_gag.tools.cli", "benchmark", photos, "--model", "efficientnet_lite0",
              "--out", os.path.join(folder, "run"), "--quiet"], env)
    return folder


def _run(command, env):
    """``command``'s completed process; its exit status and the end of its stderr when it fails."""
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[1:4])} failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    return done


def demo_table(folder):
    """{method title: {metric: value}} as the demo printed them (four decimals)."""
    from tf_gag.tools.demo import METHODS

    with open(os.path.join(folder, "demo", "stdout.txt")) as f:
        text = f.read()
    table = {}
    for title in METHODS.values():
        found = re.search(rf"^{re.escape(title)}\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s", text, re.MULTILINE)
        table[title] = dict(zip(METRICS, map(float, found.groups())))
    return table


def same_maps(a, b):
    """Whether two demo runs' maps are equal bit for bit (then their kernels are the same)."""
    with np.load(os.path.join(a, "demo", "maps.npz")) as x, np.load(os.path.join(b, "demo", "maps.npz")) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def spreads(values):
    """{table: {row: {metric: (values by setting, max - min)}}} from {setting: {table: {row: {metric: v}}}}."""
    first = next(iter(values.values()))
    out = {}
    for table, rows in first.items():
        out[table] = {}
        for row, metrics in rows.items():
            out[table][row] = {}
            for metric in metrics:
                seen = [values[s][table][row][metric] for s in values]
                out[table][row][metric] = {"values": seen, "spread": max(seen) - min(seen)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernel_spread", description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/tf_gag_kernel_spread", help="where each setting's runs are kept")
    args = parser.parse_args(argv)
    from benchmarks.tables import write_photos

    os.makedirs(args.work, exist_ok=True)
    photos = write_photos(os.path.join(args.work, "photos"))
    folders, same_as = {}, {}
    for name, environment in SETTINGS:
        print(f"== {name}", flush=True)
        folder = run_setting(args.work, name, environment, None)
        twin = next((other for other, seen in folders.items() if same_maps(seen, folder)), None)
        if twin is None:
            run_setting(args.work, name, environment, photos)
        else:
            same_as[name] = twin
        folders[name] = folder

    values = {}
    for name, folder in folders.items():
        with open(os.path.join(folders[same_as.get(name, name)], "run", "tables.json")) as f:
            tables = json.load(f)
        values[name] = {"demo": demo_table(folder), **{t: tables[t] for t in ("table1", "table2", "table3")}}
    spread = spreads(values)
    settings = list(folders)
    lines = ["Each value under each kernel setting, and its spread (max - min over the settings).", ""]
    if same_as:
        lines += [f"- {name}: maps bit-identical to {twin}'s (the same kernels), so the same tables."
                  for name, twin in same_as.items()] + [""]
    for table, rows in spread.items():
        worst = max(cell["spread"] for row in rows.values() for cell in row.values())
        lines += [f"## {table} (largest spread {worst:.4f})", ""]
        header = ["row", "metric", *settings, "spread"]
        body = [[row, metric, *(f"{v:.4f}" for v in cell["values"]), f"{cell['spread']:.4f}"]
                for row, metrics in rows.items() for metric, cell in metrics.items()]
        lines += [report.markdown_table(header, body), ""]
    text = "\n".join(lines)
    print(text)
    report.write("kernel_spread", {"settings": dict(SETTINGS), "same_kernels": same_as, "spread": spread}, text)


if __name__ == "__main__":
    main()
