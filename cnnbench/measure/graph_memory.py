"""A step's memory from the graph TensorFlow runs, not from the layers.

The step (a train step: forward, loss, gradients, optimizer update; or inference) is traced as a ``tf.function``
without running it, Grappler optimises the graph as the runtime does (pruning what the fetches do not need, folding
constants, fusing where it may), and the executor is simulated over the result: ops in a topological order TF's
executor can take (the graph's own order among ready ops), every output allocated when its op runs — its size from
the static shape and dtype — unless the op aliases an input (``Identity``, ``Reshape``, a variable read) or TF
forwards an input buffer to it (an element-wise op whose input has no other reader), and each buffer freed after its
last reader. Variables, the step's arguments and constants are resident throughout. The prediction is the resident
bytes plus the simulation's peak; what the simulation cannot see (allocator rounding, kernel scratch) is one
allowance per device type (``ALLOWANCE``), the same for every model.

``simulate`` works on plain ``Node`` lists, so the tests check it on hand-built graphs whose peak is known exactly.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

#: ops whose outputs are views of their first input (IdentityN: output i of input i)
ALIAS_OPS = frozenset({"Identity", "IdentityN", "Reshape", "Squeeze", "ExpandDims", "StopGradient", "Snapshot",
                       "PreventGradient", "EnsureShape", "ReadVariableOp", "_Retval", "NoOp"})
#: element-wise kernels that call forward_input_or_allocate_output: an input buffer with no other reader, of the
#: output's size, becomes the output
FORWARDING_OPS = frozenset({
    "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Softplus", "Softsign", "Gelu",
    "ReluGrad", "Relu6Grad", "EluGrad", "SeluGrad", "LeakyReluGrad", "TanhGrad", "SigmoidGrad", "SoftplusGrad",
    "Add", "AddV2", "AddN", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "MulNoNan", "Maximum", "Minimum", "Pow",
    "SquaredDifference", "Neg", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Log1p", "Abs", "Sign", "Floor", "Round",
    "Reciprocal", "Erf", "BiasAdd", "Select", "SelectV2", "ClipByValue", "ZerosLike", "OnesLike", "Inv",
    "SqrtGrad", "RsqrtGrad", "ReciprocalGrad", "_FusedConv2D", "_MklFusedConv2D",  # fused: may forward the addend
})
#: resident for the whole step, never freed by it
RESIDENT_OPS = frozenset({"Placeholder", "Const", "VarHandleOp", "_Arg"})
#: per-device allowance over the simulated peak (allocator rounding, kernels' scratch buffers), one constant per
#: device type, not per model: none yet — the sweeps that would set it have not been run with this predictor
ALLOWANCE = {"CPU": 0, "GPU": 0}


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]  # data inputs, "node:index"
    output_bytes: list[int]


@dataclass
class Simulation:
    resident_bytes: int
    transient_peak_bytes: int
    peak_at: str  # the node running when the transient peak was reached
    alive_at_peak: list[tuple[str, int]] = field(default_factory=list)  # (tensor, bytes), largest first

    @property
    def peak_bytes(self) -> int:
        return self.resident_bytes + self.transient_peak_bytes


def _order(nodes: list[Node]) -> list[Node]:
    """A topological order that keeps the graph's own order among ready nodes (a schedule TF's executor can take)."""
    index = {n.name: i for i, n in enumerate(nodes)}
    deps = {n.name: {t.rsplit(":", 1)[0] for t in n.inputs} & index.keys() for n in nodes}
    users: dict[str, list[str]] = {n.name: [] for n in nodes}
    for name, ds in deps.items():
        for d in ds:
            users[d].append(name)
    waiting = {name: len(ds) for name, ds in deps.items()}
    ready = [index[name] for name, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        out.append(node)
        for u in users[node.name]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, index[u])
    if len(out) != len(nodes):
        raise ValueError("the graph has a cycle")
    return out


def simulate(nodes: list[Node], *, keep: frozenset[str] = frozenset()) -> Simulation:
    """Walk ``nodes`` as the executor would; ``keep``: tensors alive to the end (the step's outputs)."""
    order = _order(nodes)
    readers: dict[str, int] = {}
    for n in order:
        for t in n.inputs:
            readers[t] = readers.get(t, 0) + 1
    buffer: dict[str, int] = {}  # tensor → buffer id
    size: dict[int, int] = {}
    refs: dict[int, int] = {}  # live tensors on each buffer
    resident: set[int] = set()
    owner: dict[int, str] = {}
    live = peak = 0
    peak_at, alive_at_peak = "", []
    resident_bytes = 0

    def release(t: str) -> None:
        nonlocal live
        b = buffer[t]
        refs[b] -= 1
        if refs[b] == 0 and b not in resident:
            live -= size[b]

    for n in order:
        for i, nbytes in enumerate(n.output_bytes):
            t = f"{n.name}:{i}"
            b = None
            if n.op in ALIAS_OPS and n.inputs and n.inputs[min(i, len(n.inputs) - 1)] in buffer:
                b = buffer[n.inputs[min(i, len(n.inputs) - 1)]]
            elif n.op in FORWARDING_OPS:
                for src in n.inputs:
                    sb = buffer.get(src)
                    if (sb is not None and sb not in resident and refs[sb] == 1 and readers[src] == 1
                            and size[sb] == nbytes and src not in keep):
                        b = sb  # forwarded: the input's buffer becomes the output's (released as the input, kept as it)
                        break
            if b is None:
                b = len(size)
                size[b], refs[b], owner[b] = nbytes, 0, t
                if n.op in RESIDENT_OPS:
                    resident.add(b)
                    resident_bytes += nbytes
                else:
                    live += nbytes
            refs[b] += 1
            buffer[t] = b
        if live > peak:
            peak, peak_at = live, n.name
            alive_at_peak = sorted(((owner[b], size[b]) for b, r in refs.items() if r > 0 and b not in resident),
                                   key=lambda x: -x[1])
        for t in n.inputs:
            if t in buffer:
                readers[t] -= 1
                if readers[t] == 0 and t not in keep:
                    release(t)
        for i in range(len(n.output_bytes)):  # an output nobody reads is freed at once
            t = f"{n.name}:{i}"
            if readers.get(t, 0) == 0 and t not in keep:
                release(t)
    return Simulation(resident_bytes, peak, peak_at, alive_at_peak)


def graph_nodes(concrete) -> tuple[list[Node], frozenset[str]]:
    """The nodes of a traced ``ConcreteFunction`` after Grappler, with static output sizes; and its outputs."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = concrete.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    fetch = meta.collection_def["train_op"].node_list.value
    fetch.extend(t.name for t in concrete.outputs)
    fetch.extend(op.name for op in graph.get_operations() if op._is_stateful and op.type not in RESIDENT_OPS)
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta)
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(optimized, name="")

    def nbytes(t) -> int:
        known = t.shape.is_fully_defined() and t.dtype not in (tf.resource, tf.variant, tf.string)
        return t.shape.num_elements() * t.dtype.size if known else 0

    # shapes from the traced graph, where variable reads know theirs; Grappler's new or rewritten nodes from the
    # import's shape inference
    traced = {op.name: (op.type, [nbytes(t) for t in op.outputs]) for op in graph.get_operations()}

    def sizes(op) -> list[int]:
        kind, known = traced.get(op.name, (None, []))
        return known if kind == op.type and len(known) == len(op.outputs) else [nbytes(t) for t in op.outputs]

    nodes = [Node(op.name, op.type, [t.name for t in op.inputs], sizes(op)) for op in g.get_operations()]
    return nodes, frozenset(t.name for t in concrete.outputs)


def predict_from_graph(model, spec: dict, input_shape) -> dict:
    """The step a memory spec names (``memory_probe.make_step``: the graph the measurement runs), traced and
    simulated: resident bytes (variables, optimizer slots, the batch, constants), the transient peak, the op running
    at it and the tensors alive then."""
    import math

    import tensorflow as tf

    from cnnbench.measure.memory_probe import make_step

    step, args = make_step(model, spec, input_shape)
    nodes, keep = graph_nodes(step.get_concrete_function(*args))
    sim = simulate(nodes, keep=keep)
    variables = list(model.variables) + (list(model.optimizer.variables) if spec["mode"] == "train" else [])
    variable_bytes = sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in variables)
    allowance = ALLOWANCE["GPU" if tf.config.list_physical_devices("GPU") else "CPU"]
    return {"graph_predicted_bytes": variable_bytes + sim.peak_bytes + allowance,
            "graph_breakdown": {"variables": variable_bytes, "batch, constants": sim.resident_bytes,
                                "transient peak": sim.transient_peak_bytes, "allowance": allowance},
            "graph_peak_at": sim.peak_at, "graph_alive_at_peak": sim.alive_at_peak[:20]}
