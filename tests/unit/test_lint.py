"""The code stays clean under the project's ruff configuration (.ruff.toml: line length 120)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ruff():
    beside = os.path.join(os.path.dirname(sys.executable), "ruff")
    return beside if os.path.exists(beside) else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed (it is in the test extra)")
def test_ruff_check_is_clean():
    done = subprocess.run([_ruff(), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
