"""The model registry: one ``@register`` per network, and the only doors out: ``create_model``, ``list_models``."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras


@dataclass(frozen=True)
class ModelInfo:
    """What the suite knows about a registered network, besides how to build it."""

    name: str
    builder: Callable[..., keras.Model]
    paper: str
    year: int
    innovations: tuple[str, ...]
    default_input_shape: tuple[int, int, int]
    reference_params: int
    #: how ``reference_params`` counts: which weights are included and where the figure comes from.
    param_convention: str
    #: which count ``reference_params`` is compared with: "total" or "trainable" (see ``param_convention``).
    count: str = "total"
    #: keyword arguments this registered name passes to its builder (e.g. a convention choice).
    defaults: dict[str, Any] = field(default_factory=dict)
    #: which variant of the paper this name builds; default: the builder docstring's first paragraph.
    variant_doc: str | None = None
    #: published multiply-accumulates per image at ``default_input_shape`` (conv + dense), and where the figure is from.
    reference_gmacs: float | None = None
    gmacs_source: str | None = None
    #: how precise ``reference_gmacs`` is (±, GMACs); None: half a unit in its last published digit (1.814: 0.0005).
    gmacs_precision: float | None = None
    #: the keras.applications class that builds the same network (for throughput parity), if any.
    keras_equivalent: str | None = None
    #: what the network outputs: "classification" (one class distribution per image) or "segmentation" (one per
    #: pixel); a task runs the models of its kind.
    kind: str = "classification"

    @property
    def variant(self) -> str:
        doc = self.variant_doc or (inspect.getdoc(self.builder) or "").split("\n\n")[0]
        return " ".join(doc.split())

    @property
    def reference_gmacs_precision(self) -> float | None:
        """± of ``reference_gmacs``: as stated, else half a unit in its last digit as written (8.4 → 0.05)."""
        if self.gmacs_precision is not None or self.reference_gmacs is None:
            return self.gmacs_precision
        import decimal

        return 0.5 * 10.0 ** decimal.Decimal(repr(self.reference_gmacs)).as_tuple().exponent

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paper": self.paper,
            "year": self.year,
            "innovations": list(self.innovations),
            "default_input_shape": list(self.default_input_shape),
            "reference_params": self.reference_params,
            "param_convention": self.param_convention,
            "count": self.count,
            "variant": self.variant,
            "reference_gmacs": self.reference_gmacs,
            "gmacs_source": self.gmacs_source,
            "gmacs_precision": self.reference_gmacs_precision,
            "keras_equivalent": self.keras_equivalent,
            "kind": self.kind,
        }


_REGISTRY: dict[str, ModelInfo] = {}
KINDS = ("classification", "segmentation")


def register(
    name: str | None = None,
    *,
    paper: str,
    year: int,
    innovations: tuple[str, ...] | str,
    default_input_shape: tuple[int, int, int],
    reference_params: int,
    param_convention: str,
    count: str = "total",
    variant: str | None = None,
    reference_gmacs: float | None = None,
    gmacs_source: str | None = None,
    gmacs_precision: float | None = None,
    keras_equivalent: str | None = None,
    kind: str = "classification",
    defaults: dict[str, Any] | None = None,
) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Register a keyword-only builder. Stack several ``@register`` to publish variants of one builder; ``defaults``
    are the builder keywords this name passes (checked against the builder's signature here, at import)."""
    defaults = dict(defaults or {})

    def deco(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        key = name or builder.__name__
        if count not in ("total", "trainable"):
            raise ValueError(f"count must be 'total' or 'trainable', got {count!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} registered twice")
        params = inspect.signature(builder).parameters.values()
        if any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise TypeError(f"builder {builder.__name__} must take keyword-only arguments")
        if unknown := sorted(set(defaults) - {p.name for p in params}):
            raise TypeError(f"{key}: builder {builder.__name__} takes no {', '.join(unknown)}")
        _REGISTRY[key] = ModelInfo(
            name=key,
            builder=builder,
            paper=paper,
            year=year,
            innovations=(innovations,) if isinstance(innovations, str) else tuple(innovations),
            default_input_shape=tuple(default_input_shape),
            reference_params=reference_params,
            param_convention=param_convention,
            count=count,
            defaults=defaults,
            variant_doc=variant,
            reference_gmacs=reference_gmacs,
            gmacs_source=gmacs_source,
            gmacs_precision=gmacs_precision,
            keras_equivalent=keras_equivalent,
            kind=kind,
        )
        return builder

    return deco


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})") from None


def list_models(pattern: str | None = None, *, kind: str | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell-style wildcard (``"resnet*"``, any case), ``kind`` keeps one
    kind."""
    return sorted(n for n, info in _REGISTRY.items()
                  if (pattern is None or fnmatch.fnmatchcase(n, pattern.lower())) and kind in (None, info.kind))


def create_model(name: str, **overrides: Any) -> keras.Model:
    """Build a registered model; ``overrides`` go to the builder after the registered defaults."""
    info = model_info(name)
    kwargs = {"input_shape": info.default_input_shape, **info.defaults, **overrides}
    return info.builder(**kwargs)
