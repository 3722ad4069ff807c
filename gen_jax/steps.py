"""Train states and steps: `train_step(state, batch, key) -> (state, metrics)`.

`make_train_step(loss_fn)` is the step of every family trained by one loss (AE, VAE, classifier, …); the GAN has
its own (`make_gan_train_step`).  Each returns a pure function that `train.py` fuses into `lax.scan` and jits;
sharding is declared there too, never here.  `batch` is
{"image": f32[B, H, W, C], "label": i32[B]}; `key` is the step's own key, fold_in(train_key, step), split here
for each use.  Metrics are scalars: per-example quantities are batch means, in nats per example.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from gen_jax import hyper, losses


class TrainState(train_state.TrainState):
    """params, opt_state and an int32 step; `apply_fn` and `tx` are static (not saved)."""

    def inference_params(self):
        """The parameters to evaluate and sample with: here the last iterate."""
        return self.params


class EMATrainState(TrainState):
    """A TrainState that also keeps `ema_params`, an exponential moving average of the parameters after each
    update (Polyak averaging), and evaluates and samples with it; `ema_decay` is static (not saved).

    Why average: at a fixed learning rate the last iterate jitters around the optimum; its running average sits
    closer to it, the training trajectory itself unchanged (the README's VAE section measures the gain).  A separate
    class, so states without an EMA keep the checkpoint layout they always had.
    """

    ema_params: Any = None
    ema_decay: float = struct.field(pytree_node=False, default=0.99)

    def apply_gradients(self, *, grads, **kwargs) -> EMATrainState:
        updated = super().apply_gradients(grads=grads, **kwargs)
        step_size = 1.0 - ema_decay_at(self.step, hyper.value("ema_decay", self.ema_decay))
        return updated.replace(ema_params=optax.incremental_update(updated.params, self.ema_params, step_size))

    def inference_params(self):
        """The parameters to evaluate and sample with: the EMA."""
        return self.ema_params


def create_train_state(model, params, tx: optax.GradientTransformation, ema_decay: float = 0.0) -> TrainState:
    """The state at step 0: a TrainState, or with `ema_decay` in (0, 1) an EMATrainState."""
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1) (0 = no EMA), got {ema_decay}")
    if ema_decay:
        # A copy, not an alias: the loop donates the state's buffers, and one buffer must not appear twice.
        state = EMATrainState.create(
            apply_fn=model.apply,
            params=params,
            tx=tx,
            ema_params=jax.tree.map(jnp.copy, params),
            ema_decay=float(ema_decay),
        )
    else:
        state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    # An int32 array (not a Python int), so the first and later calls share one compiled function.
    return state.replace(step=jnp.asarray(0, jnp.int32))


def make_train_step(loss_fn: Callable[[Any, dict, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]):
    """The step of every family trained by one loss: one optimizer update on `loss_fn`'s gradient.

    Args:
      loss_fn: (params, batch, key) -> (loss, metrics): the scalar to minimise and scalar metrics to report (batch
        means).  `batch` = {"image": f32[B, H, W, C], "label": i32[B]}; `key` is the step's key, for the loss's
        own randomness.

    Returns:
      train_step(state, batch, key) -> (state, metrics) with metrics = {"loss", **loss_fn's metrics, "grad_norm"
      (the gradient's global L2 norm)}.  `state` is a `TrainState` (or `EMATrainState`, whose average follows).
    """

    def train_step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict[str, Any]]:
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        metrics = {"loss": loss, **metrics, "grad_norm": optax.tree.norm(grads)}
        return state.apply_gradients(grads=grads), metrics

    return train_step


# --- GAN ---------------------------------------------------------------------------------------------------------


@struct.dataclass
class GANState:
    """Everything a GAN run resumes from, as one pytree of arrays (the optimizers themselves are not saved).

    Attributes:
      step: i32[], the number of completed steps.
      g_params, d_params: generator and discriminator parameters.
      g_opt_state, d_opt_state: their separate optimizer states.
      g_batch_stats: the generator's BatchNorm running statistics ({} without BatchNorm).
      d_batch_stats: the discriminator's spectral-norm power-iteration vectors ({} without spectral norm).
      ema_params, ema_batch_stats: exponential moving averages of the generator's parameters and statistics,
        the generator used for samples and metrics.
    """

    step: jax.Array
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    g_batch_stats: Any
    d_batch_stats: Any
    ema_params: Any
    ema_batch_stats: Any


def create_gan_state(
    g_variables: dict, d_variables: dict, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation
) -> GANState:
    """The state at step 0 from the two networks' `init` variables; the EMA starts at the generator itself."""
    g_params, d_params = g_variables["params"], d_variables["params"]
    g_stats = g_variables.get("batch_stats", {})
    # Copies, not aliases: the loop donates the state's buffers, and one buffer must not appear twice.
    copy = functools.partial(jax.tree.map, jnp.copy)
    return GANState(
        step=jnp.asarray(0, jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=g_tx.init(g_params),
        d_opt_state=d_tx.init(d_params),
        g_batch_stats=g_stats,
        d_batch_stats=d_variables.get("batch_stats", {}),
        ema_params=copy(g_params),
        ema_batch_stats=copy(g_stats),
    )


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
    """min(decay, (1 + step) / (10 + step)): the EMA forgets its random start quickly in short runs (the
    `num_updates` rule of TensorFlow's ExponentialMovingAverage), then settles at `decay`."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


class GANUpdates(NamedTuple):
    """The pieces of one GAN step, exposed so each can be checked on its own (see `make_gan_updates`)."""

    generate: Callable
    discriminator_update: Callable
    generator_update: Callable


def make_gan_updates(
    generator,
    discriminator,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    loss: str,
    *,
    gp_weight: float = 10.0,
    ema_decay: float = 0.999,
) -> GANUpdates:
    """The three pieces of a GAN step, for images in [-1, 1] and labels i32[B] or None (unconditional).

    generate(state, z, labels) -> (fake, pullback, g_batch_stats): one training-mode generator pass, with the
      VJP that later carries the generator loss's gradient from the fake images back to G's parameters.
    discriminator_update(state, real, fake, labels, key) -> (state, metrics): one optimizer step of D (and its
      spectral-norm vectors) on the batch [real; fake]; `key` drives dropout.  Touches nothing of G's.
    generator_update(state, fake, pullback, labels, key) -> (state, metrics): one optimizer step of G against
      the current D, then the EMA; `key` drives D's dropout.  Touches nothing of D's.

    With loss "wgan_gp" the critic loss gains gp_weight · E[(‖∇critic(x̂)‖ − 1)²] (`losses.gradient_penalty`),
    the critic evaluated without dropout.  Metrics: d_loss, g_loss (batch means), d_real and d_fake (batch means
    of σ(logit), D's probability of "real" for the logistic losses), gp (WGAN-GP), d_grad_norm, g_grad_norm.
    """

    def generate(state: GANState, z: jax.Array, labels):
        def forward(g_params):
            fake, updates = generator.apply(
                {"params": g_params, "batch_stats": state.g_batch_stats}, z, labels, train=True, mutable=["batch_stats"]
            )
            return fake, updates.get("batch_stats", state.g_batch_stats)

        return jax.vjp(forward, state.g_params, has_aux=True)

    def discriminator_update(state: GANState, real, fake, labels, key):
        dropout_key, alpha_key = jax.random.split(key)
        both_labels = None if labels is None else jnp.concatenate([labels, labels])

        def loss_fn(d_params):
            logits, updates = discriminator.apply(
                {"params": d_params, "batch_stats": state.d_batch_stats},
                jnp.concatenate([real, fake]),
                both_labels,
                train=True,
                update_stats=True,
                mutable=["batch_stats"],
                rngs={"dropout": dropout_key},
            )
            real_logits, fake_logits = jnp.split(logits, 2)
            d_loss = jnp.mean(losses.discriminator_loss(loss, real_logits, fake_logits))
            aux = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
            if loss == "wgan_gp":
                variables = {"params": d_params, "batch_stats": state.d_batch_stats}
                critic = (
                    (lambda x: discriminator.apply(variables, x[None])[0])
                    if labels is None
                    else (lambda x, y: discriminator.apply(variables, x[None], y[None])[0])
                )
                alpha = jax.random.uniform(alpha_key, (real.shape[0],))
                extra = () if labels is None else (labels,)
                aux["gp"] = jnp.mean(losses.gradient_penalty(critic, real, fake, alpha, critic_args=extra))
                d_loss = d_loss + hyper.value("gp_weight", gp_weight) * aux["gp"]
            return d_loss, (aux, updates.get("batch_stats", state.d_batch_stats))

        (d_loss, (aux, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
        updates, d_opt_state = d_tx.update(grads, state.d_opt_state, state.d_params)
        state = state.replace(
            d_params=optax.apply_updates(state.d_params, updates), d_opt_state=d_opt_state, d_batch_stats=d_stats
        )
        return state, {"d_loss": d_loss, **aux, "d_grad_norm": optax.tree.norm(grads)}

    def generator_update(state: GANState, fake, pullback, labels, key):
        def loss_of_fake(fake):
            logits = discriminator.apply(
                {"params": state.d_params, "batch_stats": state.d_batch_stats},
                fake,
                labels,
                train=True,
                rngs={"dropout": key},
            )
            return jnp.mean(losses.generator_loss(loss, logits))

        g_loss, fake_grad = jax.value_and_grad(loss_of_fake)(fake)
        (grads,) = pullback(fake_grad)
        updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        step_size = 1.0 - ema_decay_at(state.step, hyper.value("ema_decay", ema_decay))
        state = state.replace(
            g_params=g_params,
            g_opt_state=g_opt_state,
            ema_params=optax.incremental_update(g_params, state.ema_params, step_size),
            ema_batch_stats=optax.incremental_update(state.g_batch_stats, state.ema_batch_stats, step_size),
        )
        return state, {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(grads)}

    return GANUpdates(generate, discriminator_update, generator_update)


def make_gan_train_step(
    generator,
    discriminator,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    loss: str,
    latent_dim: int,
    *,
    d_steps: int = 1,
    gp_weight: float = 10.0,
    ema_decay: float = 0.999,
    conditional: bool = False,
):
    """The GAN step: `d_steps` discriminator updates, then one generator update, then the generator's EMA.

    The batch's images (in [0, 1]) are scaled to [-1, 1] for the tanh generator.  One z ~ N(0, I) per real
    image, and the fake batch is generated once: the D updates see it as data, and G's gradient reaches G's
    parameters through the VJP of that same pass (so G's BatchNorm statistics move once per step).  D is
    updated first and G then trains against the updated D (alternating updates, as in Goodfellow et al. 2014;
    the TensorFlow tutorial updates both from one pass instead).  With `conditional`, the batch's labels are
    given to both networks, for the real and the fake images alike.  The step key is split into the noise key,
    one key per D update and G's key.  Metrics: see `make_gan_updates` (D's are those of its last update).
    """
    pieces = make_gan_updates(generator, discriminator, g_tx, d_tx, loss, gp_weight=gp_weight, ema_decay=ema_decay)

    def train_step(state: GANState, batch: dict, key: jax.Array) -> tuple[GANState, dict[str, Any]]:
        noise_key, d_key, g_key = jax.random.split(key, 3)
        real = batch["image"] * 2.0 - 1.0
        labels = batch["label"] if conditional else None
        z = jax.random.normal(noise_key, (real.shape[0], latent_dim))
        fake, pullback, g_stats = pieces.generate(state, z, labels)
        state = state.replace(g_batch_stats=g_stats)
        for d_step_key in jax.random.split(d_key, d_steps):
            state, d_metrics = pieces.discriminator_update(state, real, fake, labels, d_step_key)
        state, g_metrics = pieces.generator_update(state, fake, pullback, labels, g_key)
        return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}

    return train_step
