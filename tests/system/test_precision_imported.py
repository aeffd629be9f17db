"""Reduced precision on a model imported through ONNX (the real EfficientNet-Lite0): its flat graph computes in
the type asked for, the imported model is unchanged, and the maps stay within the README's bounds."""
import pytest
import tensorflow as tf

from tests.reference import assert_reduced_maps_within_bounds
from tf_gag import assets

pytestmark = [pytest.mark.kernels, pytest.mark.filterwarnings("ignore:precision:UserWarning")]


def test_the_flat_graph_computes_in_the_precision_and_the_model_is_unchanged(lite0):
    copy = lite0.in_precision("bfloat16")
    types = {node.attr["T"].type for node in copy.backend.flat._computed_def().node if node.op == "Conv2D"}
    assert types == {tf.bfloat16.as_datatype_enum}
    assert lite0.precision == "float32" and lite0.backend.flat.dtype == tf.float32
    originals = {node.attr["T"].type for node in lite0.backend.flat.graph_def.node if node.op == "Conv2D"}
    assert originals == {tf.float32.as_datatype_enum}


def test_lite0_maps_stay_within_the_readme_bounds(lite0):
    images = lite0.preprocessing.to_model(assets.photos(("chelsea", "coffee"), size=224)).numpy()
    assert_reduced_maps_within_bounds(lite0, images, ("guided_absolute_grad", "grad_cam"))
