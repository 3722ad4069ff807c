"""A VAE with a 2-D latent space on Fashion-MNIST, for the pictures: scatter by class, the decoded manifold,
interpolation paths.  `--config.dataset=digits` gives the same pictures for the digits in seconds.

    python -m experiments.main --config experiments/configs/vae_2d.py --workdir runs/vae_2d

About 2 minutes on 2 CPU cores with --config.iwae_k=0; test −ELBO 169.51 nats for seed 0
(results/superseded/vae_2d.json), 169.89 ± 0.41 over seeds 0–2 in one sweep (results/sweep_vae_2d.json).
"""

from experiments.configs import vae_mlp_fashion_mnist


def get_config():
    config = vae_mlp_fashion_mnist.get_config()
    config.name = "vae_2d"
    config.model.hidden = (512, 256)
    config.model.latent_dim = 2
    config.eval_every = 936
    return config
