"""The VQ-VAE family (van den Oord et al. 2017) with a learned autoregressive prior over its code grid.

Two stages, one run.  The state holds both models, each with its own optimizer state; the task's two phases
(`Task.phases`, switched by the loop at `vq_steps`) train the VQ-VAE for the first `vq_steps` steps, then the
PixelCNN prior (`models/vqvae.py`) for the remaining `num_steps − vq_steps` on the code grids the frozen VQ-VAE gives
the batch.  So the one loop, the one checkpoint and bit-for-bit resume serve both stages, a run can stop and resume
anywhere (inside either stage or across the switch), and raising `num_steps` trains the prior longer.

Stage 1 minimises, per example,
    −log p(x | z_q) + ‖sg(z_e) − e‖² + β ‖z_e − sg(e)‖²     (nats summed over pixels; squared distances summed
                                                           over the code grid and the D code dimensions)
with the straight-through estimator carrying the reconstruction's gradient from z_q to z_e.  The codebook moves
either by that loss's second term (`codebook_update="loss"`) or, without it, as the Laplace-smoothed exponential
moving average of the encoder outputs assigned to each code (`"ema"`, the paper's appendix).  A code no batch has
used for `dead_code_steps` steps is re-initialised to an encoder output of the current batch (drawn uniformly).
Metrics include the batch's codebook perplexity exp(H(code usage)).

Stage 2 minimises the prior's −log p(k) of the batch's code grids (nats per image summed over the grid).  Samples are
code grids drawn from the prior, position by position, decoded.  The encoder is deterministic, so with the learned
prior −ELBO = −log p(x | z_q(x)) − log p(k(x)) (the posterior is one-hot, its entropy 0): a bound on −log p(x)
reported as `test_neg_elbo`.  Its fields: `default_config`.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from gen_jax import config as config_lib
from gen_jax import data, figures, latent, losses, metrics, optim, sample_quality
from gen_jax.models import vqvae
from gen_jax.train import Task

CODEBOOK_UPDATES = ("loss", "ema")
_FIGURE_SAMPLES = 100


def default_config() -> ml_collections.ConfigDict:
    """A conv VQ-VAE (stride-2 widths 32-64, K = 64 codes of D = 16) with EMA codebook updates and a PixelCNN prior
    (64 features, 4 residual masked layers); Bernoulli likelihood; Adam 1e-3 for both stages."""
    config = config_lib.base_config()
    config.family = "vqvae"
    config.model = ml_collections.ConfigDict(
        dict(
            features=(32, 64),  # stride-2 3×3 conv widths, encoder order (the decoder mirrors them); grid H / 2^n
            num_codes=64,  # K, the codebook's rows
            embedding_dim=16,  # D, each code's length
            likelihood="bernoulli",  # "bernoulli" | "gaussian" (unit variance)
            prior_features=64,  # the PixelCNN's width
            prior_layers=4,  # residual 3×3 type-B masked layers after the first
            prior_kernel=5,  # the first (type-A) masked convolution's side, odd
        )
    )
    config.num_steps = 2000
    config.vq_steps = 1000  # steps [0, vq_steps) train the VQ-VAE; [vq_steps, num_steps) the prior
    config.codebook_update = "ema"  # "loss" (‖sg(z_e) − e‖² in the loss) | "ema" (moving average of assignments)
    config.codebook_decay = 0.99  # "ema" only: the moving averages' decay
    config.commitment_cost = 0.25  # β, the weight of ‖z_e − sg(e)‖²
    config.dead_code_steps = 100  # a code unused for this many steps is reset to an encoder output (0 = never)
    config.prior_optim = config_lib.optimizer_config()
    config.sample_quality = config_lib.sample_quality_config(enabled=False)
    return config.lock()


def validate(config) -> None:
    config_lib.require_widths(config, "model.features", min_length=1)
    config_lib.require_positive_int(config, "model.num_codes", "model.embedding_dim", "model.prior_features")
    if config.model.num_codes < 2:
        raise config_lib.ConfigError(f"config.model.num_codes must be at least 2, got {config.model.num_codes!r}")
    config_lib.require_choice(config, "model.likelihood", losses.LIKELIHOODS)
    config_lib.require_non_negative_int(config, "model.prior_layers")
    kernel = config.model.prior_kernel
    if not isinstance(kernel, int) or isinstance(kernel, bool) or kernel < 3 or kernel % 2 == 0:
        raise config_lib.ConfigError(f"config.model.prior_kernel must be an odd integer >= 3, got {kernel!r}")
    config_lib.require_positive_int(config, "vq_steps")
    if config.vq_steps > config.num_steps:
        raise config_lib.ConfigError(
            f"config.vq_steps ({config.vq_steps}) must be at most config.num_steps ({config.num_steps}): the steps "
            "after vq_steps train the prior; raise num_steps or lower vq_steps"
        )
    config_lib.require_choice(config, "codebook_update", CODEBOOK_UPDATES)
    config_lib.require_fraction(config, "codebook_decay")
    config_lib.require_non_negative(config, "commitment_cost")
    config_lib.require_non_negative_int(config, "dead_code_steps", meaning=" (0 never resets a code)")
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    optim.validate(config)
    optim.validate(config, "prior_optim")
    sample_quality.validate_config(config)


@struct.dataclass
class VQVAEState:
    """Everything a VQ-VAE run resumes from, as one pytree of arrays.

    Attributes:
      step: i32[], completed steps (both stages).
      params: the VQ-VAE's {"encoder", "decoder", "codebook" f32[K, D]}.
      opt_state: its optimizer state (stage 1).
      codebook_ema: {"counts" f32[K], "sums" f32[K, D]}, the moving averages of assignment counts and assigned
        encoder outputs, under codebook_update="ema"; {} under "loss".
      unused_steps: i32[K], steps since each code was last chosen in a training batch.
      prior_params, prior_opt_state: the PixelCNN prior's parameters and optimizer state (stage 2).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    codebook_ema: Any
    unused_steps: jax.Array
    prior_params: Any
    prior_opt_state: Any


