"""Ablations: what each architectural idea buys, measured in pairs.

An ablation is a set of variants of one registered builder (its keyword switches) — or, for the conv-vs-FC question,
of two registered networks of equal parameter count — run through the same harness on the same data (Fashion-MNIST,
which unlike MNIST does not saturate) with the same seeds, so each seed gives a paired difference. Each cell is an
ordinary run record whose ``config`` carries ``ablation``, ``variant``, ``reference`` and ``claim``, and
``answers``: every (ablation, variant) its experiment answers, as defined when it ran. ``ablation_tables`` reads them
back as paired differences with 95 % intervals, for the report's innovations page and ``cnnbench ablation NAME``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnnbench._util import lookup
from cnnbench.environment import machine_id

TASK = "fashion_mnist"


@dataclass(frozen=True)
class Ablation:
    name: str
    claim: str  # the paper's claim it tests
    arch: str  # the builder whose switches the variants turn (a variant may name another arch: conv_vs_fc)
    variants: dict[str, dict]  # variant → builder keywords (an "arch" key picks another registered network)
    reference: str

    def cells(self, profile: str) -> list[tuple[str, str, dict]]:
        """(variant, arch, builder keywords) for every variant, the shared keywords under the variant's own."""
        out = []
        for variant, switches in self.variants.items():
            switches = dict(switches)
            arch = switches.pop("arch", self.arch)
            out.append((variant, arch, SIZES[arch][profile]["model"] | switches))
        return out


# Run sizes per builder and profile: smoke proves the plumbing in seconds; cpu is sized so the nine ablations fit
# two cores (inputs: Fashion-MNIST's 28x28 zero-padded to 32 for the CIFAR ResNets, resized to 67 for AlexNet).
SIZES = {
    "alexnet_one_tower": {
        "smoke": {"model": {"input_shape": (67, 67, 3), "width": 0.125}, "epochs": 1, "train_subset": 512,
                  "batch_size": 64},
        "cpu": {"model": {"input_shape": (67, 67, 3), "width": 0.25}, "epochs": 4, "train_subset": 10_000,
                "batch_size": 64},
    },
    # half the paper's width (8/16/32 filters) on 8,000 images: a half-width ResNet-56 trains at ~90 images/s on two
    # AVX2 cores, so 15,000 images x 4 epochs cost ~11 minutes a cell
    "resnet20_cifar": {
        "smoke": {"model": {"width": 0.5}, "epochs": 1, "train_subset": 512, "batch_size": 64},
        "cpu": {"model": {"width": 0.5}, "epochs": 3, "train_subset": 8_000, "batch_size": 128},
    },
    "lenet5": {
        "smoke": {"model": {}, "epochs": 1, "train_subset": 512, "batch_size": 64},
        "cpu": {"model": {}, "epochs": 8, "train_subset": None, "batch_size": 128},
    },
}
SIZES["resnet56_cifar"] = SIZES["resnet20_cifar"]
SIZES["mlp"] = SIZES["lenet5"]

ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation("relu_vs_tanh", "AlexNet §3.1, Fig. 1: ReLUs reach 25 % training error six times faster than tanh",
             "alexnet_one_tower", {"relu": {}, "tanh": {"activation": "tanh"}}, "tanh"),
    Ablation("lrn_vs_batchnorm", "AlexNet §3.3: LRN reduces top-1 error by 1.4 % (top-5 1.2 %)", "alexnet_one_tower",
             {"none": {"normalization": None}, "lrn": {}, "batch_norm": {"normalization": "batch"}}, "none"),
    Ablation("overlapping_pooling", "AlexNet §3.4: overlapping 3/2 pooling cuts top-1 error by 0.4 % vs 2/2",
             "alexnet_one_tower", {"overlapping_3_2": {}, "non_overlapping_2_2": {"pool_size": 2}},
             "non_overlapping_2_2"),
    Ablation("dropout", "AlexNet §4.2 (Hinton et al. 2012): dropout 0.5 in fc6/fc7 curbs overfitting",
             "alexnet_one_tower", {"dropout_0.5": {}, "no_dropout": {"dropout": 0.0}}, "no_dropout"),
    Ablation("max_pool_vs_strided_conv", "Springenberg et al. 2015: a stride-2 convolution can replace max pooling",
             "alexnet_one_tower", {"max_pool": {}, "strided_conv": {"downsample": "conv"}}, "max_pool"),
    Ablation("residual", "He et al. §4.2, Fig. 6: plain nets degrade with depth (56 trains worse than 20); with "
             "shortcuts the deeper net is better", "resnet20_cifar",
             {"plain20": {"residual": False}, "resnet20": {},
              "plain56": {"arch": "resnet56_cifar", "residual": False}, "resnet56": {"arch": "resnet56_cifar"}},
             "plain20"),
    Ablation("squeeze_excitation", "Hu et al. 2018: SE blocks improve accuracy for ~10 % more parameters (CIFAR-10 "
             "ResNet-110: 6.37 → 5.21 % error)", "resnet20_cifar", {"plain": {}, "se": {"se_ratio": 16}}, "plain"),
    Ablation("separable_convolutions", "Chollet 2017: depthwise-separable convolutions use parameters more "
             "efficiently; at equal width they cost far fewer parameters and MACs", "resnet20_cifar",
             {"standard": {}, "separable": {"separable": True}}, "standard"),
    Ablation("conv_vs_fc", "Weight sharing and pooling: at equal parameters a CNN beats a fully connected net, most "
             "on shifted images", "lenet5", {"lenet5": {}, "mlp": {"arch": "mlp"}}, "mlp"),
)}


