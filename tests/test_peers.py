"""The PyTorch peers (benchmarks/peers/) are the networks gen_jax trains, and `throughput --peers` times them in the
same run as the JAX step.  Skipped where PyTorch is not installed (it is an optional extra, never a dependency)."""

import json
import math
import os

import jax
import pytest

import benchmarks.peers  # noqa: F401  (before torch: it sets OpenMP's wait policy)

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install -e '.[peers]' to test the peers")

from benchmarks import throughput  # noqa: E402
from benchmarks.peers import networks, steps  # noqa: E402
from gen_jax import tasks  # noqa: E402

QUICK = ["--batch-size", "8", "--steps-per-call", "2", "--repeats", "1", "--num-examples", "64", "--peak-size", "128"]


def flax_parameter_counts(name: str) -> dict[str, int]:
    """{network: parameter count} of the Flax model that `throughput`'s `name` trains."""
    config = throughput.build_config(name, 8, "f32")
    dataset = throughput.synthetic_dataset((28, 28, 1), 16, throughput.MODELS[name].images)
    state = jax.eval_shape(tasks.get(config.family).make_task(config, dataset).init_state, jax.random.key(0))
    count = lambda tree: sum(leaf.size for leaf in jax.tree.leaves(tree))
    if config.family == "vae":
        return {"vae": count(state.params)}
    return {"generator": count(state.g_params), "discriminator": count(state.d_params)}


@pytest.mark.parametrize("name", ["vae_mlp", "gan_mlp", "dcgan"])
def test_each_peer_has_the_flax_models_parameter_counts(name):
    config = throughput.build_config(name, 8, "f32")
    peers = networks.build(config, (28, 28, 1))
    assert {key: networks.parameter_count(module) for key, module in peers.items()} == flax_parameter_counts(name)


def test_models_without_a_peer_are_refused_by_name():
    with pytest.raises(ValueError, match="no PyTorch peer for family 'vae' with architecture 'conv'"):
        networks.build(throughput.build_config("vae_conv", 8, "f32"), (28, 28, 1))
    with pytest.raises(ValueError, match="unknown peer mode 'jit'"):
        steps.make_runner(throughput.build_config("vae_mlp", 8, "f32"), None, 8, "jit")


def test_peer_steps_train_the_vae():
    """Twenty eager steps of the VAE peer on 16 images lower its −ELBO: the step updates what it differentiates."""
    config = throughput.build_config("vae_mlp", 8, "f32")
    dataset = throughput.synthetic_dataset((28, 28, 1), 16, "binary")
    torch.manual_seed(0)
    vae = networks.build(config, (28, 28, 1))["vae"]
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
    """`--model vae_mlp --peers` in its quick mode: PyTorch eager and torch.compile timed in the same repeats."""
    json_path, table_path = tmp_path / "peers.json", tmp_path / "table.md"
    throughput.main(["--model", "vae_mlp", "--peers", *QUICK, "--json", str(json_path), "--markdown", str(table_path)])
    record = json.loads(json_path.read_text())
    assert record["torch_version"] == torch.__version__ and record["torch_device"] == "cpu"
    assert record["torch_threads"] == os.cpu_count() == torch.get_num_threads()
    assert record["speedup_vs_torch_eager"] == pytest.approx(record["torch_eager_ms_per_step"] / record["ms_per_step"])
    assert len(record["torch_eager_ms_per_step_repeats"]) == 1
    if record["torch_compiled_error"] is None:  # torch.compile needs a C++ compiler; a failure is reported, not raised
        assert record["speedup_vs_torch_compiled"] == pytest.approx(
            record["torch_compiled_ms_per_step"] / record["ms_per_step"]
        )
        assert record["torch_compile_s"] > 0
    else:
        assert record["speedup_vs_torch_compiled"] is None
    for field in ("speedup_vs_torch_eager", "torch_eager_ms_per_step"):
        assert math.isfinite(record[field]) and record[field] > 0
    table = table_path.read_text()
    assert "| × torch eager | × torch.compile |" in table and f"PyTorch {torch.__version__}" in table
