"""ae_vs_pca: PCA, the linear AutoEncoder and an MLP AutoEncoder at k = 2, 8, 32 (capped at the data's dimension).

    python -m experiments.main --config experiments/configs/ae_vs_pca.py --workdir runs/ae_vs_pca

Digits by default (about 2 minutes on 2 CPU cores); `--config.dataset=fashion_mnist` runs the same comparison on
Fashion-MNIST (about 3 minutes).  Give a trained VAE run (`--config.vae_workdir=<run>`) to add its latent space to
the 2-D embedding figure.  Result: the linear AE's test error is 0.994–1.001 times PCA's at every k on both data sets
(results/ae_vs_pca_digits.json, results/ae_vs_pca_fashion_mnist.json; docs/results.md's table).
"""

from gen_jax.tasks import ae


def get_config():
    config = ae.default_config()
    config.name = "ae_vs_pca"
    config.experiment = "ae_vs_pca"
    config.dataset = "digits"
    config.model.hidden = (256, 128)  # the non-linear AutoEncoder
    config.num_steps = 3000
    config.log_every = 100
    config.eval_every = 1000
    config.checkpoint_every = 1000
    with config.unlocked():
        config.ks = (2, 8, 32)  # code sizes; each capped at the number of pixels
        # The linear AutoEncoder (hidden=(), MSE), cosine-decayed from a larger rate: fewer steps or a constant
        # rate leave it percents above PCA on Fashion-MNIST.
        config.linear_num_steps = 8000
        config.linear_learning_rate = 1e-2
        config.vae_workdir = ""  # a trained VAE run on the same data set, for the embedding figure ("" = none)
    return config