def get_ablation(name: str) -> Ablation:
    return lookup(ABLATIONS, name, "ablation")


def resolve(requested: list[str]) -> list[str]:
    """Ablation names from the command line ('all': every one); an unknown name fails with the list (KeyError)."""
    names = list(ABLATIONS) if requested == ["all"] else requested
    for name in names:
        get_ablation(name)
    return names


def experiment(arch: str, kwargs: dict, profile: str) -> str:
    """What a cell runs — builder, keywords and run sizes — as one string. Variants of different ablations that run
    the same experiment (the paper's AlexNet is the reference of five of them) share one cell and its records."""
    sizes = SIZES[arch][profile]
    return json.dumps([arch, kwargs, sizes["epochs"], sizes["train_subset"], sizes["batch_size"]], sort_keys=True)


def run_configs(names: list[str], profile: str, seeds: tuple[int, ...], **options) -> list:
    """The harness cells of these ablations: every variant x seed, same data, same sizes, each experiment once (it is
    labelled with the first ablation that runs it). Seed-major, so every variant's first seed comes first."""
    from cnnbench.spec import RunConfig

    cells, seen = [], set()
    for seed in seeds:
        # throughput and memory do not depend on the seed: measured once per variant, on the first seed
        measure = {"measure_memory": seed == seeds[0], "measure_throughput": seed == seeds[0],
                   "time_to_target": False}
        for name in names:
            a = get_ablation(name)
            if profile not in SIZES[a.arch]:
                raise ValueError(f"ablations run at the {' or '.join(SIZES[a.arch])} profile, not {profile!r}")
            for variant, arch, kwargs in a.cells(profile):
                exp = experiment(arch, kwargs, profile)
                if (seed, exp) in seen:
                    continue
                seen.add((seed, exp))
                sizes = SIZES[arch][profile]
                cells.append(RunConfig(
                    arch=arch, task=TASK, profile=profile, seed=seed, epochs=sizes["epochs"],
                    batch_size=sizes["batch_size"], train_subset=sizes["train_subset"], model_kwargs=kwargs,
                    recipe=sizes.get("recipe", "plain"),  # its own, not what the profile chose for the MNIST table
                    ablation={"ablation": name, "variant": variant, "reference": variant == a.reference,
                              "claim": a.claim, "experiment": exp, "answers": labels({"experiment": exp}, profile)},
                    **measure | options))
    return cells


def labels(config: dict, profile: str) -> list[dict]:
    """Every (ablation, variant) a record's experiment answers, with that ablation's reference and claim: as written
    when it ran (``answers``); for a record from before that, as the ablations are defined now — none when an ablation
    has been redefined since (other sizes or switches); a record without an experiment string (before cells were
    shared) answers its own label."""
    if "answers" in config:
        return config["answers"]
    exp = config.get("experiment")
    if exp is None:
        return [{"ablation": config["ablation"], "variant": config.get("variant"),
                 "reference": bool(config.get("reference")), "claim": config.get("claim", "")}]
    return [{"ablation": a.name, "variant": v, "reference": v == a.reference, "claim": a.claim}
            for a in ABLATIONS.values() if profile in SIZES[a.arch]
            for v, arch, kwargs in a.cells(profile) if experiment(arch, kwargs, profile) == exp]


def table_text(results_dir, names: list[str]) -> str:
    """The paired table of each ablation from its records, as text."""
    from cnnbench import records

    lines = []
    for t in ablation_tables((r for _, r in records.iter_records(results_dir)), names):
        lines += [f"{t['name']} · profile {t['profile']} · {t['machine']} · seeds {t['seeds']}",
                  f"  claim: {t['claim']}"]
        for v in t["variants"]:
            score = "—" if v["mean"] is None else f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"
            diff = ("reference" if v["reference"] else "no shared seed" if not v["pairs"] else
                    f"{100 * v['diff']:+.2f} pp" + ("" if v["lo"] != v["lo"] else
                                                    f" [{100 * v['lo']:+.2f}, {100 * v['hi']:+.2f}]"))
            extra = "".join(f", {k} {v[k]:{f}}" for k, f in (("gap", "+.3f"), ("shifted", ".3f"),
                                                               ("epochs_to_error", ".1f")) if v[k] is not None)
            params = "—" if v["params"] is None else f"{v['params']:,.0f}"
            failed = f" failed={v['failed']}" if v["failed"] else ""
            lines.append(f"  {v['variant']:<20} n={v['n']}{failed} params {params}, accuracy {score} %, {diff} "
                         f"({v['verdict']}){extra}")
    return "\n".join(lines) if lines else "no ablation records"


