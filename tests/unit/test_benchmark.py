"""tf_gag.benchmark's parts: the tables' plan, the run folder's refusals and resuming, and tables from stored
batches equal to `tf_gag.evaluate` over all the images at once."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from PIL import Image

import tf_gag
from tf_gag.benchmark import plan, store
from tf_gag.io.files import write_bytes
from tf_gag.tools import cli


def test_plan_holds_the_papers_tables():
    units = plan.plan(plan.resolve_methods())
    # Table 1's 9 quantiles; Table 2's 12 methods of the paper's comparison, 3 IDGI and 5 more CAM rows, Deconvnet
    # and 5 LRP composites, 5 reversed; Table 3's 5 variants of 5 families
    assert len(units) == 9 + 12 + 3 + 5 + 6 + 5 + 5 * 5 and len({u.key for u in units}) == len(units)
    assert [u.row for u in units if u.table == 1] == ["0", "15", "25", "35", "45", "55", "65", "75", "85"]
    reversed_ = {u.method: u.options["reverse"] for u in units if u.row.endswith("^R")}
    assert reversed_ == plan.REVERSE
    subset = plan.plan(plan.resolve_methods("sg, gag"))  # aliases, any order: Table 2's order
    assert [u.label for u in subset if u.table == 2] == ["Table 2 GAG", "Table 2 SG", "Table 2 SG^R"]
    assert [u.key for u in subset if u.table == 3] == ["table3_smoothgrad_positive", "table3_smoothgrad_negative",
                                                       "table3_smoothgrad_absolute", "table3_smoothgrad_guide",
                                                       "table3_smoothgrad_guide_absolute"]
    assert not [u for u in plan.plan(["vanilla_gradient"]) if u.table != 2]
    with pytest.raises(ValueError, match="methods: 'ag' is not a method of the paper's tables"):
        plan.resolve_methods("ag")
    with pytest.raises(ValueError, match="method: unknown method 'nope'"):
        plan.resolve_methods(["nope"])
    with pytest.raises(ValueError, match=r"metrics: expected names from .*, got \['rcap', 'auc'\]"):
        plan.resolve_metrics("rcap,auc")


def test_store_refuses_a_used_folder_and_other_settings(tmp_path):
    unit = plan.Unit("table2_vanilla_gradient", 2, "VG", "vanilla_gradient")
    run = store.Store(tmp_path / "run")
    run.begin({"seed": 0, "methods": ["vanilla_gradient"]})
    run.save(unit, 3, {"names": np.array(["a"]), "rcap": np.array([0.5])})
    assert run.has(unit, 3) and not run.has(unit, 2)
    assert run.load(unit, 3)["rcap"].tolist() == [0.5] and sorted(os.listdir(os.path.dirname(run.path(unit, 3)))) == [
        "batch-00003.npz", "batch-00003.npz.sha256"]  # no temporary file left
    with pytest.raises(FileExistsError, match="is not empty; pass resume=True"):
        store.Store(tmp_path / "run")
    again = store.Store(tmp_path / "run", resume=True)
    again.begin({"seed": 0, "methods": ["vanilla_gradient"]})
    with pytest.raises(ValueError, match=r"resume: .* other settings \(seed 0 then, 1 now\)"):
        store.Store(tmp_path / "run", resume=True).begin({"seed": 1, "methods": ["vanilla_gradient"]})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="holds no benchmark run"):
        store.Store(tmp_path / "other", resume=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="out: .* is not a folder"):
        store.Store(tmp_path / "file")


def test_store_checks_every_batch_file_against_its_recorded_sha256(tmp_path, monkeypatch):
    """Each kind of damage is reported by path and reason and counts as missing; tables never read it. A run killed
    between a batch's two writes leaves a batch that is simply not stored."""
    unit = plan.Unit("table2_vanilla_gradient", 2, "VG", "vanilla_gradient")
    run = store.Store(tmp_path / "run")
    run.begin({"seed": 0})
    rcap = np.array([0.25, 0.5])
    for index in [*range(5), 6]:
        run.save(unit, index, {"names": np.array(["a", "b"]), "rcap": rcap})
    folder = os.path.dirname(run.path(unit, 0))
    written = open(run.path(unit, 0), "rb").read()
    assert open(run.path(unit, 0) + ".sha256").read() == f"{hashlib.sha256(written).hexdigest()}  batch-00000.npz\n"
    if shutil.which("sha256sum"):  # the sidecars are sha256sum's own lines: the tool checks every file
        sidecars = sorted(name for name in os.listdir(folder) if name.endswith(".sha256"))
        checked = subprocess.run(["sha256sum", "-c", *sidecars], cwd=folder, capture_output=True, text=True)
        assert checked.returncode == 0 and checked.stdout.count(": OK") == 6, checked.stdout + checked.stderr

    class Killed(BaseException):
        """The process ends here."""

    written_files = []

    def killed_after_one_write(path, data):
        if written_files:
            raise Killed
        written_files.append(os.path.basename(path))
        write_bytes(path, data)

    monkeypatch.setattr(store, "write_bytes", killed_after_one_write)
    with pytest.raises(Killed):
        run.save(unit, 5, {"names": np.array(["a", "b"]), "rcap": rcap})
    monkeypatch.undo()
    assert written_files == ["batch-00005.npz.sha256"] and not os.path.exists(run.path(unit, 5))

    with open(run.path(unit, 0), "wb") as f:
        f.write(written[: len(written) // 2])
    flipped = bytearray(written)
    flipped[flipped.index(rcap.tobytes())] ^= 1  # one bit of the first score
    with open(run.path(unit, 1), "wb") as f:
        f.write(flipped)
    os.remove(run.path(unit, 2) + ".sha256")
    with open(run.path(unit, 3) + ".sha256", "w") as f:
        f.write("0" * 64 + "\n")
    os.remove(run.path(unit, 4))
    os.mkdir(run.path(unit, 4))
    mismatch = "does not match the SHA-256 recorded when it was written (batch-0000{}.npz.sha256): it was truncated " \
               "or altered since"
    broken = {0: mismatch.format(0), 1: mismatch.format(1), 2: "has no checksum (batch-00002.npz.sha256 is missing)",
              3: "has no readable checksum (batch-00003.npz.sha256 is not its sha256sum line)",
              4: "cannot be read (Is a directory)"}
    for index, why in broken.items():
        with pytest.warns(UserWarning) as caught:
            assert not run.has(unit, index)
        assert [str(w.message) for w in caught] == [f"the stored batch {run.path(unit, index)} {why}; computing it "
                                                    "again"]
        with pytest.raises(ValueError, match=re.escape(f"tables: the stored batch {run.path(unit, index)} {why}, "
                                                       "and the tables are not built from it; resume the run")):
            run.load(unit, index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not run.has(unit, 5) and run.has(unit, 6)
        assert run.load(unit, 6)["rcap"].tolist() == [0.25, 0.5]
        with pytest.raises(ValueError, match=re.escape(f"tables: the batch file {run.path(unit, 5)} is missing")):
            run.load(unit, 5)
        run.save(unit, 0, {"names": np.array(["a", "b"]), "rcap": rcap})  # computed again: whole and checked
        assert run.has(unit, 0) and run.load(unit, 0)["rcap"].tolist() == [0.25, 0.5]


@pytest.fixture
def folder(tmp_path):
    """Three 32 x 32 photos (the model's size: fitting leaves them alone), a mask for one, a label for one."""
    import keras

    from tf_gag import assets

    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "small.keras")
    pixels = np.round(assets.photos(("chelsea", "coffee", "rocket"), size=32)).astype(np.uint8)
    os.makedirs(tmp_path / "data" / "images")
    os.makedirs(tmp_path / "data" / "masks")
    for name, image in zip(("a", "b", "c"), pixels):
        Image.fromarray(image).save(tmp_path / "data" / "images" / f"{name}.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 4:28] = 255
    Image.fromarray(mask).save(tmp_path / "data" / "masks" / "b.png")
    (tmp_path / "data" / "labels.json").write_text(json.dumps({"c": 4}))
    return str(tmp_path / "data"), str(tmp_path / "small.keras"), pixels.astype(np.float32), mask / 255.0


def _evaluated(folder, method, batch_size, **options):
    """The folder's targets, and the dataset values of ``method`` on all its images at once: `tf_gag.explain` then
    `tf_gag.evaluate` (the mask metrics on b, the one image with a mask), no benchmark code involved."""
    _, path, images, mask = folder
    model = tf_gag.load_model(path)
    targets = model.predict_logits(images, 3).argmax(axis=1)
    targets[2] = 4  # c's label
    maps = tf_gag.explain(model, images, method, targets, batch_size=batch_size, **options)
    curves = tf_gag.evaluate(model, images, maps, targets, batch_size=batch_size).means()
    masked = tf_gag.evaluate(model, images[1:2], maps[1:2], targets[1:2], mask[None],
                             metrics=("sqrt_mae", "log_cosh_dice")).means()
    return targets, {**masked, **curves}


def test_tables_from_stored_batches_equal_evaluate_on_all_images(folder, tmp_path):
    data, path, _, _ = folder
    tables = tf_gag.benchmark.run(data, path, tmp_path / "out", batch_size=2, methods="gb", progress=False)
    targets, original = _evaluated(folder, "gb", 2)
    assert tables["images"] == ["a", "b", "c"] and tables["targets"] == targets.tolist()
    assert tables["masked"] == [False, True, False] and tables["mask_metrics"] == ["sqrt_mae", "log_cosh_dice"]
    values = lambda **options: _evaluated(folder, "gb", 2, **options)[1]

    assert tables["table2"]["GB"] == original  # exactly: the same batches, the same arithmetic
    assert tables["table2"]["GB^R"] == values(reverse=plan.REVERSE["guided_backprop"])
    guided = values(variant="GA")
    assert tables["table3"]["GA"] == {k: guided[k] / original[k] for k in original}
    assert list(tables["table3"]) == list(plan.VARIANTS) and not tables["table1"]
    with open(tmp_path / "out" / "tables.json") as f:
        assert json.load(f) == tables
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "## Table 2: methods (√MAE and LcDice on the 1 masked images; RCAP, DAUC, IAUC on all 3)" in text
    assert f"| GB | {original['sqrt_mae']:.4f} | " in text and "## Table 1" not in text
    assert sorted(f for f in os.listdir(tmp_path / "out") if f.endswith(".png")) == ["table2.png", "table3.png"]


def test_resume_computes_a_truncated_and_a_bit_flipped_batch_again(folder, tmp_path):
    """Both are named in a warning and computed again, the intact batch is left alone, and the tables equal an
    uninterrupted run's and `tf_gag.evaluate`'s on all the images."""
    data, path, _, _ = folder
    run = lambda out, **options: tf_gag.benchmark.run(data, path, tmp_path / out, batch_size=1, methods="vg",
                                                      progress=False, **options)
    whole = run("whole")
    run("damaged")
    scores = tmp_path / "damaged" / "scores" / "table2_vanilla_gradient"
    truncated, intact, flipped = (scores / f"batch-0000{i}.npz" for i in range(3))
    truncated.write_bytes(truncated.read_bytes()[:-40])  # its end: the zip's directory
    with np.load(flipped) as stored:
        rcap = stored["rcap"].tobytes()
    content = bytearray(flipped.read_bytes())
    content[content.index(rcap)] ^= 1  # one bit of its RCAP
    flipped.write_bytes(bytes(content))
    untouched = os.stat(intact)

    with pytest.warns(UserWarning) as caught:
        resumed = run("damaged", resume=True)
    assert [str(w.message) for w in caught if "stored batch" in str(w.message)] == [
        f"the stored batch {file} does not match the SHA-256 recorded when it was written ({file.name}.sha256): it "
        "was truncated or altered since; computing it again" for file in (truncated, flipped)]
    assert (os.stat(intact).st_ino, os.stat(intact).st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)
    for file in (truncated, intact, flipped):
        assert (scores / f"{file.name}.sha256").read_text().split()[0] == hashlib.sha256(file.read_bytes()).hexdigest()
        with np.load(file) as again, np.load(tmp_path / "whole" / file.relative_to(tmp_path / "damaged")) as first:
            assert sorted(again.files) == sorted(first.files)
            for name in first.files:
                np.testing.assert_array_equal(again[name], first[name], err_msg=f"{file.name}: {name}")
    assert resumed == whole
    assert (tmp_path / "damaged" / "tables.json").read_bytes() == (tmp_path / "whole" / "tables.json").read_bytes()
    targets, expected = _evaluated(folder, "vg", 1)
    assert resumed["targets"] == targets.tolist() and resumed["table2"]["VG"] == pytest.approx(expected, rel=1e-6)


def test_a_corrupted_benchmark_json_is_named(folder, tmp_path, capsys, monkeypatch):
    """Read on --resume: the error names the file and what is wrong, with no JSON traceback; the CLI's is its
    one line, exit status 1."""
    data, path, _, _ = folder
    out = tmp_path / "out"
    tf_gag.benchmark.run(data, path, out, batch_size=2, methods="vg", progress=False)
    settings = out / "benchmark.json"
    text = settings.read_text()
    resume = lambda: tf_gag.benchmark.run(data, path, out, batch_size=2, methods="vg", resume=True, progress=False)
    damage = {text[: len(text) // 2].encode(): r"is not valid JSON \(.+: line \d+ column \d+ \(char \d+\)\)",
              b"\x80" + text.encode(): r"is not UTF-8 text", b"[1, 2]": r"is not a JSON object of settings \(it "
              r"holds a list\)", b"": r"is not valid JSON \(Expecting value: line 1 column 1 \(char 0\)\)"}
    for content, what in damage.items():
        settings.write_bytes(content)
        with pytest.raises(ValueError, match=rf"^resume: {re.escape(str(settings))} {what}, so the run there cannot be "
                                             "resumed; choose a new out folder$") as error:
            resume()
        assert error.value.__context__ is None and error.value.__cause__ is None  # not raised from the JSON error
    settings.unlink()
    settings.mkdir()
    with pytest.raises(ValueError, match=rf"^resume: {re.escape(str(settings))} cannot be read \(Is a directory\)"):
        resume()
    settings.rmdir()

    settings.write_text(text[:-2])
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # as the command sets it, undone after the test
    status = cli.main(["benchmark", data, "--model", path, "--out", str(out), "--methods", "vg", "--batch-size", "2",
                       "--resume", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(lines) == 1, lines
    assert re.fullmatch(rf"tf-gag benchmark: resume: {re.escape(str(settings))} is not valid JSON \(.*\), so the run "
                        "there cannot be resumed; choose a new out folder", lines[0]), lines


def test_resume_refuses_a_model_replaced_at_the_same_path(folder, tmp_path):
    import keras

    data, path, _, _ = folder
    tf_gag.benchmark.run(data, path, tmp_path / "out", batch_size=2, methods="vg", progress=False)
    before = json.loads((tmp_path / "out" / "benchmark.json").read_text())["model_sha256"]
    assert before == hashlib.sha256(open(path, "rb").read()).hexdigest()
    model = keras.models.load_model(path)
    model.set_weights([w + 1 for w in model.get_weights()])
    model.save(path)
    with pytest.raises(ValueError, match=rf"other settings \(model_sha256 '{before}' then, '[0-9a-f]{{64}}' now\)"):
        tf_gag.benchmark.run(data, path, tmp_path / "out", batch_size=2, methods="vg",
                             resume=True, progress=False)


def test_folder_errors(folder, tmp_path):
    data, path, _, _ = folder
    (tmp_path / "data" / "masks" / "z.png").write_bytes((tmp_path / "data" / "masks" / "b.png").read_bytes())
    with pytest.raises(ValueError, match="z.png has no image named 'z'"):
        tf_gag.benchmark.run(data, path, tmp_path / "o", methods="vg", progress=False)
    os.remove(tmp_path / "data" / "masks" / "z.png")
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(tmp_path / "data" / "masks" / "a.png")
    with pytest.raises(ValueError, match="the mask .*a.png is 32x16 pixels but its image .*a.png is 32x32"):
        tf_gag.benchmark.run(data, path, tmp_path / "o1", methods="vg", progress=False)  # on reading its batch
    os.remove(tmp_path / "data" / "masks" / "a.png")
    (tmp_path / "data" / "labels.json").write_text(json.dumps({"d": 1}))
    with pytest.raises(ValueError, match="labels 'd', which is not an image of the folder"):
        tf_gag.benchmark.run(data, path, tmp_path / "o", methods="vg", progress=False)
    (tmp_path / "data" / "labels.json").write_text(json.dumps({"a": 9}))
    with pytest.raises(ValueError, match="targets"):  # class 9 of a 5-class model: evaluate's own check
        tf_gag.benchmark.run(data, path, tmp_path / "o2", methods="vg", progress=False)
    with pytest.raises(TypeError, match="model: expected a path or zoo name"):
        tf_gag.benchmark.run(data, tf_gag.load_model(path), tmp_path / "o3")
