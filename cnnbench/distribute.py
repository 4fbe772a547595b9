"""One model on several devices: TensorFlow's own engine (``tf.distribute``) behind ``--strategy``.

* ``default``: one device, TensorFlow's default strategy — what every run did before.
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's GPUs (synchronous data parallelism: each GPU
  holds a copy of the weights and computes the gradient of its slice of the batch; the gradients are all-reduced
  before every update). Without GPUs it mirrors over the CPU's logical devices — ``--cpu-devices N`` splits the CPU
  into N of them; they share the cores and one allocator, so this tests the plumbing and the arithmetic, not a speed-up.
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across processes or hosts, each started with the same
  command and its own ``TF_CONFIG`` (the cluster's ``host:port`` list and this task's index); only the chief (worker
  0, or the ``chief`` task) writes the record.

On Keras' other backends only ``default`` exists (``OneDevice``); the others are refused before any work.

The profile's batch size is per replica: the global batch is it times the replicas, so each device sees the batch it
sees alone. The learning rate is not rescaled (the linear scaling rule is a choice: ``--learning-rate``). Batch norm
normalises each replica's slice by its own statistics, as in the papers' multi-GPU training.
"""

from __future__ import annotations

import contextlib
import json
import os

from cnnbench import backends
from cnnbench._util import lazy
from cnnbench.compat import build_training_state, forget_strategy

tf = lazy("tensorflow")

STRATEGIES = ("default", "mirrored", "multiworker")


class OneDevice:
    """The default strategy of a backend without tf.distribute: one device, nothing to enter."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def split_cpu(devices: int) -> None:
    """Split the CPU into ``devices`` logical devices; must come before TensorFlow's runtime starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError as exc:  # TF's runtime is up: its devices are fixed for this process
        raise RuntimeError(f"the CPU cannot be split into {devices} devices once TensorFlow has started") from exc


def check(name: str, cpu_devices: int | None = None) -> None:
    """Refuse, before any work, what cannot run: an unknown strategy, ``--cpu-devices`` without ``mirrored``,
    ``multiworker`` without ``TF_CONFIG``. ValueError."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    if cpu_devices and name != "mirrored":
        raise ValueError("--cpu-devices splits the CPU for --strategy mirrored")
    if name != "default" and (why := backends.capability("strategies")):
        raise ValueError(f"--strategy {name} is not available on Keras' {backends.name()} backend: {why}")
    if name == "multiworker" and not os.environ.get("TF_CONFIG"):
        raise ValueError("--strategy multiworker needs TF_CONFIG in each worker's environment, e.g. "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                         '"index": 0}}')


def make_strategy(name: str):
    check(name)
    if backends.capability("strategies"):
        return OneDevice()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def describe(name: str, strategy) -> dict:
    """What a record says of how its model was distributed."""
    cluster = _tf_config().get("cluster", {})
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) if name == "multiworker" else 1
    devices = {"devices": list(strategy.extended.worker_devices)} if name != "default" else {}
    return {"strategy": name, "replicas": strategy.num_replicas_in_sync, "workers": workers} | devices


def hardware_units(strategy) -> int:
    """On how many copies of the measured matmul peak the replicas ran (the MFU's denominator): a GPU each, a worker
    each; the CPU's logical devices share one CPU."""
    devices = strategy.extended.worker_devices  # this worker's
    workers = strategy.num_replicas_in_sync // len(devices)
    return workers * (len(devices) if any("GPU" in d for d in devices) else 1)


def across_workers(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def device_peaks(strategy) -> list[int] | None:
    """Each of this worker's GPU replicas' peak bytes so far (TensorFlow's allocator); None for CPU devices, whose
    logical devices share one allocator."""
    devices = strategy.extended.worker_devices
    if not any("GPU" in d for d in devices):
        return None
    return [tf.config.experimental.get_memory_info(d.split("device:")[-1])["peak"] for d in devices]


def _tf_config() -> dict:
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def is_chief() -> bool:
    """Whether this process writes what a (multi-worker) run produces: no TF_CONFIG, the chief, or worker 0 of a
    cluster without a chief."""
    config = _tf_config()
    task = config.get("task", {})
    if not task or task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and "chief" not in config.get("cluster", {})


def prepare_for_fit(model, name: str, dataset) -> None:
    """Make Keras 3's fit() under a strategy do what it does on one device; the model is built and compiled in the
    strategy's scope, and fit() runs inside ``strategy.scope()``.

    * Under a strategy fit() first draws a batch from the dataset to build the model's training state (optimizer
      slots, metrics) ahead of tracing; that is one more pass of the dataset's seeded shuffle, so every epoch would
      see another order than on one device. That build needs only shapes and dtypes: it is done here from the
      dataset's ``element_spec``, and the model is left without a remembered strategy, so fit() takes the ambient
      one and does not draw.
    * Multi-worker only (keras-team/keras#20585, tensorflow#72388): that early draw fails on the nested batch, and
      the mean over workers of each scalar logged metric uses ``axis=0``, which fails on a scalar; the steps return
      each metric as a 1-vector, whose mean over workers is the scalar.

    The variables, the all-reduce of gradients and the data sharding stay TensorFlow's own."""
    if name == "default":
        return
    build_training_state(model, dataset.element_spec)
    forget_strategy(model)
    if name == "multiworker":
        for step_name in ("train_step", "test_step"):
            step = getattr(model, step_name)
            setattr(model, step_name, lambda data, step=step: tf.nest.map_structure(lambda v: tf.reshape(v, [1]),
                                                                                   step(data)))


def replicated_steps(model, strategy, x, y) -> dict:
    """``compiled_steps`` under a strategy: the global batch ``(x, y)`` split into one fixed slice per replica, put
    on its device once; each step runs every replica's slice and returns one value that depends on all of them (so
    reading it back waits for every device)."""
    x, y = tf.constant(x), tf.constant(y)
    with strategy.scope():  # the training state (optimizer slots, metrics) mirrored now, not created while tracing
        build_training_state(model, (x, y))
    replicas = strategy.num_replicas_in_sync
    per = x.shape[0] // replicas

    def slices(context):
        i = context.replica_id_in_sync_group
        return x[i * per:(i + 1) * per], y[i * per:(i + 1) * per]

    batch = strategy.experimental_distribute_values_from_function(slices)
    inputs = strategy.experimental_distribute_values_from_function(lambda context: slices(context)[0])

    def joined(out):
        return tf.add_n([tf.reduce_sum(tf.cast(tf.nest.flatten(v)[0], tf.float32))
                         for v in strategy.experimental_local_results(out)])

    train = tf.function(lambda: joined(strategy.run(model.train_step, args=(batch,))))
    infer = tf.function(lambda: joined(strategy.run(lambda t: model(t, training=False), args=(inputs,))))
    return {"train": train, "infer": infer}
