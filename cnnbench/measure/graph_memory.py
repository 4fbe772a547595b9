"""A step's memory from the graph TensorFlow runs, not from the layers.

The step (a train step: forward, loss, gradients, optimizer update; or inference) is traced as a ``tf.function`` without
running it, Grappler optimises the graph as the runtime does (pruning what the fetches do not need, folding constants,
fusing where it may), and the executor is simulated over the result: ops in a topological order TF's executor can take
(the graph's own order among ready ops), every output allocated when its op runs — its size from the static shape and
dtype — unless the op aliases an input (``Identity``, ``Reshape``, a variable read) or TF forwards an input buffer to it
(an element-wise op whose input has no other reader), and each buffer freed after its last reader; an op's kernel
scratch (``kernels.py``: oneDNN's convolution scratchpads on x86 CPUs) is alive while it runs. A train step's ops also
run side by side, as on the executor's inter-op threads: each op as long as its floating-point work and bytes moved say
(a weight gradient's convolution runs on while the input gradient's chain goes on beside it, holding what it reads).
Variables, the step's arguments and constants are resident throughout; the previous step's outputs are alive until the
step returns (the caller still holds them). The prediction replays that walk through a model of TF's BFC allocator
(``bfc.py``), variables first, a warm-up step and then the steps it measures, because the allocator charges whole
chunks, not tensors — for a train step in the graph's own order and in ``SCHEDULES`` runs on the inter-op threads with
jittered op times, the largest peak, as the measurement takes the largest of several steps. What is left (the allocation
history before the step, which decides where chunks split) is not modelled, and no allowance is added for it.

``simulate`` works on plain ``Node`` lists, so the tests check it on hand-built graphs whose peak is known exactly.
"""

from __future__ import annotations

import heapq
import math
import random
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
    "Reciprocal", "Erf", "Erfc", "Expm1", "Sin", "Cos", "Ceil", "Rint", "Softmax", "LogSoftmax", "BiasAdd", "Select",
    "SelectV2", "ClipByValue", "ZerosLike", "OnesLike", "Inv",
    "SqrtGrad", "RsqrtGrad", "ReciprocalGrad",
})
#: schedules a train step's prediction takes the worst of, beside the graph's own order (``predict_from_graph``),
#: and how much an op's time varies in each (``_schedule``): chosen once, on the generated networks' train steps
#: (28, sweep 20261127T132131), among 1, 4 or 8 schedules and jitters 0, 0.3 and 0.7, for every model and device
SCHEDULES, JITTER = 8, 0.7
#: resident for the whole step, never freed by it
RESIDENT_OPS = frozenset({"Placeholder", "Const", "VarHandleOp", "_Arg"})


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]  # data inputs, "node:index"
    output_bytes: list[int]
    scratch_bytes: int = 0  # taken from the allocator while the op runs and given back when it ends (kernels.py)
    after: list[str] = field(default_factory=list)  # control inputs: nodes that must run first (read nothing)
    work: float = 0.0  # how long it runs, roughly: bytes moved + flops / FLOPS_PER_BYTE (``graph_nodes``)


@dataclass
class Simulation:
    resident_bytes: int
    transient_peak_bytes: int
    peak_at: str  # the node running when the transient peak was reached
    alive_at_peak: list[tuple[str, int]] = field(default_factory=list)  # (tensor, bytes), largest first
    #: the same step through a model of TF's BFC allocator (``bfc.py``): the peak of whole chunks in use, everything
    #: allocated before the step included; None when not asked for
    allocator_peak_bytes: int | None = None

    @property
    def peak_bytes(self) -> int:
        return self.resident_bytes + self.transient_peak_bytes


