"""Profiles: the sizes that make a run fit a machine. The same builders at every profile; the profile is recorded."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    epochs: int
    batch_size: int
    #: first N examples of each (canonically ordered) split; None = the whole split.
    train_subset: int | None
    test_subset: int | None
    learning_rate: float  # Adam, cosine-decayed to 0 over the run
    seeds: tuple[int, ...]  # the seeds a suite runs
    #: throughput timing: untimed warm-up steps, then `repeats` windows of `steps` steps each.
    warmup_steps: int
    timed_steps: int
    timed_repeats: int
    #: per-architecture builder overrides at this profile (input size, width), by registry name.
    arch_overrides: dict[str, dict] = field(default_factory=dict)

    def model_kwargs(self, arch: str) -> dict:
        return dict(self.arch_overrides.get(arch, {}))

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("arch_overrides")
        return d


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("smoke", "seconds per model: a slice of the data, one epoch — proves the plumbing, not the accuracy",
                epochs=1, batch_size=64, train_subset=2048, test_subset=512, learning_rate=1e-3, seeds=(0,),
                warmup_steps=2, timed_steps=3, timed_repeats=2),
        Profile("cpu", "full data, sized for a 2-core CPU box",
                epochs=12, batch_size=128, train_subset=None, test_subset=None, learning_rate=2e-3, seeds=(0, 1, 2),
                warmup_steps=10, timed_steps=30, timed_repeats=5),
        Profile("gpu", "full data and paper-sized inputs, for one GPU",
                epochs=12, batch_size=128, train_subset=None, test_subset=None, learning_rate=2e-3, seeds=(0, 1, 2),
                warmup_steps=20, timed_steps=100, timed_repeats=5),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        close = difflib.get_close_matches(name, PROFILES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown profile {name!r}{hint} (known: {', '.join(PROFILES)})") from None
