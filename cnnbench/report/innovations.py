"""What each architectural idea is (text, with its paper), and its measured effect from ablation records.

An ablation record is a run record whose ``config`` carries ``ablation`` (its name) and ``variant``; variants of one
ablation share seeds, so each seed gives a paired difference against the ablation's reference variant (the one marked
``config.reference``, else the first by name).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnnbench.environment import machine_id


@dataclass(frozen=True)
class Innovation:
    key: str
    title: str
    paper: str
    text: str
    #: matches the registry's innovation strings of the architectures that introduced (or adopted) it
    pattern: str

    def matches(self, innovation: str) -> bool:
        return re.search(self.pattern, innovation, re.IGNORECASE) is not None


INNOVATIONS = (
    Innovation("conv", "Convolution and subsampling trained end to end", "LeCun et al. 1989; 1998 (LeNet-5)",
               "Small kernels share their weights across every position of the image, so a feature detector learnt in "
               "one place works everywhere, with far fewer parameters than a fully connected layer. Subsampling "
               "(pooling) after each convolution makes the features tolerant of small shifts and distortions.",
               r"convolution \+ subsampling|weight sharing"),
    Innovation("relu", "ReLU", "Nair & Hinton 2010; used at scale by AlexNet (Krizhevsky et al. 2012, §3.1)",
               "max(0, x) does not saturate for positive inputs, so gradients do not vanish as they do through tanh or "
               "sigmoid units; AlexNet reports reaching 25 % training error six times faster than with tanh.",
               r"\bReLU\b"),
    Innovation("lrn", "Local response normalisation", "Krizhevsky et al. 2012, §3.3",
               "Each activation is divided by (k + α · the sum of squares of the same position's activations in n "
               "neighbouring channels)^β — a lateral inhibition across channels, not a normalisation by a mean and a "
               "variance. AlexNet credits it with 1.4 % top-1; VGG (2014) found no gain and batch normalisation "
               "replaced it.", r"local response normalisation"),
    Innovation("pool", "Overlapping max pooling", "Krizhevsky et al. 2012, §3.4",
               "Pooling windows of 3 with stride 2, so neighbouring windows overlap; AlexNet reports 0.3–0.4 % lower "
               "error than non-overlapping 2/2 pooling and slightly less overfitting.", r"overlapping max pooling"),
    Innovation("dropout", "Dropout", "Hinton et al. 2012; Srivastava et al. 2014 (JMLR); used by AlexNet, §4.2",
               "During training each hidden unit is zeroed with probability 0.5, so units cannot co-adapt and the "
               "network behaves like an average of many thinned networks. AlexNet used it in its first two fully "
               "connected layers; it did not invent it.", r"dropout"),
    Innovation("vgg", "Depth from stacked 3x3 convolutions", "Simonyan & Zisserman 2014 (VGG)",
               "Two 3x3 convolutions see a 5x5 window and three a 7x7 one, with fewer parameters and more "
               "non-linearities than one large kernel; uniform blocks made depth the variable to study.",
               r"stacked 3x3"),
    Innovation("inception", "Inception modules with 1x1 reductions", "Szegedy et al. 2014 (GoogLeNet)",
               "Parallel 1x1, 3x3, 5x5 and pooling branches are concatenated, so each block mixes receptive field "
               "sizes; 1x1 convolutions reduce the channels before the expensive branches, keeping the compute "
               "budget. Global average pooling (from Network in Network, Lin et al. 2013) replaces the large dense "
               "head.", r"inception modules|1x1 bottleneck|global average pooling|auxiliary"),
    Innovation("residual", "Residual connections", "He et al. 2015 (ResNet)",
               "Each block learns a residual F(x) added to its input (an identity shortcut), so a deeper network can "
               "at worst copy a shallower one; this removed the degradation problem, where deeper plain networks "
               "trained to a higher error. Batch normalisation (Ioffe & Szegedy 2015) is used throughout but was "
               "introduced separately.", r"residual \(identity|bottleneck blocks"),
    Innovation("se", "Squeeze-and-excitation", "Hu et al. 2017 (SENet)",
               "A block pools each channel to one number (squeeze), passes the vector through a small bottleneck MLP "
               "ending in a sigmoid (excitation) and rescales the channels by it: channel attention for about 10 % "
               "more parameters.", r"squeeze-and-excitation"),
    Innovation("separable", "Depthwise-separable convolutions", "Chollet 2016 (Xception); Sifre 2014",
               "A per-channel spatial convolution followed by a 1x1 convolution across channels replaces a full "
               "convolution: for k x k kernels and C output channels about 1/C + 1/k² of the multiply-accumulates.",
               r"depthwise"),
    Innovation("compound", "Compound scaling", "Tan & Le 2019 (EfficientNet)",
               "Depth, width and input resolution are scaled together by fixed ratios instead of one at a time; the "
               "blocks are MobileNetV2's inverted residuals (Sandler et al. 2018).", r"compound scaling"),
    Innovation("fcn", "Fully convolutional networks", "Long, Shelhamer & Darrell 2015",
               "Dense layers become convolutions, so a classifier outputs a coarse score map for any input size; "
               "in-network upsampling returns it to pixels, and skip connections fuse coarse semantics with fine "
               "appearance (FCN-32s → 16s → 8s).", r"fully convolutional|skip connections fusing|upsampling"),
)


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
    from cnnbench.ablations import labels

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