def _schedule(nodes: list[Node], workers: int = 1, seed: int | None = None, jitter: float = 0.0) -> list:
    """How the executor runs ``nodes``: ``("start", node)`` and ``("end", node)`` in time order. Without a ``seed``:
    one at a time, the graph's own order among ready nodes. With one: TF's executor queues a node when its last
    input (or control input) is produced and ``workers`` inter-op threads take queued nodes first come, first
    served, each running as long as its ``work`` times a random factor (log-normal, ``jitter``: the same op is not
    always as fast) — so ops run side by side, a long one (a weight gradient's convolution) while the short ones
    after its neighbour go on, and each seed is another schedule the same step can take."""
    rng = random.Random(seed)
    index = {n.name: i for i, n in enumerate(nodes)}
    by_name = {n.name: n for n in nodes}
    deps = {n.name: ({t.rsplit(":", 1)[0] for t in n.inputs} | set(n.after)) & index.keys() for n in nodes}
    users: dict[str, list[str]] = {n.name: [] for n in nodes}
    for name, ds in deps.items():
        for d in ds:
            users[d].append(name)
    waiting = {name: len(ds) for name, ds in deps.items()}
    if seed is None:
        workers = 1

    def key(name: str, now: float) -> tuple:
        return (index[name],) if seed is None else (now, index[name])

    ready = [(key(name, 0.0), name) for name, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int, str]] = []
    actions, clock = [], 0.0
    while ready or running:
        while ready and len(running) < workers:
            node = by_name[heapq.heappop(ready)[1]]
            actions.append(("start", node))
            took = node.work * (rng.lognormvariate(0.0, jitter) if jitter else 1.0)
            heapq.heappush(running, (clock + took, len(actions), node.name))
        clock, _, name = heapq.heappop(running)
        actions.append(("end", by_name[name]))
        for u in users[name]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (key(u, clock), u))
    if len(actions) != 2 * len(nodes):
        raise ValueError("the graph has a cycle")
    return actions


def _events(nodes: list[Node], keep: frozenset[str], workers: int = 1, seed: int | None = None,
            jitter: float = 0.0):
    """The executor's walk (``_schedule``) as allocator events, in order: ``("resident", buffer, bytes, tensor)``
    for what lives through the step, ``("alloc", buffer, bytes, tensor)``, ``("run", node)`` once a node's outputs
    and scratch exist, ``("free", buffer)``; a node's scratch is an ``alloc`` before its ``run`` and a ``free`` when it
    ends, as are its inputs that no node still to end reads; the step's outputs, handed to the caller, end it as
    ``("output", buffer)``."""
    readers: dict[str, int] = {}
    for n in nodes:
        for t in n.inputs:
            readers[t] = readers.get(t, 0) + 1
    buffer: dict[str, int] = {}  # tensor → buffer id
    size: dict[int, int] = {}
    refs: dict[int, int] = {}  # live tensors on each buffer
    resident: set[int] = set()
    scratch: dict[str, int] = {}

    def new_buffer(nbytes: int) -> int:
        b = len(size)
        size[b], refs[b] = nbytes, 0
        return b

    def release(t: str, kind: str = "free"):
        b = buffer[t]
        refs[b] -= 1
        if refs[b] == 0 and b not in resident:
            yield kind, b

    for action, n in _schedule(nodes, workers, seed, jitter):
        if action == "end":
            if n.name in scratch:
                yield "free", scratch.pop(n.name)
            for t in n.inputs:
                if t in buffer:
                    readers[t] -= 1
                    if readers[t] == 0 and t not in keep:
                        yield from release(t)
            for i in range(len(n.output_bytes)):  # an output nobody reads is freed at once
                t = f"{n.name}:{i}"
                if readers.get(t, 0) == 0 and t not in keep:
                    yield from release(t)
            continue
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
                        b = sb  # forwarded: the input's buffer becomes the output's (released as the input)
                        break
            if b is None:
                b = new_buffer(nbytes)
                if n.op in RESIDENT_OPS:
                    resident.add(b)
                    yield "resident", b, nbytes, t
                else:
                    yield "alloc", b, nbytes, t
            refs[b] += 1
            buffer[t] = b
        if n.scratch_bytes:
            scratch[n.name] = new_buffer(n.scratch_bytes)
            yield "alloc", scratch[n.name], n.scratch_bytes, f"{n.name} (scratch)"
        yield "run", n
    for t in sorted(keep):  # the step's outputs, handed to the caller, are freed after it
        if t in buffer:
            yield from release(t, "output")