# --- analysis: paired differences over seeds ---------------------------------------------------------------

#: Student's t, 97.5th percentile, for 1..30 degrees of freedom (beyond: the normal's 1.960), to four decimals: a
#: three-decimal t (2.776 for 4) moves an interval's end across a rounding edge (−4.7547 instead of −4.7552)
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
         2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518,
         2.0484, 2.0452, 2.0423)


def t975(dof: int) -> float:
    return _T975[dof - 1] if dof <= len(_T975) else 1.960


def _paired(ref: pd.Series, other: pd.Series) -> tuple[float, float, float, int]:
    """Mean paired difference over shared seeds and its 95 % t interval (half-width nan for fewer than 2 pairs)."""
    both = pd.concat([ref, other], axis=1, keys=["ref", "other"]).dropna()
    d = (both["other"] - both["ref"]).to_numpy()
    n = len(d)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    half = t975(n - 1) * d.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half), n


#: the training error the relu_vs_tanh and residual ablations time (AlexNet's Fig. 1 uses 25 % on ImageNet)
TRAIN_ERROR = 0.25


def _epochs_to(curve, error: float):
    """First epoch (1-based) whose training accuracy reaches 1 - ``error``; None when none did."""
    return next((i + 1 for i, a in enumerate(curve or []) if 1 - a <= error), None)


def _row(r: dict) -> dict:
    m = r.get("metrics") or {}
    shifted = m.get("shifted_test_accuracy") or {}
    epochs = _epochs_to(m.get("train_accuracy_curve"), TRAIN_ERROR)
    return {
        "profile": r["profile"], "machine": machine_id(r["env"]),
        "arch": r["arch"], "seed": r["seed"], "outcome": r["outcome"], "started_at": r["started_at"],
        "score": m.get("test_accuracy") if r["outcome"] == "ok" else None,
        "params": (r.get("params") or {}).get("trainable"), "macs": (r.get("flops") or {}).get("macs"),
        "train_img_s": (r.get("throughput") or {}).get("train_images_per_s"),
        "memory": (r.get("memory") or {}).get("measured_peak_bytes"),
        "gap": m["train_accuracy"] - m["test_accuracy"] if "train_accuracy" in m else None,
        "shifted": float(np.mean(list(shifted.values()))) if shifted else None,
        "epochs_to_error": epochs,
        "seconds_to_error": sum((m.get("epoch_seconds") or [])[:epochs]) if epochs else None,
    }


def _mean(v: pd.Series):
    v = v.dropna()
    return float(v.mean()) if len(v) else None


def ablation_tables(run_records: Iterable[dict], names: list[str] | None = None) -> list[dict]:
    """Per (ablation, profile, machine): each variant's mean ± std, paired difference against the reference variant
    over the seeds both finished, and the measurements beside it. A failed cell (oom, diverged, error) is counted,
    and its seed's pair reported incomplete, not dropped silently."""
    rows = [_row(r) | label for r in run_records if r["config"].get("ablation")
            for label in labels(r["config"], r["profile"]) if names is None or label["ablation"] in names]
    if not rows:
        return []
    df = pd.DataFrame(rows).sort_values("started_at").drop_duplicates(  # a cell's latest record counts
        ["ablation", "profile", "machine", "variant", "seed"], keep="last")
    out = []
    for (name, profile, machine), g in df.groupby(["ablation", "profile", "machine"], sort=True):
        refs = g[g["reference"]]["variant"].unique()
        ref = refs[0] if len(refs) else sorted(g["variant"].unique())[0]
        by_seed = g.pivot(index="seed", columns="variant", values="score")
        variants = []
        for variant, v in g.groupby("variant", sort=False):
            ok = v[v["score"].notna()]
            diff, lo, hi, n = _paired(by_seed[ref], by_seed[variant]) if variant != ref else (math.nan,) * 3 + (0,)
            significant = not (math.isnan(lo) or lo <= 0 <= hi)
            variants.append({
                "variant": variant, "arch": v["arch"].iloc[0], "reference": variant == ref, "n": len(ok),
                "failed": int((v["outcome"] != "ok").sum()), "params": _mean(v["params"]), "macs": _mean(v["macs"]),
                "mean": _mean(ok["score"]), "std": float(ok["score"].std(ddof=1)) if len(ok) > 1 else 0.0,
                "diff": diff, "lo": lo, "hi": hi, "pairs": n, "train_img_s": _mean(v["train_img_s"]),
                "memory": _mean(v["memory"]), "gap": _mean(v["gap"]), "shifted": _mean(v["shifted"]),
                "epochs_to_error": _mean(v["epochs_to_error"]), "seconds_to_error": _mean(v["seconds_to_error"]),
                "verdict": "reference" if variant == ref else (
                    "too few paired seeds" if math.isnan(lo) else
                    ("difference measured" if significant else "no difference measured"))})
        out.append({"name": name, "profile": profile, "machine": machine, "reference": ref,
                    "claim": g["claim"].iloc[0], "variants": variants, "seeds": sorted(g["seed"].unique().tolist()),
                    "train_error": TRAIN_ERROR})
    return out
