"""Numeric entries outside the methods and metrics: image sizes, figures, photos and the command's flags.

Each unusable value is refused with a ValueError naming the argument (or the
flag), before any model is loaded or image read.
"""
import re

import numpy as np
import pytest

import tf_gag
from tf_gag import assets, viz
from tf_gag.io import imageio
from tf_gag.tools import cli

MAP = np.random.default_rng(0).uniform(0, 1, (4, 4))
PHOTO = np.full((4, 4, 3), 128.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: imageio.fit(PHOTO, 0, 4), r"height: expected an integer >= 1, got 0"),
        (lambda: imageio.fit(PHOTO, 4, 4.5), r"width: expected an integer >= 1, got 4.5"),
        (lambda: tf_gag.load_imagenet_s("ImageNetS50", image_size=True), r"image_size: expected an integer >= 1, "
                                                                         r"got True"),
        (lambda: assets.photos(size=0), r"size: expected an integer >= 1, got 0"),
        (lambda: assets.photos(names=()), r"names: expected a list of photo names from \[.*\], got none"),
    ],
    ids=["height", "width", "imagenet-s-size", "photo-size", "no-photos"],
)
def test_image_sizes_and_photo_names(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_an_imagenet_s_subset_is_a_whole_number(tmp_path):
    (tmp_path / "validation").mkdir()
    with pytest.raises(ValueError, match=r"subset: expected one of \[50, 300, 919\], got 50.0"):
        tf_gag.load_imagenet_s(tmp_path, subset=50.0)


def test_reading_files_at_an_unusable_size(tmp_path):
    """Every file read is fitted to the size: the first one refuses it (not skipped as an unreadable file)."""
    path = viz.save_png(PHOTO.astype(np.uint8), str(tmp_path / "grey.png"))
    with pytest.raises(ValueError, match=r"width: expected an integer >= 1, got nan"):
        imageio.read_images([path], 4, float("nan"))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: viz.overlay(PHOTO, MAP, alpha=float("nan")), r"alpha: expected a weight in \[0, 1\], got nan"),
        (lambda: viz.overlay(PHOTO, MAP, percentile="99"), r"percentile: expected a number in \(0, 100\], got '99'"),
        (lambda: viz.display_scale(MAP, percentile=0), r"percentile: expected a number in \(0, 100\], got 0"),
        (lambda: viz.grid(PHOTO[None], {"m": MAP[None]}, cell_inches=float("inf")),
         r"cell_inches: expected a finite number > 0, got inf"),
        (lambda: viz.grid(PHOTO[None], {"m": MAP[None]}, path="grid.png", dpi=0), r"dpi: expected a finite number > "
                                                                                  r"0, got 0"),
    ],
    ids=["alpha", "percentile-string", "percentile-zero", "cell-inches", "dpi"],
)
def test_figure_settings(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["explain", "x.png", "--batch-size", "0"], r"--batch-size: expected an integer >= 1, got 0"),
        (["evaluate", "x.png", "--seed", "-1"], r"--seed: expected an integer in \[0, 2147483647\], got -1"),
        (["explain", "x.png", "--targets", "3", "-1"], r"--targets: expected class ids >= 0, got -1"),
        (["sanity", "x.png", "--layers", "0"], r"--layers: expected an integer >= 1, got 0"),
        (["sanity", "x.png", "--check", "perturbation", "--noise", "0.01,inf"],
         r"--noise: expected a finite relative noise level > 0, got inf"),
        (["sanity", "x.png", "--check", "perturbation", "--noise", "nan"],
         r"--noise: expected a finite relative noise level > 0, got nan"),
        (["sanity", "x.png", "--methods", ","], r"--methods: expected a list of method names, got none"),
        (["evaluate", "x.png", "--metrics", ""], r"--metrics: expected a list of metric names, got none"),
    ],
    ids=["batch-size", "seed", "targets", "layers", "noise-inf", "noise-nan", "no-methods", "no-metrics"],
)
def test_command_flags_are_refused_before_the_model_is_loaded(argv, match, capsys, tmp_path):
    """The model path does not exist: the flag is refused first (exit status 1, one line naming the flag)."""
    command, *rest = argv
    status = cli.main(["--verbose", command, *rest, "--model", str(tmp_path / "missing.keras"), "--out",
                       str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert status == 1 and error.count("\n") == 1
    assert error.startswith(f"tf-gag {command}: ")
    assert re.search(match, error), error


def test_noise_that_is_not_numbers_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        cli.main(["sanity", "x.png", "--model", "m.keras", "--out", str(tmp_path), "--check", "perturbation",
                  "--noise", "0.01,lots"])
    assert info.value.code == 2
    assert "argument --noise: expected comma-separated numbers, got '0.01,lots'" in capsys.readouterr().err
