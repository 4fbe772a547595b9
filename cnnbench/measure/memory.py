"""Analytic memory model of a Keras model: what a train step or an inference must hold at its peak, in bytes.

Two views, side by side:

* ``bare_minimum`` — the textbook method (Géron, ch. 14): parameters, plus for inference the two largest consecutive
  feature maps, for training every feature map of the batch and the inputs; no gradients, no optimizer state.
* ``predict_memory`` — what the framework really holds: weights, optimizer slots, then a walk of the layer graph
  that simulates the live set of a train step: forward outputs are freed after their last consumer unless the layer's
  gradient needs them (conv and dense keep their input, ReLU/sigmoid its output, max pooling both, batch norm its
  input, ...); the backward walk frees each layer's saved tensors once its gradient is computed. TF's executor runs a
  variable's optimizer update as soon as its gradient exists (data flow, not program order), so weight gradients do
  not pile up: at each backward step the live set holds that layer's weight gradient and the optimizer's
  temporaries for it. The peak of that walk is the prediction.

Dtypes follow the precision policy: under ``mixed_float16`` / ``mixed_bfloat16`` variables, gradients and optimizer
slots stay float32 and activations are 2 bytes.
"""

from __future__ import annotations

import itertools
import math
import subprocess
from collections import defaultdict

import keras

from cnnbench import backends
from cnnbench.measure.graph import Op, elements, graph_ops, head_start
from cnnbench.measure.memory_probe import ProbeError
from cnnbench.measure.steps import build_for_memory

#: optimizer → temporaries its update of one variable allocates (elementwise results the size of the variable).
OPTIMIZER_TEMPORARIES = {"sgd": 1, "momentum": 2, "nesterov": 2, "rmsprop": 2, "adagrad": 2, "adam": 2, "adamw": 2,
                         "nadam": 2, "adamax": 2, "lion": 2, "adafactor": 2}
#: optimizer → slots per trainable weight (Keras 3 implementations).
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adagrad": 1, "adam": 2, "adamw": 2,
                   "nadam": 2, "adamax": 2, "lion": 1, "adafactor": 2}
ACTIVATION_BYTES = {"float32": 4, "mixed_float16": 2, "mixed_bfloat16": 2}
VARIABLE_BYTES = 4
MODES = ("train", "infer")
def _saved_for_backward(op: Op) -> list:
    """The tensors this layer's gradient reads (what TF keeps alive from forward to backward)."""
    layer, L = op.layer, keras.layers
    activation = getattr(layer, "activation", None)
    has_act = activation is not None and activation is not keras.activations.linear
    if isinstance(layer, L.SeparableConv2D | L.DepthwiseConv2D | L.Conv1D | L.Conv2D | L.Conv3D | L.Dense
                  | L.Conv2DTranspose):
        return op.inputs + (op.outputs if has_act else [])
    if isinstance(layer, L.BatchNormalization | L.Multiply):
        return op.inputs
    if isinstance(layer, L.Activation | L.Softmax | L.ReLU):
        return op.outputs
    if isinstance(layer, L.MaxPooling2D | L.GlobalMaxPooling2D):
        return op.inputs + op.outputs
    if isinstance(layer, L.Dropout):
        return op.outputs  # the keep mask, output-sized
    if isinstance(layer, L.Add | L.Concatenate | L.Flatten | L.Reshape | L.ZeroPadding2D | L.Cropping2D
                  | L.AveragePooling2D | L.GlobalAveragePooling2D | L.Rescaling):
        return []
    return op.inputs + op.outputs  # unknown (custom) layers: assume they keep both


def _extra_intermediates(op: Op) -> int:
    """Elements of intermediates a layer makes besides its outputs: a separable conv's depthwise result; TF's CPU
    LRN kernel, which builds the squared input (input-sized) before its windowed sum."""
    if type(op.layer).__name__ == "LocalResponseNormalization":
        return sum(elements(t) for t in op.inputs)
    if isinstance(op.layer, keras.layers.SeparableConv2D):
        (x,), (y,) = op.inputs, op.outputs
        return elements(y) // y.shape[-1] * x.shape[-1] * op.layer.depth_multiplier
    return 0


