"""The Flax examples' VAE recipe, written independently of gen_jax, on the same Fashion-MNIST data: a yardstick.

    python -m experiments.flax_example_vae --seeds 0 1 2 [--ema_decay 0.99]

The recipe of flax/examples/vae: encoder Dense 500 + ReLU -> Dense 20 (mean), Dense 20 (log-variance); decoder
Dense 500 + ReLU -> Dense 784 (Bernoulli logits); loss = mean over the batch of (binary cross-entropy summed over
pixels + analytic KL); Adam 1e-3; batch 128 from an endless shuffled stream (tf.data's repeat().shuffle()); the
test loss is one z per image on the whole test split.  Here: pixels binarised at 0.5, 4,680 steps (10 epochs),
as `experiments/configs/vae_mlp_fashion_mnist.py` trains.  It prints, per seed, the test −ELBO of the last
iterate and of an exponential moving average of the parameters (decay min(d, (1 + t) / (10 + t)), the rule
gen_jax uses), so gen_jax's numbers can be compared with the recipe's own on this machine.
"""

from __future__ import annotations

import argparse
import statistics

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import data


class Encoder(nn.Module):
    """x f32[B, P] -> (mean, log_var), each f32[B, latents]: Dense 500 + ReLU, then two Dense heads."""

    latents: int = 20

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(500)(x))
        return nn.Dense(self.latents)(h), nn.Dense(self.latents)(h)


class Decoder(nn.Module):
    """z f32[B, D] -> Bernoulli logits f32[B, pixels]: Dense 500 + ReLU, then Dense."""

    pixels: int = 784

    @nn.compact
    def __call__(self, z):
        return nn.Dense(self.pixels)(nn.relu(nn.Dense(500)(z)))


class ExampleVAE(nn.Module):
    """(x f32[B, pixels], key) -> (logits f32[B, pixels], mean f32[B, 20], log_var f32[B, 20]), z drawn from `key`."""

    pixels: int = 784

    def setup(self):
        self.encoder, self.decoder = Encoder(), Decoder(self.pixels)

    def __call__(self, x, key):
        mean, log_var = self.encoder(x)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, log_var.shape)
        return self.decoder(z), mean, log_var


def negative_elbo(model, params, x, key):
    """Batch mean of −ELBO in nats: Bernoulli cross-entropy summed over pixels plus KL(q(z|x) ‖ N(0, I))."""
    logits, mean, log_var = model.apply({"params": params}, x, key)
    cross_entropy = -jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), axis=-1)
    kl = -0.5 * jnp.sum(1 + log_var - mean**2 - jnp.exp(log_var), axis=-1)
    return jnp.mean(cross_entropy + kl)


def train_one_seed(
    seed: int, train_x: np.ndarray, test_x: np.ndarray, num_steps: int, batch_size: int, ema_decays: list[float]
) -> dict[str, float]:
    """Trains the recipe for one seed and scores it on the whole test split.

    Args:
      seed: seeds the initialisation, the z draws and the host-side shuffle.
      train_x, test_x: f32[N, P] flattened binary images.
      num_steps: Adam steps.
      batch_size: examples per step.
      ema_decays: decays d of the parameter EMAs to score besides the last iterate.

    Returns:
      {"last iterate": …, "EMA <d>": … for each d}: test −ELBO, nats per example summed over pixels (one z each).
    """
    model = ExampleVAE(pixels=train_x.shape[1])
    tx = optax.adam(1e-3)
    rng = jax.random.key(seed)
    rng, init_key, z_key = jax.random.split(rng, 3)
    params = model.init(init_key, jnp.ones((batch_size, train_x.shape[1])), z_key)["params"]
    opt_state = tx.init(params)
    averages = {decay: params for decay in ema_decays}

    @jax.jit
    def train_step(params, opt_state, averages, x, key, step):
        loss, grads = jax.value_and_grad(lambda p: negative_elbo(model, p, x, key))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ramp = (1.0 + step) / (10.0 + step)
        averages = {d: optax.incremental_update(params, a, 1.0 - jnp.minimum(d, ramp)) for d, a in averages.items()}
        return params, opt_state, averages, loss

    evaluate = jax.jit(lambda p, key: negative_elbo(model, p, jnp.asarray(test_x), key))
    host_rng = np.random.RandomState(seed)
    epochs = num_steps * batch_size // len(train_x) + 2
    stream = np.concatenate([host_rng.permutation(len(train_x)) for _ in range(epochs)])
    for step in range(num_steps):
        rng, key = jax.random.split(rng)
        batch = train_x[stream[step * batch_size : (step + 1) * batch_size]]
        params, opt_state, averages, _ = train_step(params, opt_state, averages, batch, key, step)
    rng, key = jax.random.split(rng)
    results = {"last iterate": float(evaluate(params, key))}
    results.update({f"EMA {d}": float(evaluate(a, key)) for d, a in averages.items()})
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ema_decay", type=float, nargs="*", default=[0.99])
    parser.add_argument("--num_steps", type=int, default=4680)
    parser.add_argument("--data_dir", default="", help="directory of the Fashion-MNIST IDX files (see gen_jax/data.py)")
    args = parser.parse_args(argv)
    dataset = data.load_dataset("fashion_mnist", args.data_dir or None)
    train_x = data.preprocess(dataset.train_images, "static").reshape(len(dataset.train_images), -1)
    test_x = data.preprocess(dataset.test_images, "static").reshape(len(dataset.test_images), -1)
    per_seed = []
    for seed in args.seeds:
        results = train_one_seed(seed, train_x, test_x, args.num_steps, 128, args.ema_decay)
        per_seed.append(results)
        print(f"seed {seed}: " + "   ".join(f"{name} {value:.2f}" for name, value in results.items()), flush=True)
    if len(per_seed) > 1:
        for name in per_seed[0]:
            values = [r[name] for r in per_seed]
            print(
                f"{name}: mean {statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} "
                f"over {len(values)} seeds (test −ELBO, nats)"
            )


if __name__ == "__main__":
    main()
