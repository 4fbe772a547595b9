"""The model and the step a memory spec names — ``{"arch" | "model_file", "model_kwargs", "input_shape",
"batch_size", "mode", "optimizer", "precision"}`` — shared by the layer model's prediction, the traced graph's and the
measurement, so all three see one model and one graph."""

from __future__ import annotations

import keras


def build_for_memory(spec: dict) -> tuple[keras.Model, tuple[int, int, int]]:
    """The model a memory spec names: a registry arch (with builder keywords) or a user's ``.keras`` file."""
    if spec.get("model_file"):
        from cnnbench.modelfile import load_model_file

        model = load_model_file(spec["model_file"])
        shape = tuple(spec.get("input_shape") or model.inputs[0].shape[1:])
        return model, shape
    import architectures

    kwargs = dict(spec.get("model_kwargs") or {})
    if spec.get("input_shape"):
        kwargs["input_shape"] = tuple(spec["input_shape"])
    model = architectures.create_model(spec["arch"], **kwargs)
    shape = tuple(kwargs.get("input_shape") or architectures.model_info(spec["arch"]).default_input_shape)
    return model, shape


def _segmentation(spec: dict) -> bool:
    """Whether the spec names a registered segmentation model (its loss then takes a label per pixel)."""
    import architectures

    return bool(spec.get("arch")) and architectures.model_info(spec["arch"]).kind == "segmentation"


def make_step(model, spec: dict, input_shape) -> tuple:
    """The step a memory spec names, as a ``tf.function`` and its arguments: a compiled train step (optimizer built)
    on a fixed batch, or inference. Shared by the measurement and the graph prediction, so both see one graph."""
    import numpy as np
    import tensorflow as tf

    batch = spec["batch_size"]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, *input_shape), dtype=np.float32))
    out_shape = model.compute_output_shape((batch, *input_shape))
    if len(out_shape) == 2 or _segmentation(spec):  # classes per image or per pixel: integer labels
        y = tf.constant(rng.integers(0, out_shape[-1], out_shape[:-1], dtype=np.int32))
        loss = "sparse_categorical_crossentropy"
    else:  # anything else (feature maps, dense predictions): a target of the output's shape, mean squared error
        y, loss = tf.constant(rng.random(out_shape, dtype=np.float32)), "mse"
    if spec["mode"] == "train":
        optimizer = keras.optimizers.SGD(momentum=0.9) if spec.get("optimizer") == "momentum" else spec.get(
            "optimizer", "adam")
        model.compile(optimizer=optimizer, loss=loss)
        model.optimizer.build(model.trainable_variables)
        return tf.function(model.train_step), ((x, y),)
    return tf.function(lambda t: model(t, training=False)), (x,)
