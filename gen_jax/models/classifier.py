"""A small image classifier whose penultimate layer is the feature space of the sample-quality metrics.

Each labelled data set gets its own classifier, trained inside the project (`gen_jax/tasks/classifier.py`; committed
for digits and Fashion-MNIST, else cached); `gen_jax/sample_quality.py` computes the classifier FID, classifier
score and precision/recall on its features (the Inception FID of papers is `gen_jax/inception.py`'s).  Pure Flax
module: no randomness, no state beyond parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from gen_jax.models import upsampling


class Classifier(nn.Module):
    """x f32[B, H, W, C] in [0, 1] -> (logits f32[B, num_classes], features f32[B, feature_dim]).

    Stride-2 3×3 'SAME' convolutions with ReLU, then one hidden Dense layer with ReLU whose output is the feature
    vector, then a linear layer to the class logits.

    nn.Conv semantics; conv_impl only changes how gradients are computed: every value of `config.CONV_IMPLS` gives
    the same function, parameter tree and checkpoints ("dual_grad" and "subpixel": `upsampling.FastConv`, whose
    gradients stay fast on XLA:CPU inside the training loop's `lax.scan`; faster per step there than `nn.Conv`,
    measured in benchmarks/README.md).
    """

    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    feature_dim: int = 128
    conv_impl: str = "dual_grad"

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x
        for i, width in enumerate(self.conv_features):
            h = nn.relu(upsampling.conv(width, (3, 3), (2, 2), conv_impl=self.conv_impl, name=f"Conv_{i}")(h))
        features = nn.relu(nn.Dense(self.feature_dim)(h.reshape(h.shape[0], -1)))
        return nn.Dense(self.num_classes)(features), features
