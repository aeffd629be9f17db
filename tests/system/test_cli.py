"""The tf-gag command, run as a subprocess: outputs checked against the library on the same pixels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tf_gag
from tf_gag.tools import cli

TF_GAG = os.path.join(os.path.dirname(sys.executable), "tf-gag")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(*args, cwd=None):
    return subprocess.run([TF_GAG, *args], capture_output=True, text=True, env=ENV, cwd=cwd)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from test_serving import small_cnn

    path = str(tmp_path_factory.mktemp("cli") / "small.keras")
    small_cnn().save(path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two 24 x 24 photos (already the model's size: decoding gives these pixels exactly) and two bad files."""
    from tf_gag import assets

    folder = tmp_path_factory.mktemp("photos")
    pixels = np.round(assets.photos(("chelsea", "coffee"), size=24)).astype(np.uint8)
    Image.fromarray(pixels[0]).save(folder / "a_cat.png")
    Image.fromarray(pixels[1]).save(folder / "b_cup.bmp")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("hello")
    return str(folder), pixels.astype(np.float32)


def test_explain_writes_maps_equal_to_the_library(model_path, folder, tmp_path):
    path, pixels = folder
    out = run("explain", path, "--model", model_path, "--method", "sg", "--option", "n_samples=4", "--out",
              str(tmp_path / "maps"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "skipped" in out.stderr and "broken.jpg" in out.stderr and "notes.txt" in out.stderr
    assert "2 file(s) skipped, 2 image(s) read" in out.stderr
    assert sorted(os.listdir(tmp_path / "maps")) == ["a_cat.npy", "a_cat.png", "b_cup.npy", "b_cup.png"]
    expected = tf_gag.explain(tf_gag.load_model(model_path), pixels, "sg", n_samples=4)
    np.testing.assert_allclose(np.load(tmp_path / "maps" / "a_cat.npy"), expected[0], atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "maps" / "b_cup.npy"), expected[1], atol=1e-6)


def test_evaluate_writes_json_and_csv(model_path, folder, tmp_path):
    path, pixels = folder
    out = run("evaluate", path, "--model", model_path, "--method", "vg", "--targets", "1", "--out",
              str(tmp_path / "scores"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rcap" in out.stdout
    report = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    expected = tf_gag.evaluate(tf_gag.load_model(model_path), pixels, "vg", 1)
    np.testing.assert_allclose(report["scores"]["rcap"], expected["rcap"], atol=1e-6)
    np.testing.assert_allclose(report["scores"]["dauc"], expected["dauc"], atol=1e-6)
    assert report["targets"] == [1, 1]
    lines = (tmp_path / "scores" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "image,target,rcap,dauc,iauc" and len(lines) == 3


def test_user_errors_are_one_line_with_status_1(model_path, folder, tmp_path):
    path, _ = folder
    failed = run("explain", path, "--model", model_path, "--out", str(tmp_path / "m"), "--on-error", "fail", "--quiet")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("tf-gag explain: images: cannot read")
    assert not os.path.exists(tmp_path / "m" / "a_cat.npy")  # failed before writing anything
    missing = run("explain", path, "--model", str(tmp_path / "none.keras"), "--out", str(tmp_path / "m"))
    assert missing.returncode == 1 and "none.keras does not exist" in missing.stderr
    (tmp_path / "file").write_text("")
    blocked = run("explain", path, "--model", model_path, "--out", str(tmp_path / "file"))
    assert blocked.returncode == 1 and "--out: cannot create" in blocked.stderr


def test_export_creates_serving_folders_and_refuses_an_existing_path_unless_overwrite(model_path, tmp_path):
    target = "serving/1"  # TF Serving's model/<version> layout, in an empty folder
    done = run("export", model_path, target, "--method", "vg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.listdir(tmp_path) == ["serving"] and os.listdir(tmp_path / "serving") == ["1"]
    assert os.path.exists(tmp_path / "serving" / "1" / "saved_model.pb")
    again = run("export", model_path, target, "--method", "vg", cwd=tmp_path)
    assert again.returncode == 1 and "already exists; pass overwrite=True (CLI: --overwrite)" in again.stderr
    assert run("export", model_path, target, "--method", "vg", "--overwrite", cwd=tmp_path).returncode == 0


def test_sanity_writes_the_library_result_and_refuses_noise_that_changes_predictions(model_path, folder, tmp_path):
    path, pixels = folder
    out = run("sanity", path, "--model", model_path, "--methods", "vg,gb", "--layers", "2", "--out",
              str(tmp_path / "sanity"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "sanity")) == ["sanity.json", "sanity.md", "sanity.png"]
    report = json.loads((tmp_path / "sanity" / "sanity.json").read_text())
    expected = tf_gag.sanity.randomization(tf_gag.load_model(model_path), pixels, ["vg", "gb"], layers=2)
    assert report["check"] == "cascading" and report["steps"] == expected.steps
    for measure in tf_gag.sanity.SIMILARITIES:
        for method in ("vg", "gb"):
            np.testing.assert_allclose(report["scores"][measure][method], expected.scores[measure][method], atol=1e-6)
    assert "| cascading step | vg | gb |" in (tmp_path / "sanity" / "sanity.md").read_text()
    noisy = run("sanity", path, "--model", model_path, "--methods", "vg", "--check", "perturbation", "--noise", "50",
                "--out", str(tmp_path / "noisy"))
    assert noisy.returncode == 1 and "Traceback" not in noisy.stderr
    assert "tf-gag sanity: noise: level 50.0 changes the predicted class" in noisy.stderr


@pytest.mark.parametrize("command", ["explain", "evaluate", "sanity", "benchmark", "convert", "export", "methods"])
def test_help_and_usage(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and "usage: tf-gag " + command in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--no-such-flag"])
    assert done.value.code == 2


def test_no_tensorflow_log_lines_unless_verbose_and_imports_leave_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([TF_GAG, "methods"], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]
    assert subprocess.run([TF_GAG, "--verbose", "methods"], capture_output=True, text=True, env=env).returncode == 0
    probe = ("import os, sys; import tf_gag; lazy = 'tensorflow' not in sys.modules; tf_gag.list_methods(); "
             "print(lazy, 'TF_CPP_MIN_LOG_LEVEL' in os.environ)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]


def test_methods_lists_every_method(capsys):
    assert cli.main(["methods", "--json"]) == 0
    assert json.loads(capsys.readouterr().out).keys() == tf_gag.list_methods().keys()


@pytest.mark.filterwarnings("ignore:precision:UserWarning")
def test_precision_reaches_the_library_and_is_refused_by_name(model_path, folder, tmp_path):
    path, pixels = folder
    out = run("explain", path, "--model", model_path, "--method", "vg", "--precision", "bfloat16", "--out",
              str(tmp_path / "maps"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    expected = tf_gag.explain(tf_gag.load_model(model_path), pixels, "vg", precision="bfloat16")
    np.testing.assert_allclose(np.load(tmp_path / "maps" / "a_cat.npy"), expected[0], atol=1e-6)
    out = run("evaluate", path, "--model", model_path, "--method", "vg", "--precision", "bfloat16", "--out",
              str(tmp_path / "scores"), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "scores" / "metrics.json").read_text())["precision"] == "bfloat16"
    out = run("explain", path, "--model", model_path, "--precision", "half", "--out", str(tmp_path / "x"))
    assert out.returncode == 2 and "--precision: invalid choice: 'half'" in out.stderr
    out = run("explain", path, "--model", model_path, "--method", "lrp_epsilon", "--precision", "float16", "--out",
              str(tmp_path / "y"), "--quiet")
    assert out.returncode == 1 and "precision: lrp_epsilon" in out.stderr