def simulate(nodes: list[Node], *, keep: frozenset[str] = frozenset(),
             allocator_before: list[int] | None = None, steps: int = 3, workers: int = 1, seed: int | None = None,
             jitter: float = 0.0) -> Simulation:
    """Walk ``nodes`` as the executor would; ``keep``: tensors alive to the end (the step's outputs). With
    ``allocator_before`` (the sizes allocated before the first step, in order: variables, optimizer slots), the walk
    is also replayed ``steps`` times through a BFC allocator model, the first a warm-up, and ``allocator_peak_bytes``
    is the largest peak of the others, as the probe measures it. ``workers``, ``seed``, ``jitter``: the schedule
    (``_schedule``)."""
    events = list(_events(nodes, keep, workers, seed, jitter))
    live = peak = resident_bytes = 0
    peak_at, alive_at_peak = "", []
    alive: dict[int, tuple[str, int]] = {}
    for event in events:
        if event[0] == "resident":
            resident_bytes += event[2]
        elif event[0] == "alloc":
            live += event[2]
            alive[event[1]] = (event[3], event[2])
        elif event[0] in ("free", "output"):
            live -= alive.pop(event[1])[1]
        elif live > peak:
            peak, peak_at = live, event[1].name
            alive_at_peak = sorted(alive.values(), key=lambda x: -x[1])
    sim = Simulation(resident_bytes, peak, peak_at, alive_at_peak)
    if allocator_before is not None:
        sim.allocator_peak_bytes = _replay(events, allocator_before, steps)
    return sim


def _replay(events: list, before: list[int], steps: int) -> int:
    from cnnbench.measure.bfc import BFCAllocator

    bfc = BFCAllocator()
    for nbytes in before:
        bfc.allocate(nbytes)
    for event in events:
        if event[0] == "resident":
            bfc.allocate(event[2])
    peaks, held = [], []
    for _ in range(max(steps, 2)):
        bfc.reset_peak()
        handles: dict[int, int] = {}
        outputs = []
        for event in events:
            if event[0] == "alloc":
                handles[event[1]] = bfc.allocate(event[2])
            elif event[0] == "free":
                bfc.free(handles.pop(event[1]))
            elif event[0] == "output":
                outputs.append(handles.pop(event[1]))
        # the caller (``out = step(x)``, a ``y = model(x)`` loop) lets go of a step's outputs only when the next
        # step has returned its own: they are alive through it
        for handle in held:
            bfc.free(handle)
        held = outputs
        peaks.append(bfc.peak)
    return max(peaks[1:])


#: ops that run a forward convolution (Grappler fuses the bias and activation into ``_FusedConv2D``)
CONV_OPS = frozenset({"Conv2D", "_FusedConv2D"})


def scratch_bytes(op, cpu) -> int:
    """The kernel scratch an op takes from TF's allocator on this device (``kernels.py``): forward convolutions under
    oneDNN; 0 for everything else."""
    from cnnbench.measure.kernels import conv_scratch_bytes

    if op.type not in CONV_OPS or cpu is None or op.get_attr("data_format") != b"NHWC":
        return 0
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    shapes = [t.shape for t in (x, w, y)]
    if x.dtype.name != "float32" or not all(s.is_fully_defined() for s in shapes):
        return 0
    (n, ih, iw, ic), (kh, kw, _, oc), (_, oh, ow, _) = (s.as_list() for s in shapes)
    strides, dilations = op.get_attr("strides"), op.get_attr("dilations")
    return conv_scratch_bytes(batch=n, in_hw=(ih, iw), in_c=ic, out_hw=(oh, ow), out_c=oc, kernel=(kh, kw),
                              strides=(strides[1], strides[2]), dilated=max(dilations) > 1, cpu=cpu)


#: floating-point operations a CPU does in the time it moves a byte (an op's time: bytes moved + flops / this)
FLOPS_PER_BYTE = 8


