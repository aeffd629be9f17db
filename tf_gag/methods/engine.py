"""The engine: a method's five parts run over a batch of images, on the host or inside one graph.

`Parts` names a method's source, backward rule, modification, interpretation
and fold. `Engine` binds them to a model and runs them three ways, all through
the same compiled step (a modification's inputs -> one batched gradient
(`kernel.chunk_gradients`) -> contributions -> the fold's online update):

* on the host (`Engine.attributions`): images are taken ``batch_size`` at a
  time (a group); a group's (image, sample) jobs run sample-major, cut into
  chunks of exactly ``batch_size`` passes (the last may be shorter), so a
  chunk of a full group is one sample of every image and a random draw is made
  once per chunk; the group is finalised when its last sample is in;
* step by step on the host, for sequential modifications (Guided IG), whose
  next inputs depend on the last gradients;
* inside one graph (`Engine.graph_attributions`: TF Serving, tf.distribute
  replicas): ``tf.while_loop`` s over the same groups and the same chunks.

The in-graph runner composes chunks exactly as the host runner does and calls
the same compiled step on each, so both see the same kernels on the same
shapes and give bit-identical attributions; under a strategy each replica runs
whole groups (`tf_gag.distribute.SplitRunner`), so the maps do not depend on
the number of replicas. Noise, paths and baselines come from stateless seeds,
so an image's attributions are the same in every runner and batch up to
float32 rounding (a kernel's rounding depends on the batch it sees). Every
host run goes through `fill_rows`, the one loop that keeps finished rows when
a part fails.
"""
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ..distribute import SplitRunner, replicas
from ..errors import PartialResultError
from ..reuse import PerKey
from .jobs import Jobs
from .kernel import chunk_gradients, compile_gradients


@dataclass(frozen=True)
class Parts:
    """A method: whose gradient, how it passes ReLUs, which inputs, how read, how combined.

    ``cam``: a layer source's CAM weighting (`tf_gag.methods.cams`); None for
    an input source. ``post``: the post-fold stage (`tf_gag.methods.post`).
    """

    source: object
    rule: object
    modification: object
    interpretation: object
    fold: object
    objective: str = "logit"
    cam: object = None
    post: object = None

    def describe(self):
        """{slot: {"class": the part's class name, option: value...}} of the filled slots, for reprs."""
        slots = [s for s in ("source", "rule", "modification", "interpretation", "fold", "cam", "post")
                 if getattr(self, s) is not None]
        return {p: {"class": type(getattr(self, p)).__name__, **getattr(self, p).describe()} for p in slots}


def fill_rows(result, parts, compute, what, on_progress=None):
    """``result[rows] = compute(rows)`` for each ``(rows, passes)`` of ``parts``, keeping finished rows on failure.

    ``passes`` is reported to ``on_progress`` after each part. A TensorFlow
    error or MemoryError becomes a `PartialResultError` holding ``result``
    with the rows already finished.
    """
    done = np.zeros(len(result), bool)
    for rows, passes in parts:
        try:
            result[rows] = compute(rows)
        except (tf.errors.OpError, MemoryError) as error:
            raise PartialResultError.after_images(what, error, result, done) from error
        done[rows] = True
        if on_progress is not None and passes:
            on_progress(passes)
    return result


