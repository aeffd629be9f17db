"""Images per second, per method and per metric, at float32 and bfloat16; xplique and captum on the same weights.

    .venv/bin/pip install --no-deps -r benchmarks/requirements-xplique.txt captum==0.9.0
    .venv/bin/python -m benchmarks.throughput [--images 2] [--models lite0,resnet50,vit_b_16]
        [--precisions float32,bfloat16] [--torchvision DIR]

What a method costs before it is run: for each model and precision, each method in ``METHODS`` (the library's
defaults: 20 samples or steps where a method takes them) explains ``--images`` real photos (224 px, each photo's
float32 top class as target, ``batch_size=16``) and each metric in ``METRICS`` scores the float32 GAG maps of
them. A figure is ``--images`` / the seconds of the second call with the same arguments (the first traces; its
seconds are given too). Models:

* ``lite0``: EfficientNet-Lite0 (real ImageNet weights) imported through ONNX; captum 0.9.0 runs the same
  methods on the torch module it was exported from (`converters.zoo`), same photos, same CPU threads (captum's
  Guided Backprop replaces ``nn.ReLU`` modules only, so on Lite0's ReLU6 it is a plain gradient: the same work);
* ``resnet50``: Keras' ResNet50 (``weights=None``, seeded: no pretrained ResNet50 installs offline; the speed
  does not depend on the weights), logits head; xplique 2.0.2 runs the same methods on the same ``keras.Model``;
* ``vit_b_16``: torchvision's ViT-B/16 layout (`benchmarks.attnlrp_parity.vit_b_16`, seeded) imported through
  ONNX; only ``VIT_METHODS`` (its first traced call holds its 330 MB of weights as graph constants: see RESULTS).

Peers run at float32 only (neither offers reduced precision for attributions); the ratio is tf_gag's images/s
over the peer's, measured in this one run. Writes ``results/throughput.{json,md}`` after every row.
"""
import argparse
import functools
import os
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tf_gag  # noqa: E402
from benchmarks import report  # noqa: E402
from tf_gag import assets  # noqa: E402

METHODS = ("vanilla_gradient", "smoothgrad", "guided_absolute_grad", "integrated_gradients", "guided_backprop",
           "grad_cam")
VIT_METHODS = ("vanilla_gradient", "guided_absolute_grad")
METRICS = ("rcap", "dauc", "iauc")
SIZE, SAMPLES, STEPS, NOISE = 224, 20, 20, 0.15


