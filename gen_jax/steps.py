"""Train steps, one per model family: `train_step(state, batch, key) -> (state, metrics)`.

Each `make_*_train_step` binds the static choices (model, likelihood, β, …) and returns a pure function that
`train.py` fuses into `lax.scan` and jits; sharding is declared there too, never here.  `batch` is
{"image": f32[B, H, W, C], "label": i32[B]}; `key` is the step's own key, fold_in(train_key, step), split here
for each use.  Metrics are scalars: per-example quantities are batch means, in nats per example.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from gen_jax import data, losses


class TrainState(train_state.TrainState):
    """params, opt_state and an int32 step; `apply_fn` and `tx` are static (not saved)."""


def create_train_state(model, params, tx: optax.GradientTransformation) -> TrainState:
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    # An int32 array (not a Python int), so the first and later calls share one compiled function.
    return state.replace(step=jnp.asarray(0, jnp.int32))


def vae_loss_terms(model, params, x: jax.Array, key: jax.Array, likelihood: str) -> dict[str, jax.Array]:
    """Per-example log p(x|z) (one z ~ q(z|x) from `key`) and KL(q(z|x) || N(0, I)), each f32[B], nats."""
    decoded, mean, log_var, log_scale = model.apply({"params": params}, x, key)
    return {
        "log_likelihood": losses.reconstruction_log_likelihood(likelihood, decoded, log_scale, x),
        "kl": losses.kl_to_standard_normal(mean, log_var),
    }


def make_vae_train_step(model, likelihood: str, beta: float, binarization: str):
    """The VAE step: maximise the (β-weighted) ELBO of the batch by one optimizer update.

    Metrics (batch means, nats per example summed over pixels): loss = −ELBO_β, neg_elbo = −ELBO (β = 1),
    recon_nll = −E_q log p(x|z), kl = KL(q(z|x) || p(z)); grad_norm is the global L2 norm of the gradient.
    """

    def train_step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict[str, Any]]:
        binarize_key, z_key = jax.random.split(key)
        x = batch["image"]
        if binarization == "dynamic":
            x = data.dynamic_binarize(binarize_key, x)

        def loss_fn(params):
            terms = vae_loss_terms(model, params, x, z_key, likelihood)
            loss = -jnp.mean(losses.elbo(terms["log_likelihood"], terms["kl"], beta))
            return loss, terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        metrics = {
            "loss": loss,
            "neg_elbo": -jnp.mean(terms["log_likelihood"] - terms["kl"]),
            "recon_nll": -jnp.mean(terms["log_likelihood"]),
            "kl": jnp.mean(terms["kl"]),
            "grad_norm": optax.global_norm(grads),
        }
        return state.apply_gradients(grads=grads), metrics

    return train_step
