"""The Adversarial AutoEncoder of the model-zoo table: the widths of `vae_mlp_fashion_mnist` (784-500-20 MLP,
Bernoulli on pixels binarised at 0.5, Adam 1e-3, batch 128, 10 epochs = 4,680 steps), a 256-256 discriminator on
the 20-D codes, samples z ~ N(0, I) through the decoder scored by the reference classifier.  The regularisation
phase (D and the encoder against it) runs at Adam 1e-4: at the family's 1e-3 the discriminator won at once on these
20-D codes (generator loss ~20 nats by step 312) and the reconstruction stalled (~265 nats per example); at 1e-4 the
first epoch trained stably (reconstruction 112 nats; test code_prior_frechet falling 54 -> 34; training means of
1-epoch probes, 2026-11-30).

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
    config.reg_optim.learning_rate = 1e-4
    config.d_optim.learning_rate = 1e-4
    config.sample_quality.enabled = True
    return config
