"""The IWAE (Burda et al. 2016): the Flax example's VAE (784-500-20 MLP, Bernoulli on pixels binarised at 0.5, Adam
1e-3, batch 128, 10 epochs = 4,680 steps) trained on the k-sample importance-weighted bound, k = 5.

    python -m experiments.main --config experiments/configs/iwae_fashion_mnist.py --workdir runs/iwae_fm_k5
    python -m experiments.main --config experiments/configs/iwae_fashion_mnist.py --workdir runs/iwae_fm_k50 \\
        --config.num_importance_samples=50

Evaluated as `vae_mlp_fashion_mnist` is (test −ELBO, and the IWAE estimate of −log p(x) with k = 1,000), so the
two compare row for row.

Seed 0, k = 5 (2026-11-30, results/superseded/iwae_fashion_mnist_k5_seed0.json): test IWAE −log p(x) 117.28 nats
against the VAE's 119.02, test −ELBO 130.68 against 126.72 (the bound is tighter, the ELBO looser);
about 70 minutes on a shared 2-core machine (load ~12).  Seeds 0–2, k = 5, in one sweep
(results/sweep_iwae_fashion_mnist_k5.json, 2026-12-01, 29.7 minutes for the three at load ~3, sample quality on):
IWAE −log p(x) 117.30 ± 0.08 against the VAE's 118.89 ± 0.17 over the same seeds, −ELBO 130.83 ± 0.14.  k = 50,
seeds 0–2 in one sweep with `--members_in_turn` (results/sweep_iwae_fashion_mnist_k50.json, 2026-12-01, 112 minutes
for the three beside another training): IWAE −log p(x) 116.24 ± 0.09, −ELBO 144.91 ± 0.54.

    python -m experiments.sweep --config experiments/configs/iwae_fashion_mnist.py --workdir runs/iwae_k5 \
        --sweep seed=0:3 --config.sample_quality.enabled=True
"""

from experiments.configs import vae_mlp_fashion_mnist


def get_config():
    config = vae_mlp_fashion_mnist.get_config()
    config.name = "iwae_fashion_mnist"
    config.objective = "iwae"
    config.num_importance_samples = 5
    return config