def _flops(op) -> int:
    """A convolution's or product's multiply-adds x 2, from its static shapes; 0 for anything else."""
    shape = lambda t: t.shape.as_list() if t.shape.is_fully_defined() else None  # noqa: E731
    ins, out = [shape(t) for t in op.inputs], shape(op.outputs[0]) if op.outputs else None
    t = op.type
    try:
        if t in ("MatMul", "_FusedMatMul", "BatchMatMulV2"):
            a = ins[0]
            k = a[-2] if op.get_attr("transpose_a" if t != "BatchMatMulV2" else "adj_x") else a[-1]
            return 2 * math.prod(out) * k
        if t in ("Conv2D", "_FusedConv2D"):  # filter [kh, kw, in, out]
            kh, kw, ci, _ = ins[1]
            return 2 * math.prod(out) * kh * kw * ci
        if t in ("DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative"):
            kh, kw, _, _ = ins[1]
            return 2 * math.prod(out) * kh * kw
        if t == "Conv2DBackpropInput":  # (input_sizes, filter, out_backprop)
            kh, kw, ci, _ = ins[1]
            return 2 * math.prod(ins[2]) * kh * kw * ci
        if t == "Conv2DBackpropFilter":  # (input, filter_sizes, out_backprop) → the filter
            kh, kw, ci, _ = out
            return 2 * math.prod(ins[2]) * kh * kw * ci
        if t == "DepthwiseConv2dNativeBackpropInput":
            kh, kw, _, _ = ins[1]
            return 2 * math.prod(ins[2]) * kh * kw
        if t == "DepthwiseConv2dNativeBackpropFilter":
            kh, kw, _, _ = out
            return 2 * math.prod(ins[2]) * kh * kw
    except (TypeError, ValueError, IndexError):  # a shape not static
        return 0
    return 0


def graph_nodes(concrete, cpu=None, device: str = "CPU") -> tuple[list[Node], frozenset[str]]:
    """The nodes of a traced ``ConcreteFunction`` after Grappler for ``device`` (``CPU`` or ``GPU``), with static
    output sizes and, given a ``cpu`` (``kernels.CpuKernels``), each op's kernel scratch; and its outputs."""
    import tensorflow as tf

    from cnnbench.compat import grappler, is_stateful

    graph = concrete.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    # placed, as the runtime places them before Grappler: its remapper fuses for the device (a convolution with its
    # bias, activation or residual sum, as the kernels that run are fused) only where a node has one
    for node in meta.graph_def.node:
        node.device = node.device or f"/job:localhost/replica:0/task:0/device:{device}:0"
    fetch = meta.collection_def["train_op"].node_list.value
    fetch.extend(t.name for t in concrete.outputs)
    fetch.extend(op.name for op in graph.get_operations() if is_stateful(op) and op.type not in RESIDENT_OPS)
    optimized = grappler(meta)
    # shapes from the import's own inference over the graph Grappler returns (an op can keep its name and change
    # its shape there: a ReLU moved after the max pooling it preceded), not the traced graph's, which it records on
    # each node; a variable read's shape, which the export loses with the handle's, is given back by importing the
    # read as a placeholder of that shape (simulated as the read it is)
    reads = {op.name: (op.outputs[0].shape, op.inputs[0].name) for op in graph.get_operations()
             if op.type == "ReadVariableOp" and op.outputs[0].shape.is_fully_defined()}
    converted = set()
    # control edges order a variable's reads after its updates (a read of Adam's ``m`` after ``m.assign_add``):
    # without them a first-come-first-served walk runs such a read, and what it feeds, at the start of the step
    after = {node.name: [i[1:] for i in node.input if i.startswith("^")] for node in optimized.node}
    for node in optimized.node:
        node.attr.pop("_output_shapes", None)
        if node.op == "ReadVariableOp" and node.name in reads:
            converted.add(node.name)
            dtype = node.attr["dtype"].type
            node.op = "Placeholder"
            del node.input[:]
            node.attr.clear()
            node.attr["dtype"].type = dtype
            node.attr["shape"].shape.CopyFrom(reads[node.name][0].as_proto())
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(optimized, name="")

    def nbytes(t) -> int:
        return t.shape.num_elements() * t.dtype.size if t.shape.is_fully_defined() and t.dtype not in (
            tf.resource, tf.variant, tf.string) else 0

    def sizes(op) -> list[int]:
        return [nbytes(t) for t in op.outputs]

    def node(op) -> Node:
        if op.name in converted:
            return Node(op.name, "ReadVariableOp", [reads[op.name][1]], sizes(op), after=after[op.name])
        # a GPU op's time on the executor's thread is its launch, the same for every op; a CPU op's is its work
        work = 1.0 if device == "GPU" else sum(map(nbytes, [*op.inputs, *op.outputs])) + _flops(op) / FLOPS_PER_BYTE
        return Node(op.name, op.type, [t.name for t in op.inputs], sizes(op), scratch_bytes(op, cpu), after[op.name],
                    work)

    nodes = [node(op) for op in g.get_operations()]
    if cpu is not None and cpu.onednn:
        _maxpool_workspaces(nodes)
    return nodes, frozenset(t.name for t in concrete.outputs)


