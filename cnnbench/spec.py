"""A cell — (architecture, task, profile, seed) and its overrides — resolved once into one frozen spec.

``RunConfig`` is what a caller asks for (the CLI, the suite, an ablation, asv); ``resolve`` turns it into a ``Spec``:
the task, the model's registry entry, the profile, and every setting the cell runs with — run sizes, recipe, builder
keywords, the profile's measurement settings. The harness, the suite's plan, asv and the record read the spec; nothing
looks a profile up again. Resolving validates: a cell that cannot run fails here, before any work.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass, field
from typing import ClassVar

import architectures
from cnnbench import distribute
from cnnbench.profiles import RUN_KEYS, Profile, get_profile
from cnnbench.tasks import Task, get_task
from cnnbench.training import Recipe, get_recipe


@dataclass(frozen=True)
class RunConfig:
    arch: str
    task: str = "mnist"
    profile: str = "cpu"
    seed: int = 0
    epochs: int | None = None  # None: the profile's
    batch_size: int | None = None  # None: the profile's
    learning_rate: float | None = None  # None: the profile's (for this architecture)
    data_dir: str | None = None
    measure_memory: bool = True  # peak of one warm train step, measured in a fresh process
    measure_throughput: bool = True  # calibrated train/infer throughput after training (False: record null)
    #: evaluate the test split after every epoch for the time to the task's target accuracy (False: record null;
    #: ablation cells, which compare final accuracies and training curves and would spend a fifth of their time on it)
    time_to_target: bool = True
    dataset: str | None = None  # the task's data source (transfer: fashion_mnist, tfds:NAME, dir:PATH)
    weights: str | None = None  # transfer: imagenet (default), scratch, or a .weights.h5 file
    #: builder keywords over the profile's (an ablation's variant switches, its input and width)
    model_kwargs: dict | None = None
    train_subset: int | None = None  # None: the profile's
    #: an ablation cell: {"ablation": name, "variant": name, "reference": bool, "claim": text}, recorded in config
    ablation: dict | None = None
    recipe: str | None = None  # None: the profile's (for this architecture); see cnnbench.training.RECIPES
    #: the last N training images held out and scored after every epoch, never trained on: how settings are chosen
    #: (the test split chooses nothing). None: the recipe's own (0 for every recipe: records train on the whole split)
    hold_out: int | None = None
    #: one model on several devices (cnnbench.distribute): default | mirrored | multiworker; batch_size per replica
    strategy: str = "default"
    cpu_devices: int | None = None  # split the CPU into this many logical devices (mirrored without GPUs)


@dataclass(frozen=True)
class Spec:
    """What a cell runs with: its request, resolved against its profile (for its model and task)."""

    cfg: RunConfig
    task: Task = field(compare=False)
    info: architectures.ModelInfo
    profile: Profile
    epochs: int
    batch_size: int  # per replica
    learning_rate: float
    recipe: Recipe
    train_subset: int | None  # None: the whole split (transfer: images per class)
    test_subset: int | None
    builder_kwargs: dict  # the profile's builder keywords and the cell's own (``model_kwargs``)
    model_kwargs: dict  # the same with the input shape always set (the registered default where none is)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.model_kwargs["input_shape"])

    @property
    def precise_bn_images(self) -> int:
        return self.profile.precise_bn_images

    #: the settings a plan shows for a cell (``row``)
    ROW: ClassVar[tuple[str, ...]] = ("input", "width", "train subset", "epochs", "batch", "lr", "recipe")

    def row(self) -> tuple[str, ...]:
        held_out = self.recipe.validation_images
        return ("x".join(map(str, self.input_shape)), f"{self.model_kwargs.get('width', 1.0):g}",
                "all" if self.train_subset is None else f"{self.train_subset:,}", str(self.epochs),
                str(self.batch_size), f"{self.learning_rate:g}",
                self.recipe.name + (f", {held_out:,} held out" if held_out else ""))

    def settings(self) -> dict[str, str]:
        """``row`` by name, as records carry it (``config.settings``): what the report shows beside a result and
        what finds earlier runs of a cell for its time estimate."""
        return dict(zip(self.ROW, self.row(), strict=True))

    def determinants(self) -> dict[str, str]:
        """Everything this cell resolves to that determines its numbers besides code, data and seed: ``settings``,
        every builder keyword, the test images and precise batch norm's images. Records carry it
        (``config.determinants``); ``--resume`` and the report compare it in place of the profile's source, so
        editing one model's profile entry leaves the other models' records current. The data source, the starting
        weights and the replica count are named where they apply (not for a default MNIST cell)."""
        cfg = self.cfg
        return self.settings() | {"builder": json.dumps(self.model_kwargs, sort_keys=True),
                                  "test subset": "all" if self.test_subset is None else str(self.test_subset),
                                  "precise bn images": str(self.precise_bn_images)} | (
            {"dataset": cfg.dataset} if cfg.dataset else {}) | (
            {"weights": cfg.weights or "imagenet"} if self.task.takes_weights else {}) | (
            {"cpu devices": str(cfg.cpu_devices)} if cfg.cpu_devices else {})


def make_task(cfg: RunConfig) -> Task:
    return get_task(cfg.task, source=cfg.dataset)


def resolve(cfg: RunConfig) -> Spec:
    """The cell's spec: its overrides, else its profile's settings for the model and task. Validates every name and
    setting before anything runs: unknown names raise KeyError with a did-you-mean; a model of another kind than the
    task's (a classifier on ``segmentation``), a builder keyword the model does not take, a non-positive size or a
    recipe the task cannot follow raise ValueError."""
    info, task, profile = architectures.model_info(cfg.arch), make_task(cfg), get_profile(cfg.profile)
    if info.kind != task.kind:
        fitting = ", ".join(architectures.list_models(kind=task.kind))
        raise ValueError(f"{cfg.arch} is a {info.kind} model; the {cfg.task} task runs {task.kind} models: {fitting}")
    sizes = profile.setting(cfg.arch, cfg.task)
    builder_kwargs = {k: v for k, v in sizes.items() if k not in RUN_KEYS} | (cfg.model_kwargs or {})
    recipe = get_recipe(cfg.recipe or sizes["recipe"])
    if cfg.hold_out is not None:
        recipe = dataclasses.replace(recipe, validation_images=cfg.hold_out)
    s = Spec(cfg=cfg, task=task, info=info, profile=profile, epochs=cfg.epochs or sizes["epochs"],
             batch_size=cfg.batch_size or sizes["batch_size"],
             learning_rate=cfg.learning_rate or sizes["learning_rate"],
             recipe=recipe,
             train_subset=cfg.train_subset or sizes["train_subset"], test_subset=sizes["test_subset"],
             builder_kwargs=builder_kwargs,
             model_kwargs={"input_shape": info.default_input_shape} | builder_kwargs)
    _check(s)
    return s


def _check(s: Spec) -> None:
    cfg, task, info = s.cfg, s.task, s.info
    if s.epochs < 1 or s.batch_size < 1 or not s.learning_rate > 0:
        raise ValueError(f"epochs, batch size and learning rate must be positive, got {s.epochs}, {s.batch_size}, "
                         f"{s.learning_rate}")
    taken = inspect.signature(info.builder).parameters
    if unknown := sorted(set(s.model_kwargs) - set(taken)):
        raise ValueError(f"{cfg.arch}'s builder takes no {', '.join(unknown)} (it takes {', '.join(taken)})")
    if s.recipe != get_recipe("plain") and not task.holds_out_validation:
        raise ValueError(f"the {s.recipe.name} recipe (and a hold-out) works on a classification task's own split; "
                         f"the {cfg.task} task trains by its own recipe (use the plain one, no hold-out)")
    distribute.check(cfg.strategy, cfg.cpu_devices)
    if cfg.strategy != "default" and task.trains_itself:
        raise ValueError(f"the {cfg.task} task trains by its own two-phase recipe on one device: --strategy default")
    if cfg.weights:
        from cnnbench.pretrained import check_weights

        check_weights(cfg.weights)
