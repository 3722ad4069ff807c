"""The Flax example's VAE on Fashion-MNIST: 784-500-20 MLP, Bernoulli on pixels binarised at 0.5, Adam 1e-3,
batch 128, 10 epochs (4,680 steps).

    python -m experiments.main --config experiments/configs/vae_mlp_fashion_mnist.py --workdir runs/vae_mlp_fm

About 8 minutes on 2 CPU cores (training under two minutes; the rest is the final IWAE with k = 1,000); test
−ELBO 126.72 / 126.24 / 126.83 nats for seeds 0 / 1 / 2, IWAE 119.02 for seed 0
(results/vae_mlp_fashion_mnist_seed{0,1,2}.json; docs/results.md's VAE table).
"""

from gen_jax.tasks import vae


def get_config():
    config = vae.default_config()
    config.name = "vae_mlp_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.binarization = "static"
    config.model.latent_dim = 20
    config.num_steps = 4680
    config.log_every = 156
    config.eval_every = 468
    config.checkpoint_every = 936
    return config
