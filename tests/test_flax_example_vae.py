"""experiments/flax_example_vae.py, the independent Flax-recipe yardstick: it trains and reports finite numbers for
the last iterate and the EMA, per seed and over seeds, on IDX files given as data_dir."""

import gzip
import math
import os
import re

import numpy as np

from experiments import flax_example_vae
from gen_jax import data

from conftest import idx_bytes


def test_yardstick_trains_and_reports_each_seed_and_the_mean(tmp_path, capsys):
    rng = np.random.RandomState(0)
    arrays = (
        rng.randint(0, 256, (200, 6, 6), np.uint8),
        rng.randint(0, 10, 200).astype(np.uint8),
        rng.randint(0, 256, (50, 6, 6), np.uint8),
        rng.randint(0, 10, 50).astype(np.uint8),
    )
    for name, array in zip(data.FASHION_MNIST_FILES, arrays):
        with gzip.open(os.path.join(tmp_path, name + ".gz"), "wb") as f:
            f.write(idx_bytes(array))
    flax_example_vae.main(["--seeds", "0", "1", "--num_steps", "3", "--ema_decay", "0.9", "--data_dir", str(tmp_path)])
    out = capsys.readouterr().out
    per_seed = re.findall(r"seed (\d): last iterate ([\d.]+)\s+EMA 0.9 ([\d.]+)", out)
    assert [seed for seed, _, _ in per_seed] == ["0", "1"]
    assert all(math.isfinite(float(v)) and float(v) > 0 for _, *values in per_seed for v in values)
    assert per_seed[0][1:] != per_seed[1][1:]  # the seeds train different models
    assert re.search(r"last iterate: mean [\d.]+ ± [\d.]+ over 2 seeds", out)
    assert re.search(r"EMA 0.9: mean [\d.]+ ± [\d.]+ over 2 seeds", out)


def test_yardstick_and_gen_jax_compute_the_same_elbo_from_the_same_weights():
    """The two implementations are independent, but the same weights, data and key must give the same −ELBO: the
    yardstick measures the recipe, not a different objective."""
    import jax
    import jax.numpy as jnp

    from gen_jax.tasks import vae

    from conftest import tiny_vae_config

    image_shape, latents = (6, 6, 1), 20
    x = (jax.random.uniform(jax.random.key(0), (8, *image_shape)) > 0.5).astype(jnp.float32)
    example = flax_example_vae.ExampleVAE(pixels=36)
    theirs = example.init(jax.random.key(1), x.reshape(8, -1), jax.random.key(2))["params"]
    config = tiny_vae_config(model__hidden=(500,), model__latent_dim=latents)
    # The same numbers in gen_jax's layout: one encoder head of width 2·latents = [mean | log_var].
    head_mean, head_log_var = theirs["encoder"]["Dense_1"], theirs["encoder"]["Dense_2"]
    ours = {
        "encoder": {
            "Dense_0": theirs["encoder"]["Dense_0"],
            "Dense_1": {
                "kernel": jnp.concatenate([head_mean["kernel"], head_log_var["kernel"]], 1),
                "bias": jnp.concatenate([head_mean["bias"], head_log_var["bias"]]),
            },
        },
        # Their decoder creates its output layer first, so Flax numbers it Dense_0.
        "decoder": {"Dense_0": theirs["decoder"]["Dense_1"], "Dense_1": theirs["decoder"]["Dense_0"]},
    }
    key = jax.random.key(5)
    model = vae.build_model(config, image_shape)
    expected = flax_example_vae.negative_elbo(example, theirs, x.reshape(8, -1), key)
    terms = vae.per_example_terms(model, "bernoulli", ours, x, key)
    np.testing.assert_allclose(float(jnp.mean(terms["neg_elbo"])), float(expected), rtol=1e-5)
