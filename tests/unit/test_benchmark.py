"""tf_gag.benchmark's parts: the tables' plan, the run folder's refusals and resuming, and tables from stored
batches equal to `tf_gag.evaluate` over all the images at once."""
import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

import tf_gag
from tf_gag.benchmark import plan, store


def test_plan_holds_the_papers_tables():
    units = plan.plan(plan.resolve_methods())
    assert len(units) == 9 + 12 + 5 + 5 * 5 and len({u.key for u in units}) == len(units)
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
    assert run.load(unit, 3)["rcap"].tolist() == [0.5] and os.listdir(os.path.dirname(run.path(unit, 3))) == [
        "batch-00003.npz"]  # no temporary file left
    with open(run.path(unit, 2), "wb") as f:
        f.write(b"half a zip")
    assert not run.has(unit, 2)  # unreadable: computed again
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


def test_tables_from_stored_batches_equal_evaluate_on_all_images(folder, tmp_path):
    data, path, images, mask = folder
    tables = tf_gag.benchmark.run(data, path, tmp_path / "out", batch_size=2, methods="gb", progress=False)
    model = tf_gag.load_model(path)
    targets = model.predict_logits(images, 3).argmax(axis=1)
    targets[2] = 4
    assert tables["images"] == ["a", "b", "c"] and tables["targets"] == targets.tolist()
    assert tables["masked"] == [False, True, False] and tables["mask_metrics"] == ["sqrt_mae", "log_cosh_dice"]

    def values(**options):
        maps = tf_gag.explain(model, images, "gb", targets, batch_size=2, **options)
        curves = tf_gag.evaluate(model, images, maps, targets, batch_size=2).means()
        masked = tf_gag.evaluate(model, images[1:2], maps[1:2], targets[1:2], mask[None],
                                 metrics=("sqrt_mae", "log_cosh_dice")).means()
        return {**masked, **curves}

    original = values()
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
