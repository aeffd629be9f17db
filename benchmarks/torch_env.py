"""The torch environment (``.venv-torch``, requirements-torch.txt) as seen from tf_gag's side.

Benchmarks never import torch in tf_gag's environment: they run
`benchmarks.torch_side` with the torch environment's python and exchange .npz
files with it.
"""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PYTHON = os.path.join(ROOT, ".venv-torch", "bin", "python")


def add_argument(parser):
    """The ``--torch-python`` option every torch-comparing benchmark takes."""
    parser.add_argument("--torch-python", default=DEFAULT_PYTHON,
                        help="python of the torch environment (benchmarks/README.md)")


def check(parser, python):
    if not os.path.exists(python):
        parser.error(f"--torch-python: {python} does not exist; create the torch environment first")


def run(python, *args):
    """Run ``python -m benchmarks.torch_side ARGS`` from the repository root; exit with its stderr on failure."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([python, "-m", "benchmarks.torch_side", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks.torch_side {args[0]} failed:\n{done.stderr[-3000:]}")


def versions(python, packages=("torch", "torchvision")):
    """{package: version} in the torch environment, for the result stamps."""
    code = "import importlib.metadata as m, sys; print(' '.join(m.version(p) for p in sys.argv[1:]))"
    out = subprocess.run([python, "-c", code, *packages], capture_output=True, text=True).stdout.split()
    return {f"{p} (torch side)": v for p, v in zip(packages, out)}