def build_models(config, image_shape: tuple[int, int, int]) -> tuple[vqvae.VQVAE, vqvae.PixelCNNPrior]:
    m, dtype = config.model, config_lib.compute_dtype(config)
    features = tuple(m.features)
    model = vqvae.VQVAE(
        encoder=vqvae.VQEncoder(features, m.embedding_dim, dtype=dtype, conv_impl=config.conv_impl),
        decoder=vqvae.VQDecoder(image_shape, features[::-1], dtype=dtype, conv_impl=config.conv_impl),
        num_codes=m.num_codes,
        embedding_dim=m.embedding_dim,
    )
    prior = vqvae.PixelCNNPrior(m.num_codes, m.prior_features, m.prior_layers, m.prior_kernel, dtype=dtype)
    return model, prior


def vq_terms(model: vqvae.VQVAE, likelihood: str, params, x: jax.Array):
    """The VQ-VAE's per-example terms for x f32[B, H, W, C], and what the codebook updates need.

    Returns:
      (terms, z_e f32[B, h, w, D], indices i32[B, h, w]) with terms, each f32[B]: "recon_nll" −log p(x | z_q) (nats
      summed over pixels), "mse" (squared error per pixel of the reconstruction's mean), "codebook_loss"
      ‖sg(z_e) − e‖² and "commitment_loss" ‖z_e − sg(e)‖² (equal values, different gradients; summed over the grid
      and the code dimensions).
    """
    decoded, z_e, e, indices = model.apply({"params": params}, x)
    sum_sq = lambda a: jnp.sum(a**2, axis=(1, 2, 3))
    terms = {
        "recon_nll": -losses.reconstruction_log_likelihood(likelihood, decoded, jnp.zeros(()), x),
        "mse": losses.squared_error(pixel_means(likelihood, decoded), x),
        "codebook_loss": sum_sq(jax.lax.stop_gradient(z_e) - e),
        "commitment_loss": sum_sq(z_e - jax.lax.stop_gradient(e)),
    }
    return terms, z_e, indices


