"""The VQ-VAE family with its PixelCNN prior (gen_jax/tasks/vqvae.py, gen_jax/models/vqvae.py): the straight-through
gradient, the prior's causal masking and sampling, the codebook's two update rules, dead-code revival, the codec
contract, and a run through both stages that resumes bit for bit and reports codebook use, prior NLL and samples."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import main as experiments_main
from experiments import sweep as experiments_sweep
from experiments.configs import vqvae_digits
from gen_jax import checkpoint, data, keys, sweep, train
from gen_jax import config as config_lib
from gen_jax.models import vqvae as vqvae_model
from gen_jax.tasks import classifier, vqvae

from conftest import max_abs_difference, override, read_jsonl, train_run, trees_equal


def tiny_vqvae_config(**overrides):
    """A VQ-VAE on digits (4×4 grid of 8 codes of 4 numbers) and a 1-layer prior: 20 + 20 steps."""
    config = vqvae_digits.get_config()
    config.binarization = "static"
    config.model.features = (8,)
    config.model.num_codes = 8
    config.model.embedding_dim = 4
    config.model.prior_features = 8
    config.model.prior_layers = 1
    config.batch_size = 32
    config.vq_steps = 20
    config.num_steps = 40
    config.dead_code_steps = 5
    config.log_every = 10
    config.eval_every = 20
    config.checkpoint_every = 10
    config.keep_checkpoints = 5
    config.eval_batch_size = 200
    config.write_figures = False
    return override(config, **overrides)


def first_state(config, dataset):
    task = vqvae.make_task(config, dataset)
    return task, jax.jit(task.init_state)(jax.random.key(0))


@functools.cache
def compiled(codebook_update: str):
    """(config, task, state at step 0, jitted train step) with dead_code_steps=2; one compile per update rule."""
    config = tiny_vqvae_config(codebook_update=codebook_update, dead_code_steps=2)
    task, state = first_state(config, data.load_dataset("digits"))
    return config, task, state, jax.jit(task.train_step)


def batch_of(dataset, start, size=32):
    return {
        "image": jnp.asarray(data.preprocess(dataset.train_images[start : start + size], "static")),
        "label": jnp.asarray(dataset.train_labels[start : start + size]),
    }


def test_quantiser_picks_the_nearest_code_and_its_gradient_is_the_identity_on_the_way_back():
    z_e = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
    codebook = jax.random.normal(jax.random.key(1), (6, 4))
    weights = jax.random.normal(jax.random.key(2), z_e.shape)
    loss = lambda z_q: jnp.sum(jnp.sin(z_q) * weights)
    z_q, e, indices = vqvae_model.quantize(z_e, codebook)
    nearest = np.argmin(np.sum((np.asarray(z_e)[..., None, :] - np.asarray(codebook)) ** 2, axis=-1), axis=-1)
    np.testing.assert_array_equal(indices, nearest)
    np.testing.assert_allclose(z_q, np.asarray(codebook)[nearest], atol=1e-6)
    np.testing.assert_array_equal(e, np.asarray(codebook)[nearest])
    through_quantiser = jax.grad(lambda z: loss(vqvae_model.quantize(z, codebook)[0]))(z_e)
    np.testing.assert_allclose(through_quantiser, jax.grad(loss)(z_q), rtol=1e-6)
    # The straight-through path gives the codebook nothing: it learns from its own loss term or its EMA.
    assert not np.any(jax.grad(lambda c: loss(vqvae_model.quantize(z_e, c)[0]))(codebook))


def test_perplexity_counts_the_codes_in_equal_use():
    assert float(vqvae_model.perplexity(jnp.array([5.0, 5.0, 5.0, 5.0]))) == pytest.approx(4.0)
    assert float(vqvae_model.perplexity(jnp.array([0.0, 7.0, 0.0]))) == pytest.approx(1.0)
    assert float(vqvae_model.perplexity(vqvae_model.code_counts(jnp.array([[0, 2], [2, 0]]), 4))) == pytest.approx(2.0)


def test_prior_never_lets_a_position_see_itself_or_later_positions():
    height, width, num_codes = 4, 5, 6
    prior = vqvae_model.PixelCNNPrior(num_codes, features=8, num_layers=2, first_kernel=3)
    inputs = jax.random.normal(jax.random.key(0), (8, height, width, num_codes))  # 8 points: no ReLU silences all
    params = prior.init(jax.random.key(1), inputs)["params"]
    logits = lambda x: prior.apply({"params": params}, x).sum(axis=0).reshape(height * width, num_codes)
    # influence[i, j]: how much the logits at raster position i move with the input at position j.
    influence = np.abs(np.asarray(jax.jacrev(logits)(inputs))).sum(axis=(1, 2, 5)).reshape(height * width, -1)
    assert np.all(np.triu(influence) == 0.0)  # j >= i: exactly nothing
    assert np.all(influence[1:, :].sum(axis=1) > 0)  # every later position reads the earlier ones


def test_prior_samples_each_position_from_its_conditional_given_the_earlier_draws():
    height, width, num_codes = 3, 3, 5
    prior = vqvae_model.PixelCNNPrior(num_codes, features=8, num_layers=1, first_kernel=3)
    params = prior.init(jax.random.key(1), jnp.zeros((1, height, width, num_codes)))["params"]
    key = jax.random.key(7)
    drawn = vqvae_model.sample_prior(prior, params, key, 4, (height, width))
    grid = np.zeros((4, height, width), np.int32)
    for i in range(height * width):  # the definition, one position at a time
        logits = prior.apply({"params": params}, jax.nn.one_hot(grid, num_codes))[:, i // width, i % width]
        grid[:, i // width, i % width] = jax.random.categorical(jax.random.fold_in(key, i), logits)
    np.testing.assert_array_equal(drawn, grid)
    logits = prior.apply({"params": params}, jax.nn.one_hot(grid, num_codes))
    by_hand = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), grid[..., None], axis=-1).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(vqvae_model.prior_log_prob(prior, params, jnp.asarray(grid)), by_hand, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("codebook_update", ["loss", "ema"])
def test_codebook_moves_by_its_loss_or_by_the_moving_average_of_its_assignments(codebook_update, digits):
    config, task, state, step = compiled(codebook_update)
    model, _ = vqvae.build_models(config, digits.image_shape)
    batch = batch_of(digits, 0)
    _, z_e, indices = vqvae.vq_terms(model, "bernoulli", state.params, batch["image"])
    z_e, indices = np.asarray(z_e).reshape(-1, 4), np.asarray(indices).reshape(-1)
    old = np.asarray(state.params["codebook"])
    new_state, _ = step(state, batch, jax.random.key(3))  # no code is dead yet (unused for 1 < 2 steps)
    new = np.asarray(new_state.params["codebook"])
    counts = np.bincount(indices, minlength=8).astype(np.float64)
    sums = np.stack([z_e[indices == k].sum(axis=0) for k in range(8)])
    if codebook_update == "loss":
        # Adam's first step moves each coordinate by the learning rate, against the gradient of
        # mean ‖sg(z_e) − e‖², i.e. towards the mean of the encoder outputs assigned to the code; unused codes stay.
        used = counts > 0
        towards = -np.sign(old[used] - sums[used] / counts[used, None])
        np.testing.assert_allclose(new[used] - old[used], config.optim.learning_rate * towards, atol=1e-6)
        np.testing.assert_array_equal(new[~used], old[~used])
    else:
        decay = config.codebook_decay
        ema_counts = decay * 1.0 + (1 - decay) * counts
        ema_sums = decay * old + (1 - decay) * sums
        smoothed = (ema_counts + 1e-5) / (ema_counts.sum() + 8e-5) * ema_counts.sum()
        np.testing.assert_allclose(new, ema_sums / smoothed[:, None], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new_state.codebook_ema["counts"], ema_counts, rtol=1e-6)


@pytest.mark.parametrize("codebook_update", ["loss", "ema"])
def test_a_code_unused_for_dead_code_steps_is_reset_to_an_encoder_output(codebook_update, digits):
    config, task, state, step = compiled(codebook_update)
    model, _ = vqvae.build_models(config, digits.image_shape)
    far = jnp.full((4,), 100.0)  # no encoder output comes near it: dead from the start
    state = state.replace(params={**state.params, "codebook": state.params["codebook"].at[0].set(far)})
    if codebook_update == "ema":
        state = state.replace(codebook_ema={**state.codebook_ema, "sums": state.codebook_ema["sums"].at[0].set(far)})
    state, _ = step(state, batch_of(digits, 0), jax.random.key(1))
    assert int(state.unused_steps[0]) == 1 and float(jnp.min(state.params["codebook"][0])) > 50.0
    batch = batch_of(digits, 32)
    _, z_e, _ = vqvae.vq_terms(model, "bernoulli", state.params, batch["image"])
    state, _ = step(state, batch, jax.random.key(2))
    revived = np.asarray(state.params["codebook"][0])
    assert int(state.unused_steps[0]) == 0
    assert np.min(np.max(np.abs(np.asarray(z_e).reshape(-1, 4) - revived), axis=1)) < 1e-5


def test_codec_encodes_before_quantisation_and_decodes_through_the_nearest_codes(digits):
    config, task, state, _ = compiled("ema")
    model, _ = vqvae.build_models(config, digits.image_shape)
    encode, decode = task.codec(state)
    x = data.preprocess(digits.test_images[:5], "static")
    codes = encode(x)
    assert codes.shape == (5, 4 * 4 * 4) and codes.dtype == jnp.float32
    z_e = model.apply({"params": state.params}, jnp.asarray(x), method=model.encode)
    np.testing.assert_allclose(codes, np.asarray(z_e).reshape(5, -1), rtol=1e-6)
    np.testing.assert_array_equal(encode(x, labels=np.zeros(5, np.int32)), codes)  # unconditional: labels ignored
    images = decode(codes)
    assert images.shape == (5, 8, 8, 1) and images.min() >= 0.0 and images.max() <= 1.0
    reconstruction = jax.nn.sigmoid(model.apply({"params": state.params}, jnp.asarray(x))[0])
    np.testing.assert_allclose(images, np.clip(reconstruction, 0, 1), atol=1e-6)
    nudged = codes + 1e-4 * np.asarray(jax.random.normal(jax.random.key(0), codes.shape))
    np.testing.assert_array_equal(decode(nudged, labels=None), images)  # quantised: the same codes, the same image


@pytest.mark.slow
def test_trains_both_stages_resumes_bit_identically_and_reports_codes_prior_and_samples(tmp_path, monkeypatch):
    # A reference classifier trained for a few steps into a fresh cache (the real one trains 1000).
    monkeypatch.setitem(classifier._REFERENCE_STEPS, "digits", 60)
    quality = dict(sample_quality__enabled=True, sample_quality__num_samples=50)
    quality["sample_quality__classifier_dir"] = str(tmp_path / "classifiers")
    experiments_main.run(tiny_vqvae_config(num_steps=30), str(tmp_path / "split"))
    resumed = experiments_main.run(tiny_vqvae_config(), str(tmp_path / "split"))
    straight = experiments_main.run(tiny_vqvae_config(write_figures=True, **quality), str(tmp_path / "straight"))
    assert resumed == {k: v for k, v in straight.items() if k in resumed} and straight["steps"] == 40
    task = vqvae.make_task(tiny_vqvae_config(), data.load_dataset("digits"))
    template = task.init_state(jax.random.key(0))
    (a, _), (b, _) = (
        checkpoint.restore_latest(str(tmp_path / run / "checkpoints"), template) for run in ("split", "straight")
    )
    assert trees_equal(a, b)
    records = [r for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "train/loss" in r]
    by_step = {r["step"]: r for r in records}
    assert by_step[20]["train/vq_loss"] < by_step[10]["train/vq_loss"]  # stage 1 trains the VQ-VAE
    assert by_step[40]["train/prior_nll"] < by_step[20]["train/prior_nll"]  # stage 2 trains the prior
    assert by_step[40]["train/vq_loss"] == pytest.approx(by_step[30]["train/vq_loss"], rel=0.2)  # frozen VQ-VAE
    assert 1.0 <= straight["codebook_perplexity"] <= 8 and 1 <= straight["codes_used"] <= 8
    assert straight["test_neg_elbo"] == pytest.approx(straight["test_recon_nll"] + straight["test_prior_nll"], rel=1e-5)
    assert {"test_mse", "classifier_fid", "classifier_fid_floor", "classifier_precision", "classifier_recall"} <= set(
        straight
    )
    assert straight["num_samples"] == 50
    assert {
        "reconstructions.png",
        "samples.png",
        "codebook_usage.png",
        "latent_scatter.png",
        "interpolations.png",
        "loss_curves.png",
    } <= {p.name for p in (tmp_path / "straight" / "figures").iterdir()}


def test_the_stage_is_chosen_on_the_host_and_a_run_ends_where_the_one_step_definition_does(tmp_path, digits):
    """The loop trains the VQ-VAE, then the prior, each phase its own program with no `lax.cond` in it (so a sweep's
    vmap never runs both stages); a run whose switch lies off the chunk grid ends, bit for bit, where `train_step`
    (either stage by `state.step`) scanned over the same steps ends."""
    config = tiny_vqvae_config(vq_steps=15, num_steps=30, eval_every=30, checkpoint_every=30)
    task = vqvae.make_task(config, digits)
    assert [first for first, _ in task.phases] == [0, 15]
    state = jax.jit(task.init_state)(keys.stream(config.seed, "init"))
    batch, key = sweep.abstract_batch(config, digits.image_shape), jax.random.key(0)
    assert "cond[" in str(jax.make_jaxpr(task.train_step)(state, batch, key))
    for _, step in task.phases:
        assert "cond[" not in str(jax.make_jaxpr(step)(state, batch, key))

    train_run(config, digits, tmp_path)
    looped, step = checkpoint.restore_latest(str(tmp_path / "checkpoints"), state)
    streams = keys.loop_streams(config.seed)
    images = jnp.asarray(data.preprocess(digits.train_images, config.binarization))
    run = jax.jit(train.make_multi_step(task.train_step, config.batch_size), static_argnums=5)
    reference, _ = run(state, images, jnp.asarray(digits.train_labels), streams["train"], streams["data"], 30)
    assert step == 30 and trees_equal(looped, reference)


@pytest.mark.slow
def test_a_sweep_member_crossing_the_switch_computes_what_its_single_run_computes(tmp_path, digits):
    config = tiny_vqvae_config(vq_steps=15, num_steps=20, eval_every=20, checkpoint_every=20)
    experiments_sweep.run(config, str(tmp_path / "sweep"), ["seed=0:2"], show_progress=False)
    train_run(
        tiny_vqvae_config(vq_steps=15, num_steps=20, eval_every=20, checkpoint_every=20, seed=1), digits, tmp_path
    )
    read = lambda path: checkpoint.make_manager(str(path), read_only=True).restore(20)
    member = jax.tree.map(lambda leaf: np.asarray(leaf)[1], read(tmp_path / "sweep" / "checkpoints")["members"])
    alone = jax.tree.map(np.asarray, read(tmp_path / "checkpoints"))
    assert max_abs_difference(member, alone) <= 1e-6  # float32 round-off: vmap may order a reduction differently


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("codebook_update", "kmeans", "config.codebook_update must be one of 'loss', 'ema'"),
        ("vq_steps", 41, r"config.vq_steps \(41\) must be at most config.num_steps \(40\)"),
        ("model__prior_kernel", 4, "config.model.prior_kernel must be an odd integer >= 3"),
        ("codebook_decay", 1.0, r"config.codebook_decay must be a number in \[0, 1\)"),
        ("model__num_codes", 1, "config.model.num_codes must be at least 2"),
        ("prior_optim__learning_rate", 0.0, "config.prior_optim.learning_rate must be a positive number"),
    ],
)
def test_bad_config_is_refused_before_compute(field, value, message, tmp_path):
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_vqvae_config(**{field: value}), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
