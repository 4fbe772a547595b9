"""The FLOP counter: hand-computed layers, and the published figures of the registered networks."""

import math

import keras
import pytest

import architectures
from cnnbench.measure.flops import count_flops

L = keras.layers


def test_hand_computed_layers():
    x = inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", name="conv")(x)  # 8*8*4 outputs x 3*3*2 = 4,608
    x = L.BatchNormalization(name="bn")(x)  # no MACs; 2 FLOPs per element
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)  # 8*8*4 x 9 = 2,304
    x = L.Conv2D(4, 3, padding="same", groups=2, name="grouped")(x)  # 8*8*4 x 3*3*2 = 4,608
    x = L.SeparableConv2D(6, 3, padding="same", name="sep")(x)  # depthwise 2,304 + pointwise 8*8*6*4 = 1,536
    x = L.MaxPooling2D(2, name="pool")(x)  # 4x4x6 outputs x 4 window elements = 384
    x = L.Conv2DTranspose(2, 3, strides=2, padding="same", name="up")(x)  # 4*4*6 inputs x 9 x 2 = 1,728
    x = L.GlobalAveragePooling2D(name="gap")(x)  # 8*8*2 = 128 elements read
    x = L.Dense(10, activation="relu", name="fc")(x)  # 2 x 10 = 20 MACs; 10 activations
    f = count_flops(keras.Model(inputs, x))
    per = {r["layer"]: r for r in f["per_layer"]}
    assert {k: per[k]["macs"] for k in ("conv", "dw", "grouped", "sep", "up", "fc")} == {
        "conv": 4_608, "dw": 2_304, "grouped": 4_608, "sep": 3_840, "up": 1_728, "fc": 20}
    assert f["macs"] == 17_108 and f["flops"] == 2 * 17_108 and f["train_flops"] == 6 * 17_108
    assert per["bn"]["macs"] == 0 and per["bn"]["other_flops"] == 2 * 256
    assert per["pool"]["other_flops"] == 384 and per["gap"]["other_flops"] == 128 and per["fc"]["other_flops"] == 10
    # activations: conv and dense outputs, a separable conv's depthwise output included
    assert per["sep"]["activations"] == 256 + 384
    assert f["activations"] == 256 + 256 + 256 + (256 + 384) + 128 + 10 and f["uncounted"] == []


def test_a_layer_it_does_not_know_is_listed_not_guessed():
    class Scale(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],))

        def call(self, x):
            return x * self.w

    inputs = keras.Input((4, 4, 3))
    assert count_flops(keras.Model(inputs, Scale(name="mystery")(inputs)))["uncounted"] == ["mystery"]


PUBLISHED = [n for n in architectures.list_models() if architectures.model_info(n).reference_gmacs]


def test_the_published_figures_are_registered():
    assert set(PUBLISHED) >= {"alexnet", "googlenet", "resnet18", "resnet34", "resnet50_tv", "xception"}


def test_reference_precision_is_the_published_digits():
    info = architectures.model_info
    assert info("resnet18").reference_gmacs_precision == pytest.approx(0.0005)  # 1.814
    assert info("xception").reference_gmacs_precision == pytest.approx(0.05)  # 8.4
    assert info("googlenet").reference_gmacs_precision == 0.006  # stated: 12 table rows rounded to 1 M each


@pytest.mark.parametrize("arch", PUBLISHED)
def test_macs_match_the_published_figure_at_its_precision(arch, paper_model):
    info = architectures.model_info(arch)
    f = count_flops(paper_model(arch))
    assert f["uncounted"] == []
    assert abs(f["macs"] / 1e9 - info.reference_gmacs) <= info.reference_gmacs_precision, (f["macs"],
                                                                                          info.gmacs_source)


def test_alexnet_by_hand(paper_model):
    # Fig. 2 at 227: conv1 55x55x96 outputs x 11x11x3; conv2/4/5 see half the channels (two towers); FCs
    convs = (55 * 55 * 96 * 11 * 11 * 3 + 27 * 27 * 256 * 5 * 5 * 48 + 13 * 13 * 384 * 3 * 3 * 256
             + 13 * 13 * 384 * 3 * 3 * 192 + 13 * 13 * 256 * 3 * 3 * 192)
    dense = 6 * 6 * 256 * 4096 + 4096 * 4096 + 4096 * 1000
    per_layer = count_flops(paper_model("alexnet"))["per_layer"]
    assert sum(r["macs"] for r in per_layer if r["type"] == "Dense") == dense == 58_621_952  # the text's 0.059 G
    assert sum(r["macs"] for r in per_layer if r["type"] != "Dense") == convs == 665_784_864  # 0.666 G


def test_lenet_1998_counts_connections_without_biases(paper_model):
    # The paper counts connections incl. biases: C1 122,304 = 117,600 + 4,704; C3 151,600 = 150,000 + 1,600
    lenet = {r["layer"]: r["macs"] for r in count_flops(paper_model("lenet5_1998"))["per_layer"]}
    assert (lenet["c1"], lenet["c3"]) == (117_600, 150_000)


@pytest.mark.parametrize(("arch", "millions"), [("resnet50_tv", 11.11), ("resnet18", 2.48), ("xception", 35.83)])
def test_activations_match_timm_at_its_precision(arch, millions, paper_model):
    assert abs(count_flops(paper_model(arch))["activations"] / 1e6 - millions) <= 0.005


def test_seresnet50_is_the_se_authors_layout():
    """The stride on the first 1x1 (the SE authors' Caffe model, timm's legacy_seresnet50): 3.8605 GMACs of convs and
    FCs; with the SE blocks' pooling and rescaling, which the paper's 3.87 GFLOPs counts, 3.87 at its precision.
    ``convention="torchvision"`` (stride on the 3x3, v1.5) is ResNet-50 v1.5's 4.089 plus the same SE FCs."""
    se = architectures.create_model("seresnet50")
    block = se.get_layer("conv3_block1_1_conv"), se.get_layer("conv3_block1_2_conv")
    assert [layer.strides for layer in block] == [(2, 2), (1, 1)]
    macs = count_flops(se)["macs"]
    se_elementwise = sum(2 * math.prod(layer.output.shape[1:]) for layer in se.layers
                         if isinstance(layer, keras.layers.Multiply))  # squeeze: one add per element; scale: one mul
    assert round(macs / 1e9, 4) == 3.8605 and abs((macs + se_elementwise) / 1e9 - 3.87) <= 0.005
    v15 = count_flops(architectures.create_model("seresnet50", convention="torchvision"))["macs"]
    assert abs(v15 - macs - (4.0892 - 3.8580) * 1e9) < 0.001e9  # the stride's move costs what it costs in ResNet-50