def _maxpool_workspaces(nodes: list[Node]) -> None:
    """oneDNN's max pooling, when a gradient will need it, also outputs a workspace — the argmax of each window, a
    byte per output element (seen in the allocator's records) — which its MaxPoolGrad reads: added as a second output
    and an input of the gradient."""
    by_name = {n.name: n for n in nodes}
    for grad in nodes:
        if grad.op == "MaxPoolGrad" and len(grad.inputs) >= 2:
            pool = by_name.get(grad.inputs[1].rsplit(":", 1)[0])  # MaxPoolGrad(input, output, grad)
            if pool is not None and pool.op == "MaxPool":
                if len(pool.output_bytes) == 1:
                    pool.output_bytes.append(pool.output_bytes[0] // 4)
                grad.inputs.append(f"{pool.name}:1")


def predict_from_graph(model, spec: dict, input_shape) -> dict:
    """The step a memory spec names (``steps.make_step``: the graph the measurement runs), traced and
    simulated: resident bytes (variables, optimizer slots, the batch, constants), the transient peak with the
    kernels' scratch, the op running at it and the tensors alive then — and the prediction, the same walk replayed
    through the BFC allocator model with the variables allocated first (``graph_predicted_bytes``)."""
    import tensorflow as tf

    from cnnbench import environment
    from cnnbench.measure.kernels import this_cpu
    from cnnbench.measure.steps import make_step

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    # TF's executor runs ready ops on its inter-op pool: by default a thread per CPU the process may use
    workers = tf.config.threading.get_inter_op_parallelism_threads() or environment.device()["cpu_cores"]
    step, args = make_step(model, spec, input_shape)
    nodes, keep = graph_nodes(step.get_concrete_function(*args), cpu=this_cpu() if device == "CPU" else None,
                              device=device)
    variables = list(model.variables) + (list(model.optimizer.variables) if spec["mode"] == "train" else [])
    sizes = [math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in variables]
    # a train step's measurement is the largest of several steps, each as TF's executor happened to run it (their
    # peaks differ: a median 3-12 % in the sweeps): so is the prediction, over the graph's own order and SCHEDULES
    # runs on ``workers`` threads with jittered op times. An inference's steps peak alike (a median 0.0 % apart):
    # the graph's own order
    seeds = (None, *range(SCHEDULES)) if spec["mode"] == "train" else (None,)
    sims = [simulate(nodes, keep=keep, allocator_before=sizes, workers=workers, seed=seed, jitter=JITTER)
            for seed in seeds]
    sim = max(sims, key=lambda s: s.allocator_peak_bytes)
    variable_bytes = sum(sizes)
    scratch = max((n.scratch_bytes for n in nodes), default=0)
    return {"graph_predicted_bytes": sim.allocator_peak_bytes,
            "graph_breakdown": {"variables": variable_bytes, "batch, constants": sim.resident_bytes,
                                "transient peak": sim.transient_peak_bytes,
                                "allocator chunks and rounding": sim.allocator_peak_bytes - variable_bytes
                                - sim.peak_bytes},
            "graph_largest_scratch": scratch,
            "graph_schedule_peaks": sorted(s.allocator_peak_bytes for s in sims),
            "graph_peak_at": sim.peak_at, "graph_alive_at_peak": sim.alive_at_peak[:20]}