def make_train_steps(model: vqvae.VQVAE, prior: vqvae.PixelCNNPrior, tx, prior_tx, config) -> tuple:
    """(vq_step, prior_step), each train_step(state, batch, key) -> (state, metrics): a VQ-VAE update (stage 1) and
    a prior update on the frozen VQ-VAE's codes (stage 2).  The task runs them as its phases, switching at
    config.vq_steps on the host.

    Metrics (scalars, batch means; the same in both stages): loss (the stage's objective: vq_loss, then prior_nll),
    vq_loss, recon_nll, mse, codebook_loss, commitment_loss, perplexity (exp of the entropy of the batch's code
    usage), prior_nll (nats per image over the code grid, of the batch's codes under the current prior) and
    grad_norm (of the stage's update).  The key binarises the batch ("dynamic") and draws dead-code replacements.
    """
    num_codes, likelihood, update_rule = model.num_codes, config.model.likelihood, config.codebook_update

    def vq_loss(params, x):
        terms, z_e, indices = vq_terms(model, likelihood, params, x)
        per_example = terms["recon_nll"] + config.commitment_cost * terms["commitment_loss"]
        if update_rule == "loss":
            per_example = per_example + terms["codebook_loss"]
        return jnp.mean(per_example), (terms, z_e, indices)

    def prior_nll(prior_params, indices):
        return -jnp.mean(vqvae.prior_log_prob(prior, prior_params, indices))

    def report(stage_loss, loss, terms, indices, nll, grads):
        return {
            "loss": stage_loss,
            "vq_loss": loss,
            **{name: jnp.mean(value) for name, value in terms.items()},
            "perplexity": vqvae.perplexity(vqvae.code_counts(indices, num_codes)),
            "prior_nll": nll,
            "grad_norm": optax.tree.norm(grads),
        }

    def vq_stage(state, x, key):
        (loss, (terms, z_e, indices)), grads = jax.value_and_grad(vq_loss, has_aux=True)(state.params, x)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        codebook, ema, unused = update_codebook(state, params["codebook"], z_e, indices, key, config)
        state = state.replace(
            step=state.step + 1,
            params={**params, "codebook": codebook},
            opt_state=opt_state,
            codebook_ema=ema,
            unused_steps=unused,
        )
        return state, report(loss, loss, terms, indices, prior_nll(state.prior_params, indices), grads)

    def prior_stage(state, x, key):
        del key
        loss, (terms, _, indices) = vq_loss(state.params, x)
        nll, grads = jax.value_and_grad(prior_nll)(state.prior_params, indices)
        updates, prior_opt_state = prior_tx.update(grads, state.prior_opt_state, state.prior_params)
        state = state.replace(
            step=state.step + 1,
            prior_params=optax.apply_updates(state.prior_params, updates),
            prior_opt_state=prior_opt_state,
        )
        return state, report(nll, loss, terms, indices, nll, grads)

    def step_of(stage):
        def train_step(state: VQVAEState, batch: dict, key: jax.Array):
            binarize_key, reset_key = jax.random.split(key)
            x = batch["image"]
            if config.binarization == "dynamic":
                x = data.dynamic_binarize(binarize_key, x)
            return stage(state, x, reset_key)

        return train_step

    return step_of(vq_stage), step_of(prior_stage)


def update_codebook(state: VQVAEState, codebook, z_e, indices, key, config) -> tuple:
    """(codebook f32[K, D], codebook_ema, unused_steps i32[K]) after one stage-1 step: the EMA update (under
    codebook_update="ema"; under "loss" `codebook` has moved with the optimizer), then the dead codes' reset to
    encoder outputs of the batch, whose averages restart from their new value.

    Args:
      codebook: the codebook after the optimizer's update; z_e: f32[B, h, w, D] the batch's encoder outputs;
      indices: i32[B, h, w] their codes; key: the reset's draws.
    """
    z_flat, flat = z_e.reshape(-1, z_e.shape[-1]), indices.reshape(-1)
    ema = state.codebook_ema
    if config.codebook_update == "ema":
        ema, codebook = vqvae.ema_codebook(ema, z_flat, flat, config.codebook_decay)
    unused = jnp.where(vqvae.code_counts(flat, codebook.shape[0]) > 0, 0, state.unused_steps + 1)
    if config.dead_code_steps:
        codebook, dead = vqvae.reset_dead_codes(codebook, unused, z_flat, key, config.dead_code_steps)
        unused = jnp.where(dead, 0, unused)
        if config.codebook_update == "ema":  # a reset code restarts its averages from its new value
            counts, sums = jnp.where(dead, 1.0, ema["counts"]), jnp.where(dead[:, None], codebook, ema["sums"])
            ema = {"counts": counts, "sums": sums}
    return codebook, ema, unused


def pixel_means(likelihood: str, decoded: jax.Array) -> jax.Array:
    """The decoder's output as pixel means: sigmoid of the logits (Bernoulli), the means themselves (Gaussian)."""
    return jax.nn.sigmoid(decoded) if likelihood == "bernoulli" else decoded


