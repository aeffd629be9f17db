"""Where benchmark results go and what each result file says about its run.

Every benchmark writes ``benchmarks/results/<name>.json`` (the numbers, with the
machine, the package versions and the command that produced them) and
``<name>.md`` (the same as markdown tables), so each figure in RESULTS.md can
be traced to a command.
"""
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import sys

from tf_gag.benchmark.tables import markdown_table as markdown_table  # the one Markdown table writer, re-exported

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine():
    """The machine and Python that ran the benchmark."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def versions(packages=("tensorflow", "keras", "numpy", "onnx", "onnxruntime", "onnx2tf", "torch", "torchvision")):
    """Installed versions of ``packages`` (absent ones left out)."""
    found = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def command():
    """The command line that is running, as a user would type it."""
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), "-m", _module_name(), *sys.argv[1:]])


def _module_name():
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else os.path.basename(sys.argv[0])


def write(name, data, markdown, extra_versions=None):
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns their paths."""
    os.makedirs(RESULTS, exist_ok=True)
    run = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": command(),
        "machine": machine(),
        "versions": {**versions(), **(extra_versions or {})},
    }
    json_path, md_path = os.path.join(RESULTS, f"{name}.json"), os.path.join(RESULTS, f"{name}.md")
    with open(json_path, "w") as f:
        json.dump({"run": run, **data}, f, indent=1)
    header = (
        f"<!-- written by `{run['command']}` on {run['date']}; {run['machine']['cpus']} CPUs, "
        f"{run['machine']['platform']}; {', '.join(f'{k} {v}' for k, v in run['versions'].items())} -->\n\n"
    )
    with open(md_path, "w") as f:
        f.write(header + markdown.rstrip() + "\n")
    return json_path, md_path