def bare_minimum(model: keras.Model, *, batch_size: int, input_shape, mode: str = "train") -> dict:
    """Géron's textbook estimate (float32): parameters plus feature maps, nothing the framework adds."""
    params = model.count_params() * 4
    maps = [sum(elements(t) for t in op.outputs) * 4 for op in graph_ops(model)]
    inputs = math.prod(input_shape) * 4 * batch_size
    if mode == "train":
        breakdown = {"parameters": params, "feature_maps": batch_size * sum(maps), "inputs": inputs}
    else:
        pairs = [a + b for a, b in itertools.pairwise(maps)] or maps
        breakdown = {"parameters": params, "feature_maps": batch_size * max(pairs, default=0)}
    return {"bare_minimum_bytes": sum(breakdown.values()), "breakdown": breakdown}


class _Walk:
    """The live set of one step, walked layer by layer: forward (outputs freed after their last consumer unless a
    gradient needs them), then backward (each layer's saved tensors freed once its gradient is computed)."""

    def __init__(self, ops: list[Op], act_bytes: int, input_batch: int, *, first: int, train: bool,
                 checkpointing: bool):
        self.ops, self.act_bytes, self.first, self.checkpointing = ops, act_bytes, first, checkpointing
        self.size, self.consumers = {}, defaultdict(int)
        for op in ops:
            for t in op.inputs:
                self.consumers[id(t)] += 1
            for t in op.outputs:
                self.size[id(t)] = elements(t) * act_bytes
        for t in ops[0].inputs if ops else []:
            self.size[id(t)] = input_batch
        self.backward = ops[first:] if train else []  # the layers gradients reach
        self.saved = {op.layer.name: [id(t) for t in _saved_for_backward(op)] for op in self.backward}
        if checkpointing and self.backward:
            k = math.isqrt(len(self.backward) - 1) + 1  # ceil(sqrt(n)) segments of ceil(sqrt(n)) layers
            self.segments = [self.backward[i:i + k] for i in range(0, len(self.backward), k)]
            self.keep = {id(t): 1 for seg in self.segments for t in seg[-1].outputs}  # only segment outputs survive
        else:
            self.segments = [self.backward] if self.backward else []
            self.keep = defaultdict(int)  # tensor id → how many backward steps still need it
            for ids in self.saved.values():
                for i in ids:
                    self.keep[i] += 1
        self.live: dict = {}

    def forward_peak(self) -> int:
        ops, live = self.ops, self.live
        peak = 0
        for op in ops:
            for t in op.outputs:
                live[id(t)] = self.size[id(t)]
            extra = _extra_intermediates(op) * self.act_bytes
            peak = max(peak, sum(live.values()) + extra)
            if extra and op.layer.name in self.saved and not self.checkpointing:
                live[("extra", op.layer.name)] = extra
            for t in op.inputs:
                self.consumers[id(t)] -= 1
                if (self.consumers[id(t)] == 0 and not self.keep.get(id(t)) and id(t) in live
                        and t is not ops[0].inputs[0]):
                    del live[id(t)]
        return peak

    def backward_peak(self, peak: int, temporaries: int) -> tuple[int, int]:
        """The step's peak and the weight gradient (with the update's ``temporaries``) alive at it."""
        live, size, grads_at_peak = self.live, self.size, 0
        for segment in reversed(self.segments):
            recomputed = {}
            if self.checkpointing:  # the segment's forward runs again: its saved tensors (and extras) come back
                recomputed = {i: size[i] for op in segment for i in self.saved[op.layer.name] if i not in live}
                recomputed |= {("extra", op.layer.name): _extra_intermediates(op) * self.act_bytes for op in segment}
                live |= recomputed
            for op in reversed(segment):
                grad_out = sum(size[id(t)] for t in op.outputs)
                # no gradient w.r.t. the image, nor w.r.t. a frozen layer's output
                grad_in = 0 if op is self.ops[self.first] else sum(size.get(id(t), 0) for t in op.inputs)
                grads = max((math.prod(w.shape) for w in op.layer.trainable_weights), default=0) * VARIABLE_BYTES
                grads *= temporaries
                now = sum(live.values()) + grads + grad_out + grad_in
                if now > peak:
                    peak, grads_at_peak = now, grads
                if not self.checkpointing:
                    for i in self.saved[op.layer.name]:
                        self.keep[i] -= 1
                        if self.keep[i] == 0 and i in live:
                            del live[i]
                    live.pop(("extra", op.layer.name), None)
            for i in recomputed:
                live.pop(i, None)
            for t in segment[-1].outputs if self.checkpointing else []:
                live.pop(id(t), None)
        return peak, grads_at_peak