class Engine:
    """`Parts` bound to a `ModelAdapter`, with one compiled step per image size (built once, thread-safe)."""

    def __init__(self, adapter, parts):
        self.adapter = adapter
        self.parts = parts
        parts.source.check(adapter, parts.modification, parts.cam)
        self._bound = PerKey(lambda shape: parts.source.bind(adapter, shape))
        self._steps = PerKey(self._compile_step)
        self._gradients = PerKey(self._compile_gradients)
        self._split = PerKey(lambda key: SplitRunner(key[0], self._graph_group(*key[1:]), key[3]))

    @property
    def runs_in_graph(self):
        """Whether the whole method can run inside one TF graph (all but host-chosen steps)."""
        return not self.parts.modification.sequential

    def tracing_counts(self):
        """{image shape: times its compiled step was traced}: 1 each when calls reuse their graphs."""
        return {shape: step.experimental_get_tracing_count() for shape, step in self._steps.items()}

    def attribution_shape(self, image_shape):
        """Per-image shape of the raw attributions: (H, W, C), or (H, W, 1) for a layer source."""
        return self._bound.get(tuple(image_shape)).attribution_shape

    # ----- compiled pieces ------------------------------------------------------

    def _compile_step(self, image_shape):
        p, adapter = self.parts, self.adapter
        source = self._bound.get(image_shape)
        image_spec = tf.TensorSpec((None,) + image_shape, tf.float32)
        index_spec = tf.TensorSpec((None,), tf.int32)
        state_spec = p.fold.state_specs(source.attribution_shape)

        def forward(x, context):  # the plain forward pass parts may call on other inputs (`Jobs.forward`)
            return adapter.forward(x, context=context)

        @tf.function(
            input_signature=[
                image_spec, index_spec, p.modification.param_specs(image_shape), index_spec, index_spec,
                tf.TensorSpec((), tf.int32), state_spec, adapter.context_specs(),
            ]
        )
        def step(images, targets, params, image_index, sample_index, seed, state, context):
            jobs = Jobs(
                images, params, image_index, sample_index, seed, tf.gather(targets, image_index),
                tuple(tf.gather(c, image_index) for c in context),  # other inputs follow each job's image
                forward=forward, objective=p.objective,
            )
            jobs = jobs._replace(inputs=p.modification.inputs(jobs))
            result = chunk_gradients(adapter, p.rule, source, jobs)
            return p.fold.update(state, source.contributions(p, jobs, result), p.interpretation, image_index)

        # Traced here, once: TensorFlow's retracing detector keys on the Python function, which every Engine's
        # step shares, and counts only traces made by calls, so a user building several methods sees no warning.
        step.get_concrete_function()
        return step

    def _compile_gradients(self, image_shape):
        return compile_gradients(self.adapter, image_shape, self.parts.rule, self.parts.objective)

    # ----- runners ---------------------------------------------------------------

    def attributions(self, images, targets, *, batch_size, seed, strategy=None, on_progress=None, context=()):
        """Raw float32 attributions, (N, H, W, C) or (N, H, W, 1), for validated images and targets.

        ``context``: a multi-input model's other inputs, (N, ...) arrays (`ModelAdapter.check_inputs`).
        """
        shape = tuple(images.shape[1:])
        self.parts.modification.validate_image_shape(shape)
        result = np.zeros((len(images),) + self.attribution_shape(shape), np.float32)
        what = "computing attributions"
        if strategy is not None:
            run = self._split.get((strategy, shape, seed, batch_size))
            params = tuple(x.numpy() for x in self.parts.modification.params(images))
            n = self.parts.modification.n_jobs * self.parts.modification.passes_per_job
            rounds = _slices(len(images), batch_size * replicas(strategy))  # one group per replica
            parts = ((rows, (rows.stop - rows.start) * n) for rows in rounds)

            def compute(rows):
                return run(images[rows], targets[rows], *(x[rows] for x in params)).numpy()

            return fill_rows(result, parts, compute, what, on_progress)
        groups = ((rows, 0) for rows in _slices(len(images), batch_size))
        if self.parts.modification.sequential:
            group = self._walk_group(images, targets, seed, on_progress, context)
        else:
            group = self._chunked_group(images, targets, batch_size, seed, on_progress, context)
        return fill_rows(result, groups, group, what)

    def _chunked_group(self, images, targets, batch_size, seed, on_progress, context):
        """``rows -> attributions`` of one group: its jobs sample-major, in chunks of ``batch_size``."""
        p = self.parts
        shape = tuple(images.shape[1:])
        step = self._steps.get(shape)
        params = tuple(x.numpy() for x in p.modification.params(images))
        seed = tf.constant(seed, tf.int32)

        def group(rows):
            size = rows.stop - rows.start
            total = size * p.modification.n_jobs
            inputs = (tf.constant(images[rows]), tf.constant(targets[rows]), tuple(x[rows] for x in params))
            others = tuple(tf.constant(c[rows]) for c in context)
            state = p.fold.empty(size, self.attribution_shape(shape))
            for start in range(0, total, batch_size):
                jobs = np.arange(start, min(start + batch_size, total))
                state = step(*inputs, (jobs % size).astype(np.int32), (jobs // size).astype(np.int32), seed, state,
                             others)
                if on_progress is not None:
                    on_progress(len(jobs))
            return p.fold.finalize(state).numpy()

        return group

    def _walk_group(self, images, targets, seed, on_progress, context):
        """``rows -> attributions`` of one group of a sequential modification, step by step."""
        p = self.parts
        gradients = self._gradients.get(tuple(images.shape[1:]))

        def group(rows):
            size = rows.stop - rows.start
            chunk_targets = tf.constant(targets[rows])
            others = tuple(tf.constant(c[rows]) for c in context)
            state = p.fold.empty(size, images.shape[1:])
            index = tf.range(size, dtype=tf.int32)
            walked = p.modification.walk(images[rows], lambda x: gradients(x, chunk_targets, others), seed)
            for contributions in walked:
                state = p.fold.update(state, tf.constant(contributions), p.interpretation, index)
                if on_progress is not None:
                    on_progress(size * p.modification.passes_per_job)
            return p.fold.finalize(state).numpy()

        return group

    def _graph_group(self, image_shape, seed, batch_size):
        """``(images, targets, *params, context=()) -> raw attributions`` of one group, as TF ops.

        The group's jobs run sample-major in chunks of ``batch_size`` passes
        through the compiled step, as `_chunked_group` runs them on the host.
        """
        p = self.parts
        step = self._steps.get(image_shape)
        shape = self.attribution_shape(image_shape)
        n, seed = p.modification.n_jobs, tf.constant(seed, tf.int32)

        def group(images, targets, *params, context=()):
            size = tf.shape(images)[0]
            total = size * n

            def body(start, state):  # one chunk: jobs start .. start + batch_size - 1
                jobs = tf.range(start, tf.minimum(start + batch_size, total))
                merged = step(images, targets, params, jobs % size, jobs // size, seed, state, context)
                # The step's signature forgets static shapes; the loop needs them unchanged.
                return start + batch_size, tf.nest.map_structure(
                    lambda new, old: tf.ensure_shape(new, old.shape), merged, state)

            empty = p.fold.empty(size, shape)
            _, state = tf.while_loop(lambda start, _: start < total, body, (tf.constant(0, tf.int32), empty))
            return p.fold.finalize(state)

        return group

    def graph_attributions(self, image_shape, seed, batch_size):
        """``(images, targets, context=()) -> raw attributions`` as TF ops, composed as the host composes them.

        Groups of ``batch_size`` images, each group's jobs in chunks of
        ``batch_size`` passes (`_graph_group`): the same chunks as
        `attributions` without a strategy, so the same attributions.
        Methods that choose each step on the host (Guided IG) cannot run in a
        graph: check `runs_in_graph` first. ``context``: a multi-input model's
        other inputs, one row per image (tf.distribute refuses such models).
        """
        image_shape = tuple(image_shape)
        p = self.parts
        p.modification.validate_image_shape(image_shape)
        group = self._graph_group(image_shape, seed, batch_size)
        shape = self.attribution_shape(image_shape)

        def attributions(images, targets, context=()):
            params = p.modification.params(images)
            count = tf.shape(images)[0]

            def body(start, done):
                rows = slice(start, tf.minimum(start + batch_size, count))
                out = group(images[rows], targets[rows], *(x[rows] for x in params),
                            context=tuple(c[rows] for c in context))
                return start + batch_size, done.write(start // batch_size, out)

            groups = tf.TensorArray(tf.float32, size=(count + batch_size - 1) // batch_size, infer_shape=False,
                                    element_shape=tf.TensorShape((None,) + shape))
            _, groups = tf.while_loop(lambda start, _: start < count, body, (tf.constant(0, tf.int32), groups))
            return tf.ensure_shape(groups.concat(), (None,) + shape)

        return attributions


def _slices(total, size):
    return [slice(start, min(start + size, total)) for start in range(0, total, size)]
