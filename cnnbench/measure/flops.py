"""Multiply-accumulates, FLOPs and activations per image, counted layer by layer over a Keras model's graph.

The convention is the one the published figures use (torchvision's "GFLOPS", fvcore's and timm's GMACs):

* ``macs`` — multiply-accumulates of the layers with weights: convolutions (grouped, depthwise, separable and
  transposed included) and dense layers, one per weight use per output position; bias adds are not counted.
* ``flops`` = 2 x ``macs`` (a multiply and an add), the unit a matmul peak is measured in, so MFU = achieved ÷ peak.
* ``other_flops`` — everything else, one per element touched (batch norm 2, activations 1, pooling one per window
  element, LRN its window, element-wise adds 1, ...), reported apart and never mixed into ``macs``.
* ``activations`` — elements of the conv and dense outputs (fvcore's activation count, timm's "activations (M)").

A train step is counted as 3x the forward (the backward computes a gradient for the inputs and one for the weights,
each as costly as the forward), the usual convention for MFU. Layers can report their own count through a
``macs_per_image(inputs, outputs)`` method (LeNet-1998's partially connected C3 counts only its connections, as the
paper does); a layer with weights the counter does not know is listed in ``uncounted`` rather than guessed.
"""

from __future__ import annotations

import math

import keras

from cnnbench.measure.graph import elements, graph_ops

TRAIN_FACTOR = 3  # forward + backward (input gradients + weight gradients)
L = keras.layers


def _layer_macs(layer, inputs, outputs) -> int | None:
    """MACs per image of one layer with weights; None when this counter does not know the layer."""
    if hasattr(layer, "macs_per_image"):
        return int(layer.macs_per_image(inputs, outputs))
    if isinstance(layer, L.BatchNormalization | L.LayerNormalization | L.GroupNormalization):
        return 0  # normalisation is element-wise work (other_flops), not MACs
    (x,), (y,) = inputs[:1], outputs[:1]
    out, c_in = elements(y), x.shape[-1]
    if isinstance(layer, L.SeparableConv2D):
        depthwise = elements(y) // y.shape[-1] * c_in * layer.depth_multiplier
        return depthwise * math.prod(layer.kernel_size) + out * c_in * layer.depth_multiplier
    if isinstance(layer, L.DepthwiseConv2D):
        return out * math.prod(layer.kernel_size)
    if isinstance(layer, L.Conv2DTranspose | L.Conv1DTranspose | L.Conv3DTranspose):
        return elements(x) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, L.Conv1D | L.Conv2D | L.Conv3D):
        return out * math.prod(layer.kernel_size) * c_in // layer.groups
    if isinstance(layer, L.Dense | L.EinsumDense):
        return out * c_in
    return None


def _intermediate_outputs(layer, op) -> int:
    """A separable conv is two convolutions; its depthwise output counts as an activation like any conv's."""
    if isinstance(layer, L.SeparableConv2D):
        (x,), (y,) = op.inputs, op.outputs
        return elements(y) // y.shape[-1] * x.shape[-1] * layer.depth_multiplier
    return 0


def _other_flops(layer, inputs, outputs) -> int:
    """Element-wise and pooling work, one FLOP per element touched."""
    out = sum(elements(t) for t in outputs)
    if isinstance(layer, L.BatchNormalization | L.LayerNormalization):
        return 2 * out  # inference form: a scale and a shift per element
    if isinstance(layer, L.MaxPooling2D | L.AveragePooling2D):
        return out * math.prod(layer.pool_size)
    if isinstance(layer, L.GlobalAveragePooling2D | L.GlobalMaxPooling2D):
        return elements(inputs[0])
    if type(layer).__name__ == "LocalResponseNormalization":
        return out * (layer.n + 3)  # the windowed sum of squares, then scale, power, divide
    if isinstance(layer, L.Add | L.Multiply | L.Activation | L.ReLU | L.Softmax):
        return out
    activation = getattr(layer, "activation", None)
    return out if activation not in (None, keras.activations.linear) else 0


def count_flops(model: keras.Model) -> dict:
    """Per-image MACs, FLOPs, other FLOPs and activations of a forward pass, with a per-layer table: every layer
    application in execution order, its output shape (batch left out) and its parameters (at its first use)."""
    per_layer, uncounted, seen = [], [], set()
    macs = other = activations = 0
    for op in graph_ops(model):
        layer = op.layer
        layer_macs = _layer_macs(layer, op.inputs, op.outputs) if layer.weights else 0
        if layer_macs is None:
            uncounted.append(layer.name)
            layer_macs = 0
        layer_other = _other_flops(layer, op.inputs, op.outputs)
        acts = sum(elements(t) for t in op.outputs) + _intermediate_outputs(layer, op) if layer_macs else 0
        macs, other, activations = macs + layer_macs, other + layer_other, activations + acts
        params = 0 if id(layer) in seen else layer.count_params()
        seen.add(id(layer))
        per_layer.append({"layer": layer.name, "type": type(layer).__name__,
                          "output_shape": [list(t.shape[1:]) for t in op.outputs], "params": params,
                          "macs": layer_macs, "other_flops": layer_other, "activations": acts})
    return {"macs": macs, "flops": 2 * macs, "other_flops": other, "activations": activations,
            "train_flops": TRAIN_FACTOR * 2 * macs, "uncounted": uncounted, "per_layer": per_layer}
