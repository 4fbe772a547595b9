"""A Keras model as a list of layer applications in execution order, nested models flattened — the walk the memory
predictor and the FLOP counter share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from cnnbench.compat import first_call

#: where a classifier's head starts: layers after the last of these train when the backbone is frozen.
HEAD_START = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)


def elements(tensor) -> int:
    """Elements of one example of a symbolic tensor (the batch dimension left out)."""
    return math.prod(d for d in tensor.shape[1:] if d is not None)


@dataclass
class Op:
    layer: keras.layers.Layer
    inputs: list
    outputs: list


def graph_ops(model: keras.Model) -> list[Op]:
    """The model's layers in execution order, nested models flattened, with their symbolic inputs and outputs."""
    ops = []
    for layer in model.operations if hasattr(model, "operations") else model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) and hasattr(layer, "operations"):
            inner = graph_ops(layer)
            called = first_call(layer)
            if called is not None:  # connect the nested model's own inputs/outputs to the outer tensors
                alias = dict(zip(map(id, layer.inputs), called[0], strict=False))
                alias |= dict(zip(map(id, layer.outputs), called[1], strict=False))
                for op in inner:
                    op.inputs = [alias.get(id(t), t) for t in op.inputs]
                    op.outputs = [alias.get(id(t), t) for t in op.outputs]
            ops += inner
            continue
        ops.append(Op(layer, keras.tree.flatten(layer.input), keras.tree.flatten(layer.output)))
    return ops


def head_start(ops: list[Op]) -> int:
    """Index of a classifier's first head layer: the one after the last global pooling / flatten (else the last)."""
    heads = [i for i, op in enumerate(ops) if isinstance(op.layer, HEAD_START)]
    return heads[-1] + 1 if heads else len(ops) - 1


def freeze_backbone(model: keras.Model) -> None:
    """Transfer learning's frozen backbone: only the layers from ``head_start`` on stay trainable."""
    ops = graph_ops(model)
    for op in ops[: head_start(ops)]:
        op.layer.trainable = False