def predict_memory(model: keras.Model, *, batch_size: int, input_shape, mode: str = "train",
                   optimizer: str = "adam", precision: str = "float32", frozen_backbone: bool = False,
                   checkpointing: bool = False) -> dict:
    """Predicted peak bytes of one train step (``mode="train"``) or one inference, with its breakdown.

    ``frozen_backbone``: only the head (the layers after the last global pooling / flatten) trains, so gradients stop
    there and nothing before it is kept for backprop. ``checkpointing``: gradient checkpointing in ~sqrt(n) segments
    (Chen et al. 2016, ``tf.recompute_grad``): only segment outputs are kept, each segment's tensors are recomputed
    while its gradient runs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if optimizer not in OPTIMIZER_SLOTS:
        raise ValueError(f"unknown optimizer {optimizer!r} (known: {', '.join(OPTIMIZER_SLOTS)})")
    if precision not in ACTIVATION_BYTES:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(ACTIVATION_BYTES)})")
    act_bytes = ACTIVATION_BYTES[precision] * batch_size
    weights = sum(math.prod(w.shape) for w in model.weights) * VARIABLE_BYTES
    ops = graph_ops(model)
    input_batch = math.prod(input_shape) * ACTIVATION_BYTES[precision] * batch_size
    walk = _Walk(ops, act_bytes, input_batch, first=head_start(ops) if frozen_backbone else 0, train=mode == "train",
                 checkpointing=checkpointing)
    trainable = sum(math.prod(w.shape) for op in walk.backward for w in op.layer.trainable_weights) * VARIABLE_BYTES
    peak, grads_at_peak = walk.backward_peak(walk.forward_peak(), 1 + OPTIMIZER_TEMPORARIES[optimizer])
    slots = OPTIMIZER_SLOTS[optimizer] * trainable
    breakdown = {
        "weights": weights,
        "optimizer_slots": slots,
        "gradients": grads_at_peak,  # a weight gradient + its optimizer temporaries, at the peak
        "activations_peak": peak - grads_at_peak,  # feature maps and their gradients alive at the peak
        "input_batch": input_batch,
    }
    return {"mode": mode, "batch_size": batch_size, "optimizer": optimizer, "precision": precision,
            "frozen_backbone": frozen_backbone, "checkpointing": checkpointing,
            "predicted_bytes": weights + slots + peak + input_batch, "breakdown": breakdown}


def probe(spec: dict) -> dict:
    """The measured peak of a memory spec's step, in a fresh process, as this backend's allocator counts it: on
    TensorFlow its BFC allocator (``memory_probe``, the CPU too); on JAX, XLA's ``peak_bytes_in_use`` in a process
    that loads the compiled step (``jax_probe.measure_case``; GPU only: ``backends`` says where it cannot)."""
    if backends.name() != "jax":
        from cnnbench.measure.memory_probe import measure

        return measure(spec)
    from cnnbench.measure.jax_probe import measure_case

    out = measure_case(spec | {"steps": 3})
    if out["outcome"] != "ok":
        raise ProbeError(f"the JAX memory probe: {out['outcome']}: {out.get('error', '')}")
    return {"measured_peak_bytes": out["peak_bytes"], "measured_peak_with_compile_bytes":
            out.get("peak_with_compile_bytes"), "nvml_used_bytes": out.get("nvml_process_bytes"),
            "device": out.get("device")}


def graph_report(spec: dict, peak: int | None, built: tuple | None = None) -> dict:
    """The traced step's simulated peak (``graph_memory``: ``graph_predicted_bytes``) and its error against a
    measured ``peak``, or why this backend cannot trace it (``graph_skipped``). ``built``: as in ``memory_report``."""
    if why := backends.capability("graph_memory"):
        return {"graph_skipped": why}
    from cnnbench.measure.graph_memory import predict_from_graph

    model, shape = built or build_for_memory(spec)
    traced = predict_from_graph(model, spec | {"mode": spec.get("mode", "train")}, shape)
    return traced | {"graph_alive_at_peak": traced["graph_alive_at_peak"][:10],
                     "graph_relative_error": (traced["graph_predicted_bytes"] - peak) / peak if peak else None}


def memory_report(spec: dict, *, measure: bool = False, built: tuple | None = None, strict: bool = True,
                  graph: bool = False) -> dict:
    """Prediction, bare minimum and (optionally) the measured peak for one memory spec, as one flat dict.

    ``built``: the ``(model, input_shape)`` the spec names, when the caller has it already. The measurement always
    builds its own copy in a fresh process. ``strict=False``: a failed measurement is reported (``measure_error``,
    measured fields null) instead of raised. ``graph``: the traced step's simulated peak beside the layer model's
    (``graph_predicted_bytes``, ``graph_relative_error``; ``graph_memory``).
    """
    from cnnbench.environment import device as local_device

    model, shape = built or build_for_memory(spec)
    batch, mode = spec["batch_size"], spec.get("mode", "train")
    predicted = predict_memory(model, batch_size=batch, input_shape=shape, mode=mode,
                               optimizer=spec.get("optimizer", "adam"), precision=spec.get("precision", "float32"))
    bare = bare_minimum(model, batch_size=batch, input_shape=shape, mode=mode)
    measured: dict = {}
    if measure and (why := backends.capability("measured_memory")):
        measured = {"measure_skipped": why}  # never faked: null, with the reason
    elif measure:
        try:
            measured = probe(spec) | {"allocator": backends.current().ALLOCATOR}
        except (ProbeError, RuntimeError, subprocess.TimeoutExpired) as exc:
            if strict:
                raise
            text = str(exc)  # its first line names the exit status; the tail, what the process said last
            measured = {"measure_error": text if len(text) <= 1000 else f"{text[:200]} … {text[-800:]}"}
    peak = measured.get("measured_peak_bytes")
    traced = graph_report(spec, peak, (model, shape)) if graph else {}
    return traced | {
        "arch": spec.get("arch"), "model_file": spec.get("model_file"), "input_shape": list(shape),
        "batch_size": batch, "mode": mode, "optimizer": predicted["optimizer"], "precision": predicted["precision"],
        "params": model.count_params(),
        "predicted_bytes": predicted["predicted_bytes"], "breakdown": predicted["breakdown"],
        "bare_minimum_bytes": bare["bare_minimum_bytes"], "bare_minimum_breakdown": bare["breakdown"],
        "measured_peak_bytes": peak,
        "measured_peak_min_bytes": measured.get("measured_peak_min_bytes"),
        "resident_before_step_bytes": measured.get("resident_before_step_bytes"),
        "nvml_used_bytes": measured.get("nvml_used_bytes"),
        "nvml_overhead_bytes": measured.get("nvml_overhead_bytes"),
        **({"measured_alive_at_peak": measured["measured_alive_at_peak"]} if "measured_alive_at_peak" in measured
           else {}),
        "relative_error": (predicted["predicted_bytes"] - peak) / peak if peak else None,
        "device": measured.get("device") or f"{local_device()['type'].upper()}:0",
    } | {k: measured[k] for k in ("measure_error", "measure_skipped", "allocator") if k in measured}