def stage_figures(figure_dir: str, samples: np.ndarray, grid: tuple[int, int], counts: np.ndarray) -> list:
    """samples.png (`samples` f32[S, H, W, C]: code grids from the prior, decoded) and codebook_usage.png (each
    code's share of the test split's code positions, `counts` i32[K], by rank); [(path relative to the run
    directory, caption)]."""
    workdir = os.path.dirname(figure_dir)
    title = "Samples: code grids from the PixelCNN prior, decoded"
    path = figures.save_image_grid(os.path.join(figure_dir, "samples.png"), samples, ncols=10, title=title)
    made = [(path, f"{len(samples)} samples: {grid[0]}×{grid[1]} code grids drawn from the learned prior, decoded")]
    perplexity = float(vqvae.perplexity(jnp.asarray(counts, jnp.float32)))
    path = figures.save_curves(
        os.path.join(figure_dir, "codebook_usage.png"),
        {"test split": (np.arange(1, len(counts) + 1), np.sort(counts)[::-1] / counts.sum())},
        xlabel="code rank (most used first)",
        ylabel="share of the test split's code positions",
        title=f"Codebook usage: {np.count_nonzero(counts)} of {len(counts)} codes used, perplexity {perplexity:.1f}",
    )
    made.append((path, "How often each code is chosen over the test split, by rank"))
    return [(os.path.relpath(path, workdir), caption) for path, caption in made]


def make_codec_and_sampler(model: vqvae.VQVAE, prior: vqvae.PixelCNNPrior, likelihood: str, grid: tuple[int, int]):
    """(codec, sampler).  codec(state) -> (encode, decode), the `Task.codec` contract: encode gives the encoder's
    outputs before quantisation, decode quantises each D-vector, then decodes.  sampler(state) -> (key, count) ->
    images f32[count, H, W, C] in [0, 1]: code grids drawn from the prior, decoded (pixel means).  Each compiled
    once per shape, the parameters passed in, so every state (restored, each sweep member) shares them."""

    @jax.jit
    def encode_flat(params, x):
        return model.apply({"params": params}, x, method=model.encode).reshape(x.shape[0], -1)

    @jax.jit
    def decode_flat(params, codes):
        quantized_decode = lambda module, z: module.decode(module.quantize(z)[1])
        z = codes.reshape(codes.shape[0], *grid, model.embedding_dim)
        return jnp.clip(pixel_means(likelihood, model.apply({"params": params}, z, method=quantized_decode)), 0, 1)

    def codec(state):
        def encode(images, labels=None):
            """images f32[B, H, W, C] -> the encoder's outputs before quantisation, flattened: f32[B, h·w·D]."""
            del labels  # unconditional
            return encode_flat(state.params, jnp.asarray(images, jnp.float32))

        def decode(codes, labels=None):
            """codes f32[B, h·w·D] -> images f32[B, H, W, C] in [0, 1]; traceable (jnp only)."""
            del labels
            return decode_flat(state.params, jnp.asarray(codes, jnp.float32))

        return encode, decode

    @functools.partial(jax.jit, static_argnums=3)
    def sample_means(params, prior_params, key, count):
        indices = vqvae.sample_prior(prior, prior_params, key, count, grid)
        return pixel_means(likelihood, model.apply({"params": params}, indices, method=model.decode_indices))

    def sampler(state):
        return lambda key, count: np.clip(np.asarray(sample_means(state.params, state.prior_params, key, count)), 0, 1)

    return codec, sampler


