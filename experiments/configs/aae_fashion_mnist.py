"""The Adversarial AutoEncoder of the model-zoo table: the widths of `vae_mlp_fashion_mnist` (784-500-20 MLP,
Bernoulli on pixels binarised at 0.5, Adam 1e-3, batch 128, 10 epochs = 4,680 steps), a 256-256 discriminator on
the 20-D codes (Adam 1e-4), samples z ~ N(0, I) through the decoder scored by the reference classifier.

    python -m experiments.main --config experiments/configs/aae_fashion_mnist.py --workdir runs/aae_fm

--config.model.latent_dim=2 --config.model.hidden="(512, 256)" gives the 2-D code of `vae_2d` for its scatter.
"""

from gen_jax.tasks import aae


def get_config():
    config = aae.default_config()
    config.name = "aae_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.binarization = "static"
    config.model.latent_dim = 20
    config.num_steps = 4680
    config.log_every = 156
    config.eval_every = 468
    config.checkpoint_every = 936
    config.sample_quality.enabled = True
    return config
