"""GoogLeNet (Inception v1) — Szegedy et al., "Going deeper with convolutions", CVPR 2015 (arXiv:1409.4842, 2014)."""

from __future__ import annotations

import keras
from keras import layers

from architectures._layers import LocalResponseNormalization, check_args, classifier, feature_pooling, scaled
from architectures._registry import register

#: Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
AUX_WEIGHT = 0.3


def _conv(x, filters, kernel, name, strides=1):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", activation="relu", name=name)(x)


def _lrn(name):
    # bvlc_googlenet: LRN local_size 5, alpha 1e-4 (Caffe: averaged over the window), beta 0.75, k 1.
    return LocalResponseNormalization.caffe(local_size=5, alpha=1e-4, beta=0.75, name=name)


def inception(x, widths, name, width=1.0):
    """One inception module: 1x1 | 1x1→3x3 | 1x1→5x5 | 3x3 max pool→1x1, concatenated on channels."""
    b1, r3, b3, r5, b5, pp = (scaled(n, width) for n in widths)
    branch1 = _conv(x, b1, 1, f"inception_{name}_1x1")
    branch3 = _conv(_conv(x, r3, 1, f"inception_{name}_3x3_reduce"), b3, 3, f"inception_{name}_3x3")
    branch5 = _conv(_conv(x, r5, 1, f"inception_{name}_5x5_reduce"), b5, 5, f"inception_{name}_5x5")
    pool = layers.MaxPooling2D(3, strides=1, padding="same", name=f"inception_{name}_pool")(x)
    branch_pool = _conv(pool, pp, 1, f"inception_{name}_pool_proj")
    return layers.Concatenate(name=f"inception_{name}_output")([branch1, branch3, branch5, branch_pool])


def _aux_head(x, classes, name, width, activation):
    """Auxiliary classifier (paper §5): avg pool 5/3, 1x1 conv 128, FC 1024, dropout 0.7, FC classes."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_ave_pool")(x)
    x = _conv(x, scaled(128, width), 1, f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(scaled(1024, width), activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return classifier(x, classes, activation, name=f"{name}_classifier")


@keras.saving.register_keras_serializable("cnnbench")
class AuxiliaryLossModel(keras.Model):
    """A network whose auxiliary classifiers add ``aux_weight`` x their loss in training and vanish at inference.

    Wraps a functional net with outputs ``[main, aux1, aux2, ...]``. ``call`` returns only the main output; in
    training it keeps the auxiliary predictions, and ``compute_loss`` adds their loss (the compiled loss function,
    same labels) with the paper's weight.
    """

    def __init__(self, net: keras.Model, aux_weight: float = AUX_WEIGHT, **kwargs):
        super().__init__(name=kwargs.pop("name", net.name), **kwargs)
        self.net, self.aux_weight = net, aux_weight
        self._aux_predictions = ()
        self.built = net.built  # nothing of its own to build: count_params() and summary() work before a call

    def call(self, x, training=False):
        main, *aux = self.net(x, training=training)
        self._aux_predictions = tuple(aux) if training else ()
        return main

    def compute_output_shape(self, input_shape):
        return self.net.compute_output_shape(input_shape)[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if training and self._aux_predictions:
            loss_fn = keras.losses.get(self.loss)
            aux_losses = [keras.ops.mean(loss_fn(y, p)) for p in self._aux_predictions]
            loss = loss + self.aux_weight * keras.ops.sum(keras.ops.stack(aux_losses))
        return loss

    def get_config(self):
        return {"net": keras.saving.serialize_keras_object(self.net), "aux_weight": self.aux_weight,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config.pop("net")), **config)


@register(
    "googlenet",
    paper="Szegedy et al., Going deeper with convolutions, CVPR 2015, arXiv:1409.4842",
    year=2014,
    innovations=("inception modules (parallel 1x1/3x3/5x5/pool branches)", "1x1 bottleneck reductions",
                 "global average pooling head (from Network in Network, Lin et al. 2013)", "auxiliary classifiers"),
    default_input_shape=(224, 224, 3),
    reference_params=6_998_552,
    param_convention="weights + biases, no aux heads (Caffe bvlc_googlenet); aux heads add 3,188,840 + 3,190,888",
    reference_gmacs=1.586,
    gmacs_precision=0.006,
    gmacs_source="the paper's Table 1 ops column summed with conv1 recomputed (the table lists 34M for conv1, "
                 "112x112x64x7x7x3 = 118M; as printed the column sums to 1.502 G, the text's '1.5 billion'); its 12 "
                 "rows are rounded to 1 M, hence +-0.006 G",
)
def googlenet(*, input_shape=(224, 224, 3), classes: int = 1000, include_top: bool = True, pooling: str | None = None,
              aux_logits: bool = False, width: float = 1.0,
              classifier_activation: str | None = "softmax") -> keras.Model:
    """GoogLeNet as in the paper (Table 1 widths, 5x5 branches, LRN, conv biases, no batch norm). Convolutions and
    pools use TF's ``"same"`` padding, which pads the extra row and column of a strided layer at the bottom/right;
    Caffe's bvlc_googlenet pads symmetrically and rounds pooled sizes up. The map sizes are Table 1's (112, 56, 28, 14,
    7) either way; the pixels each strided window sees are shifted by one.

    Stem: conv 7x7/2 → max pool 3/2 → LRN → conv 1x1 → conv 3x3 → LRN → max pool 3/2; inception 3a-3b, pool,
    4a-4e, pool, 5a-5b; global average pooling, dropout 0.4, linear classifier. 6,998,552 parameters.
    ``aux_logits=True`` attaches the two auxiliary classifiers (on 4a and 4d) and returns a model that adds 0.3 x
    their loss in training and returns only the main output at inference.
    """
    input_shape = check_args(input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling,
                             min_size=80 if aux_logits else 32, name="googlenet")
    w = lambda n: scaled(n, width)  # noqa: E731
    inputs = keras.Input(input_shape, name="input")
    x = _conv(inputs, w(64), 7, "conv1_7x7_s2", strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_3x3_s2")(x)
    x = _lrn("pool1_norm1")(x)
    x = _conv(x, w(64), 1, "conv2_3x3_reduce")
    x = _conv(x, w(192), 3, "conv2_3x3")
    x = _lrn("conv2_norm2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2_3x3_s2")(x)
    aux = []
    for stage in ("3a", "3b", "pool3", "4a", "4b", "4c", "4d", "4e", "pool4", "5a", "5b"):
        if stage.startswith("pool"):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{stage}_3x3_s2")(x)
            continue
        x = inception(x, INCEPTION[stage], stage, width)
        if aux_logits and include_top and stage in ("4a", "4d"):
            aux.append(_aux_head(x, classes, f"loss{len(aux) + 1}", width, classifier_activation))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="pool5_7x7_s1")(x)
        x = layers.Dropout(0.4, name="pool5_drop_7x7_s1")(x)
        x = classifier(x, classes, classifier_activation, name="loss3_classifier")
    else:
        x = feature_pooling(x, pooling)
    if aux:
        return AuxiliaryLossModel(keras.Model(inputs, [x, *aux], name="googlenet"), name="googlenet")
    return keras.Model(inputs, x, name="googlenet")
