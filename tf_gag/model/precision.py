"""Reduced precision: which precisions a model may compute in, and whether this machine can run them.

``precision="bfloat16"`` or ``"float16"`` makes the *model* compute in that
type (a copy of it, `tf_gag.model.copies.in_precision`); everything around
the model stays float32: the images and every input a method derives from them
(noise, path points, baselines) go in as float32 and are cast by the model's
first layer, the logits come out cast to float32, and the gradient arrives at
the input (or at a CAM's layer) cast back to float32 before any method part
sees it. So the folds (means, variances, a guide's sign agreement) and the
metrics run in float32 on float32 gradients: a variance cannot overflow and
a guide cannot underflow in reduced precision.

What the reduced backward pass itself can lose is set by the type's range:
bfloat16 has float32's exponent range (8 bits), so a gradient that float32
holds does not underflow or overflow, it only rounds (8 significant bits).
float16 underflows below 6e-8, so its backward pass is scaled: the target
scores are multiplied by `GRADIENT_SCALE` before differentiating and the
float32 gradients divided by it after (static loss scaling). A gradient that
then overflows float16 (an element above 65504 / `GRADIENT_SCALE` = 64) gives
Inf, which the engine refuses with an error that says to use bfloat16.

Supported means TensorFlow has the kernels on the device (`check_device`
runs a small convolution, depthwise convolution and matrix product with their
gradients there, once per device and type). A device that runs a type without
native instructions, as TensorFlow does for bfloat16 on x86 CPUs without
AVX-512 BF16 or AMX and for float16 on CPUs, is slower than float32; it runs,
with a warning that says so.
"""
import functools
import threading
import warnings

import tensorflow as tf

from ..io.types import PRECISIONS

#: float16's static loss scale: target scores are multiplied by it before differentiating.
GRADIENT_SCALE = 1024.0
#: CPU flags that mean native bfloat16 arithmetic (Linux /proc/cpuinfo names).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: GPU compute capability from which a type has native arithmetic (bfloat16: Ampere; float16: Volta tensor cores).
_NATIVE_CAPABILITY = {"bfloat16": (8, 0), "float16": (7, 0)}

_CHECKED = {}
_CHECK_LOCK = threading.Lock()


def check_precision(precision):
    """``precision`` if it is one of `PRECISIONS`, else a ValueError naming them."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def gradient_scale(precision):
    """What the target scores are multiplied by before differentiating in ``precision`` (1 but for float16)."""
    return GRADIENT_SCALE if precision == "float16" else 1.0


def _probe(dtype):
    """Run a convolution, a depthwise convolution, a matrix product and their gradients in ``dtype``."""
    x = tf.cast(tf.reshape(tf.range(2 * 4 * 4 * 2, dtype=tf.float32), (2, 4, 4, 2)) / 32.0, dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.conv2d(x, tf.ones((3, 3, 2, 2), dtype), 1, "SAME")
        y = tf.nn.depthwise_conv2d(tf.nn.relu(y), tf.ones((3, 3, 2, 1), dtype), [1, 1, 1, 1], "SAME")
        y = tf.matmul(tf.reshape(y, (2, -1)), tf.ones((32, 3), dtype))
        score = tf.reduce_sum(tf.cast(tf.nn.softmax(y), tf.float32))
    tape.gradient(score, x).numpy()


@functools.cache
def _cpu_flags():
    """The CPU's feature flags (Linux), or None where /proc/cpuinfo cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _slow_reason(device, precision):
    """Why ``device`` computes ``precision`` without native instructions, or None when it has them (or unknown)."""
    if tf.config.list_physical_devices("GPU") and "GPU" in device.upper():
        gpus = tf.config.list_physical_devices("GPU")
        index = int(device.rsplit(":", 1)[1]) if device[-1].isdigit() else 0
        capability = tf.config.experimental.get_device_details(gpus[min(index, len(gpus) - 1)]).get(
            "compute_capability")
        if capability is not None and tuple(capability) < _NATIVE_CAPABILITY[precision]:
            return f"its compute capability is {capability[0]}.{capability[1]}"
        return None
    if precision == "float16":
        return "CPUs have no float16 arithmetic in TensorFlow"
    flags = _cpu_flags()
    if flags is not None and not flags.intersection(_BF16_FLAGS):
        return "this CPU has neither AVX-512 BF16 nor AMX"
    return None


def check_device(precision, devices=None):
    """Refuse ``precision`` where a device has no kernels for it; warn where it runs without native arithmetic.

    ``devices``: the device names the model will run on (a strategy's
    worker devices), default the one TensorFlow places ops on. Each
    (device, precision) is probed once per process.
    """
    if precision == "float32":
        return
    for device in devices or [_default_device()]:
        with _CHECK_LOCK:
            known = _CHECKED.get((device, precision))
            if known is None:
                try:
                    with tf.device(device):
                        _probe(tf.as_dtype(precision))
                    known = ("ok", _slow_reason(device, precision))
                except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
                    known = ("refused", e.message.splitlines()[0][:200])
                _CHECKED[(device, precision)] = known
        verdict, reason = known
        if verdict == "refused":
            raise ValueError(f"precision: {device} has no {precision} kernels for convolutions and matrix products "
                             f"({reason}); use precision='float32' there")
        if reason is not None:
            warnings.warn(f"precision: {device} runs {precision} without native arithmetic ({reason}); TensorFlow "
                          "emulates it and it is slower than float32 there (see the README's precision table)",
                          UserWarning, stacklevel=3)


def _default_device():
    """Where TensorFlow places ops by default: the first GPU if there is one, else the CPU."""
    return "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
