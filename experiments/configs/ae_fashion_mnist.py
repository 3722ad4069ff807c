"""The AutoEncoder row of the model-zoo table: the widths and recipe of `vae_mlp_fashion_mnist` (784-500-20 MLP,
pixels binarised at 0.5, Bernoulli reconstruction loss, Adam 1e-3 constant, batch 128, 10 epochs = 4,680 steps)
with a deterministic 20-D code and no prior: the reconstruction the VAE's KL term trades against.

    python -m experiments.sweep --config experiments/configs/ae_fashion_mnist.py --workdir runs/ae_fm --sweep seed=0:3

Seeds 0–2 in that one command (results/sweep_ae_fashion_mnist.json): test MSE 0.0338 ± 0.0001 per pixel, test
Bernoulli loss 88.05 ± 0.28 nats; 5.4 minutes for the three on the shared 2-core machine (docs/results.md's model-zoo
table).
"""

from gen_jax.tasks import ae


def get_config():
    config = ae.default_config()
    config.name = "ae_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.binarization = "static"
    config.model.hidden = (500,)
    config.model.latent_dim = 20
    config.model.reconstruction_loss = "bernoulli"
    config.optim.schedule = "constant"
    config.num_steps = 4680
    config.log_every = 156
    config.eval_every = 468
    config.checkpoint_every = 936
    return config
