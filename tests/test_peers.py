"""The PyTorch peers (benchmarks/peers/) are the networks gen_jax trains, and `throughput` times them in the same run
as the JAX step.  Skipped where PyTorch is not installed (it is an optional extra, never a dependency)."""

import json
import math
import os

import jax
import numpy as np
import pytest

import benchmarks.peers  # noqa: F401  (before torch: it sets OpenMP's wait policy)

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install -e '.[peers]' to test the peers")

from benchmarks import throughput  # noqa: E402
from benchmarks.peers import networks, steps  # noqa: E402
from gen_jax import data, tasks  # noqa: E402

SHAPE = (28, 28, 1)


def config_of(name: str, *overrides: str):
    """The experiment config `experiments/configs/<name>.py` as the benchmark builds it."""
    return throughput.load_config(throughput.Row(f"experiments/configs/{name}.py", overrides))


def synthetic_dataset(n: int, seed: int = 0) -> data.Dataset:
    """n random 28×28×1 images, binary, with labels 0-9 (a Fashion-MNIST-shaped stand-in)."""
    rng = np.random.default_rng(seed)
    draw = lambda: (rng.random((n, *SHAPE)) > 0.5).astype(np.float32)
    labels = lambda: rng.integers(0, 10, n).astype(np.int32)
    names = tuple(map(str, range(10)))
    return data.Dataset("synthetic", draw(), labels(), draw(), labels(), 10, names)


def flax_parameter_counts(config) -> dict[str, int]:
    """{network: parameter count} of the Flax model `config` trains, on 28×28×1 images."""
    task = tasks.get(config.family).make_task(config, synthetic_dataset(16))
    state = jax.eval_shape(task.init_state, jax.random.key(0))
    count = lambda tree: sum(leaf.size for leaf in jax.tree.leaves(tree))
    if config.family == "vae":
        return {"vae": count(state.params)}
    return {"generator": count(state.g_params), "discriminator": count(state.d_params)}


@pytest.mark.parametrize("name", ["vae_mlp_fashion_mnist", "gan_digits", "dcgan_fashion_mnist"])
def test_each_peer_has_the_flax_models_parameter_counts(name):
    config = config_of(name)
    peers = networks.build(config, SHAPE)
    assert {key: networks.parameter_count(module) for key, module in peers.items()} == flax_parameter_counts(config)


def test_models_without_a_peer_are_refused_by_name():
    with pytest.raises(ValueError, match="no PyTorch peer for family 'vae' with architecture 'conv'"):
        networks.build(config_of("vae_conv_fashion_mnist"), SHAPE)
    with pytest.raises(ValueError, match="unknown peer mode 'jit'"):
        steps.make_runner(config_of("vae_mlp_fashion_mnist"), None, 8, "jit")
    # The same network trained on another loss has no peer: the IWAE bound is not the peer's ELBO.
    with pytest.raises(ValueError, match="the VAE peer mirrors the ELBO"):
        steps.make_runner(config_of("iwae_fashion_mnist"), synthetic_dataset(16).train_images, 8, "eager")


def test_peer_steps_train_the_vae():
    """Twenty eager steps of the VAE peer on 16 images lower its −ELBO: the step updates what it differentiates."""
    config = config_of("vae_mlp_fashion_mnist")
    dataset = synthetic_dataset(16)
    torch.manual_seed(0)
    vae = networks.build(config, SHAPE)["vae"]
    x = torch.from_numpy(dataset.train_images.transpose(0, 3, 1, 2).copy())

    def neg_elbo():
        with torch.no_grad():
            logits, mean, log_var = vae(x)
        log_likelihood = torch.sum(x.flatten(1) * logits - torch.nn.functional.softplus(logits), -1)
        kl = 0.5 * torch.sum(log_var.exp() + mean**2 - 1 - log_var, -1)
        return float(torch.mean(kl - log_likelihood))

    before = neg_elbo()
    step = steps._make_vae_step(
        {"vae": vae}, config, lambda forward: lambda fn: fn, lambda: torch.autocast("cpu", enabled=False)
    )
    for _ in range(20):
        step(x)
    assert neg_elbo() < before - 50.0


@pytest.mark.slow
def test_quick_peers_run_reports_both_speedups(tmp_path):
    """vae_digits (an MLP VAE, so it has a peer) in a quick run: PyTorch eager and torch.compile timed in the same
    repeats as the JAX step."""
    json_path, table_path = tmp_path / "peers.json", tmp_path / "table.md"
    throughput.main(
        [
            *("--config", "experiments/configs/vae_digits.py", "--config.batch_size=8"),
            *("--steps-per-call", "2", "--repeats", "1", "--json", str(json_path), "--markdown", str(table_path)),
        ]
    )
    payload = json.loads(json_path.read_text())
    record = payload["results"][0]
    assert payload["versions"]["torch"] == record["torch_version"] == torch.__version__
    assert record["torch_device"] == "cpu"
    assert record["torch_threads"] == os.cpu_count() == torch.get_num_threads()
    assert record["speedup_vs_torch_eager"] == pytest.approx(record["torch_eager_ms_per_step"] / record["ms_per_step"])
    assert len(record["ms_per_step_repeats"]["torch_eager"]) == 1
    if record["torch_compiled_error"] is None:  # torch.compile needs a C++ compiler; a failure is reported, not raised
        assert record["speedup_vs_torch_compiled"] == pytest.approx(
            record["torch_compiled_ms_per_step"] / record["ms_per_step"]
        )
        assert record["torch_compile_s"] > 0
    else:
        assert "speedup_vs_torch_compiled" not in record
    for field in ("speedup_vs_torch_eager", "torch_eager_ms_per_step"):
        assert math.isfinite(record[field]) and record[field] > 0
    assert "| × torch eager |" in table_path.read_text()
