"""What each architectural idea is: its text and paper, and which registered networks introduced it (their registry
innovation strings match its pattern). Its measured effect comes from the ablation records
(``cnnbench.ablations.ablation_tables``)."""

from __future__ import annotations

import re
from dataclasses import dataclass


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