def make_task(config, dataset: data.Dataset) -> Task:
    """The VQ-VAE's task: its state, its two phases (and the one-step `train_step` they equal), its evaluation on
    the test split, its summary and figures: closures over the models and the test split (about 90 lines, because
    the evaluation, the summary and the figures share `test_split`)."""
    validate(config)
    model, prior = build_models(config, dataset.image_shape)
    likelihood, num_codes = config.model.likelihood, config.model.num_codes
    grid = vqvae.code_grid(dataset.image_shape, len(config.model.features))
    tx = optim.make(config.optim, config.vq_steps, "optim")
    prior_tx = optim.make(config.prior_optim, max(1, config.num_steps - config.vq_steps), "prior_optim")
    test_images = data.test_images(config, dataset)
    quality = sample_quality.evaluator_on_demand(config, dataset)  # made on first use
    vq_step, prior_step = make_train_steps(model, prior, tx, prior_tx, config)
    codec, sampler = make_codec_and_sampler(model, prior, likelihood, grid)

    def train_step(state, batch, key):
        """Either stage by `state.step`, for tools that trace one step; the loop runs the phases instead."""
        return jax.lax.cond(state.step < config.vq_steps, vq_step, prior_step, state, batch, key)

    def init_state(key):
        vq_key, prior_key = jax.random.split(key)
        params = model.init(vq_key, jnp.zeros((1, *dataset.image_shape), jnp.float32))["params"]
        prior_params = prior.init(prior_key, jnp.zeros((1, *grid, num_codes), jnp.float32))["params"]
        # Copies, not aliases: the loop donates the state's buffers, and one buffer must not appear twice.
        ema = {"counts": jnp.ones((num_codes,), jnp.float32), "sums": jnp.copy(params["codebook"])}
        ema = ema if config.codebook_update == "ema" else {}
        return VQVAEState(
            step=jnp.asarray(0, jnp.int32),
            params=params,
            opt_state=tx.init(params),
            codebook_ema=ema,
            unused_steps=jnp.zeros((num_codes,), jnp.int32),
            prior_params=prior_params,
            prior_opt_state=prior_tx.init(prior_params),
        )

    @jax.jit
    def test_terms(params, prior_params, x):
        terms, _, indices = vq_terms(model, likelihood, params, x)
        prior_nll = -vqvae.prior_log_prob(prior, prior_params, indices)
        return {**terms, "prior_nll": prior_nll, "neg_elbo": terms["recon_nll"] + prior_nll, "indices": indices}

    def test_split(state) -> tuple[dict, np.ndarray]:
        """({name: f32[N]} per test example, code usage counts i32[K] over the test split's grids)."""
        run = lambda x, _: test_terms(state.params, state.prior_params, x)
        values = metrics.map_batches(run, test_images, config.eval_batch_size, jax.random.key(0))
        return values, np.bincount(values.pop("indices").reshape(-1), minlength=num_codes)

    def evaluate(state, key):
        del key  # deterministic
        values, counts = test_split(state)
        results = {name: float(np.mean(value)) for name, value in values.items() if name != "codebook_loss"}
        results["perplexity"] = float(vqvae.perplexity(jnp.asarray(counts, jnp.float32)))
        results["codes_used"] = int(np.count_nonzero(counts))
        return results

    def summarize(state, key):
        results = evaluate(state, key)
        summary = {f"test_{name}": results[name] for name in ("mse", "recon_nll", "prior_nll", "neg_elbo")}
        summary |= {
            "codebook_perplexity": results["perplexity"],
            "codes_used": results["codes_used"],
            "num_codes": num_codes,
            "code_grid": list(grid),
            "likelihood": likelihood,
            "binarization": config.binarization,
            "units": "test_mse: squared error per pixel (pixels in [0, 1]); test_recon_nll: −log p(x | z_q), nats per "
            "image summed over pixels; test_prior_nll: −log p(codes) under the prior, nats per image summed over the "
            "code grid; test_neg_elbo: their sum, a bound on −log p(x) (one-hot posterior); codebook_perplexity: "
            "exp(entropy) of the code usage over the test split's grids (1 to num_codes)",
            "num_test_examples": len(test_images),
        }
        if quality() is not None:  # code grids from the prior, decoded to pixel means, as in figures/samples.png
            summary.update(quality().summary(sampler(state), jax.random.fold_in(key, 1)))
        return summary

    def make_figures(state, key, workdir):
        encode, decode = codec(state)
        code_name = "encoder outputs (quantised to decode)"
        made = latent.figures_of(workdir, encode, decode, dataset, test_images, code_name=code_name, key=key)
        samples = sampler(state)(jax.random.fold_in(key, 2), _FIGURE_SAMPLES)
        return made + stage_figures(os.path.join(workdir, "figures"), samples, grid, test_split(state)[1])

    return Task(
        name="vqvae",
        signature=config_lib.signature(config, dataset.image_shape, codebook_update=config.codebook_update),
        init_state=init_state,
        train_step=train_step,
        phases=((0, vq_step), (config.vq_steps, prior_step)),
        evaluate=evaluate,
        summarize=summarize,
        make_figures=make_figures,
        codec=codec,
    )
