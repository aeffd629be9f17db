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


def test_the_public_api_is_typed():
    """Every public function, and every public method of `Explainer`, annotates its parameters and its result
    (PEP 561: the package ships py.typed)."""
    import inspect

    import tf_gag

    callables = [getattr(tf_gag, name) for name in ("explain", "attributions", "evaluate", "list_methods",
                                                    "register_method", "load_model", "export_saved_model",
                                                    "reverse_maps", "load_imagenet_s")]
    callables += [tf_gag.sanity.randomization, tf_gag.sanity.perturbation]
    callables += [tf_gag.Explainer.__init__, tf_gag.Explainer.explain, tf_gag.Explainer.attributions,
                  tf_gag.Explainer.explain_batches]
    for function in callables:
        signature = inspect.signature(function)
        missing = [p.name for p in signature.parameters.values()
                   if p.name != "self" and p.annotation is inspect.Parameter.empty]
        assert not missing, f"{function.__qualname__}: parameters without a type hint: {missing}"
        if function.__name__ != "__init__":
            assert signature.return_annotation is not inspect.Signature.empty, function.__qualname__
    assert os.path.exists(os.path.join(ROOT, "tf_gag", "py.typed"))
