"""Every private Keras or TensorFlow name the suite uses, in one place (pinned: ``keras>=3.15,<4``, TensorFlow
2.21). Each function says what it reaches into and why no public API does it; an upgrade of either checks this file
and its tests (test_distribute, test_graph_memory, test_bfc_kernels, test_memory) first."""

from __future__ import annotations


def first_call(model) -> tuple[list, list] | None:
    """The outer tensors a nested model was first called on and returned (``_inbound_nodes[0]``), None where it was
    never called. The public ``Operation.input``/``.output`` give these for a layer, but a functional model overrides
    both to return its own constructor tensors."""
    nodes = model._inbound_nodes
    return (list(nodes[0].input_tensors), list(nodes[0].output_tensors)) if nodes else None


def build_training_state(model, data_batch) -> None:
    """Create the optimizer's slots, the loss and the metrics' state from shapes and dtypes alone, as ``fit()`` does
    first from a real batch (``Model._symbolic_build``; no public entry point builds all three)."""
    model._symbolic_build(data_batch=data_batch)


def forget_strategy(model) -> None:
    """Let ``fit()`` take the ambient ``tf.distribute`` strategy instead of the one the model remembered at build
    (``Model._distribute_strategy``): it then does not draw a batch to build its state (cnnbench.distribute)."""
    model._distribute_strategy = None


def is_stateful(op) -> bool:
    """Whether a graph op has side effects (``Operation._is_stateful``): a pruned graph must still fetch it."""
    return op._is_stateful


def grappler(meta_graph):
    """The GraphDef Grappler makes of a MetaGraphDef with the default rewrites, as the runtime runs a tf.function
    (``tensorflow.python.grappler.tf_optimizer``: not exported)."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    return tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta_graph)


def onednn_enabled() -> bool:
    """Whether this TensorFlow runs oneDNN's CPU kernels (``_pywrap_util_port.IsMklEnabled``: TF's own flag, which
    ``TF_ENABLE_ONEDNN_OPTS`` and the CPU decide)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def xspace(data: bytes):
    """A profiler trace (``*.xplane.pb``) parsed: TensorFlow writes it but exports no reader of its protobuf."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(data)
    return space