def two_calls(fn):
    """(seconds of the first call, seconds of the second) of ``fn()``."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# ----- the peers, on the same weights ------------------------------------------------------------------------


def _captum(images, targets):
    """{method: fn()} running captum on the torch Lite0 the zoo model was exported from (float32, NCHW)."""
    import torch
    from captum import attr

    from converters.zoo import _lite0_module

    net = _lite0_module()
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    target = torch.from_numpy(targets.astype(np.int64))
    sigma = float(NOISE * (images.max() - images.min()))
    features = net.features  # an identity on the last feature map: the tensor the imported model's Grad-CAM reads

    def run(fn):
        def call():
            with torch.enable_grad():
                return fn(x.clone().requires_grad_(True))
        return call

    return {
        "vanilla_gradient": run(lambda v: attr.Saliency(net).attribute(v, target=target, abs=True)),
        "smoothgrad": run(lambda v: attr.NoiseTunnel(attr.Saliency(net)).attribute(
            v, nt_type="smoothgrad", nt_samples=SAMPLES, stdevs=sigma, target=target, abs=True)),
        "integrated_gradients": run(lambda v: attr.IntegratedGradients(net).attribute(
            v, baselines=0.0, target=target, n_steps=STEPS, method="riemann_middle")),
        "guided_backprop": run(lambda v: attr.GuidedBackprop(net).attribute(v, target=target)),
        "grad_cam": run(lambda v: attr.LayerAttribution.interpolate(
            attr.LayerGradCam(net, features).attribute(v, target=target), (SIZE, SIZE), "bilinear")),
    }


def _xplique(model, images, targets):
    """{method: fn()} running xplique on the same Keras model (float32); each explainer is made once, as
    tf_gag's `Explainer` is (xplique's Guided Backprop copies the model when it is made)."""
    from xplique import attributions as xa

    onehot = np.eye(model.output_shape[-1], dtype=np.float32)[targets]
    sigma = float(NOISE * (images.max() - images.min()))
    layer = [layer.name for layer in model.layers if len(layer.output.shape) == 4][-1]
    explainers = {
        "vanilla_gradient": lambda: xa.Saliency(model, batch_size=16),
        "smoothgrad": lambda: xa.SmoothGrad(model, batch_size=16, nb_samples=SAMPLES, noise=sigma),
        "integrated_gradients": lambda: xa.IntegratedGradients(model, batch_size=16, steps=STEPS,
                                                               baseline_value=0.0),
        "guided_backprop": lambda: xa.GuidedBackprop(model, batch_size=16),
        "grad_cam": lambda: xa.GradCAM(model, batch_size=16, conv_layer=layer),
    }
    return {name: functools.partial(make().explain, images, onehot) for name, make in explainers.items()}


# ----- the models ----------------------------------------------------------------------------------------------


def _photos(count, preprocessing):
    return preprocessing.to_model(assets.photos(assets.ALL_PHOTOS[:count], size=SIZE)).numpy()


def _models(names, count, work, torchvision):
    if "lite0" in names:
        lite0 = tf_gag.load_model("efficientnet_lite0")
        yield "EfficientNet-Lite0 (imported)", lite0, _photos(count, lite0.preprocessing), METHODS, "captum"
    if "resnet50" in names:
        import keras

        keras.utils.set_random_seed(0)
        resnet = keras.applications.ResNet50(weights=None, classifier_activation=None)
        preprocessing = tf_gag.Preprocessing(127.5, 127.5)
        adapter = tf_gag.ModelAdapter(resnet, preprocessing=preprocessing)
        yield "ResNet50 (Keras, seeded)", adapter, _photos(count, preprocessing), METHODS, "xplique"
    if "vit_b_16" in names:
        from benchmarks.attnlrp_parity import vit_b_16
        from converters.torch_to_onnx import export

        net, _ = vit_b_16(torchvision)
        vit = tf_gag.load_model(export(net, os.path.join(work, "vit_b_16.onnx"), input_size=(SIZE, SIZE)),
                                cache=os.path.join(work, "cache"))
        yield "ViT-B/16 (imported, seeded)", vit, _photos(count, tf_gag.Preprocessing(127.5, 127.5)), VIT_METHODS, None


def _measure(model, images, methods, peer_kind, precisions):
    """Yield (precision, method or metric, tf_gag's two call times, the peer's or None) for one model."""
    targets = model.predict_logits(images, 16).argmax(axis=1).astype(np.int32)
    peers = {}
    if peer_kind == "captum":
        peers = _captum(images, targets)
    elif peer_kind == "xplique":
        peers = _xplique(model.model, images, targets)
    maps = tf_gag.explain(model, images, "guided_absolute_grad", targets, batch_size=16)
    for precision in precisions.split(","):
        for method in methods:
            explainer = tf_gag.Explainer(model, method, batch_size=16, precision=precision)
            times = two_calls(functools.partial(explainer.explain, images, targets))
            peer = two_calls(peers[method]) if precision == "float32" and method in peers else None
            yield precision, method, times, peer
        for metric in METRICS if methods is METHODS else ():
            score = functools.partial(tf_gag.evaluate, model, images, maps, targets, metrics=[metric], batch_size=16,
                                      precision=precision)
            yield precision, metric, two_calls(score), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--models", default="lite0,resnet50,vit_b_16")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--torchvision", help="folder with torchvision's wheel unpacked (its vit_b_16)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the emulated-precision warning, once per explainer
    rows, data = [], {}
    header = ["model", "precision", "method or metric", "images/s", "first call (s)", "peer images/s",
              "tf_gag / peer"]

    def record(model_name, precision, name, times, peer=None, peer_name=None):
        entry = {"images_per_s": args.images / times[1], "first_call_s": times[0]}
        if peer is not None:
            entry.update({"peer": peer_name, "peer_images_per_s": args.images / peer[1]})
        data.setdefault(model_name, {}).setdefault(precision, {})[name] = entry
        rows.append([model_name, precision, name, f"{entry['images_per_s']:.3f}", f"{times[0]:.1f}",
                     f"{entry['peer_images_per_s']:.3f} ({peer_name})" if peer else "",
                     f"{entry['images_per_s'] / entry['peer_images_per_s']:.2f}" if peer else ""])
        print(rows[-1], flush=True)
        report.write("throughput", {"images": args.images, "results": data}, report.markdown_table(header, rows))

    with tempfile.TemporaryDirectory() as work:
        for model_name, model, images, methods, peer_kind in _models(args.models.split(","), args.images, work,
                                                                      args.torchvision):
            for precision, name, times, peer in _measure(model, images, methods, peer_kind, args.precisions):
                record(model_name, precision, name, times, peer, peer_kind)
    print(report.markdown_table(header, rows))


if __name__ == "__main__":
    main()
