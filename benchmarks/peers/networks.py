"""The networks gen_jax trains, as PyTorch modules built from the same experiment config.

Layer shapes and parameter counts match the Flax models (`gen_jax/models/vae.py`, `gan.py`; `tests/test_peers.py`
compares the counts); initialisation is PyTorch's own.  Images are NCHW here (PyTorch's layout) and NHWC in
gen_jax: the same tensors, stored in another order.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class VAE(nn.Module):
    """x f32[B, C, H, W] -> (logits f32[B, C·H·W], mean f32[B, D], log_var f32[B, D]); MLP encoder and decoder with
    ReLU hidden layers (`autoencoder.MLPEncoder` / `MLPDecoder`), z = mean + exp(½ log_var) ⊙ ε."""

    def __init__(self, pixels: int, hidden: tuple[int, ...], latent_dim: int):
        super().__init__()
        widths = (pixels, *hidden)
        self.encoder = _mlp(widths + (2 * latent_dim,), nn.ReLU)
        self.decoder = _mlp((latent_dim, *hidden[::-1], pixels), nn.ReLU)

    def forward(self, x: torch.Tensor):
        mean, log_var = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        return self.decoder(z), mean, log_var


def _mlp(widths: tuple[int, ...], activation, **kwargs) -> nn.Sequential:
    """Linear layers through `widths`, `activation(**kwargs)` between them (none after the last)."""
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(activation(**kwargs))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z f32[B, D] -> images f32[B, C, H, W] in [-1, 1]: LeakyReLU hidden layers, tanh (`gan.MLPGenerator`)."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], image_shape: tuple[int, int, int], slope: float):
        super().__init__()
        self.image_shape = image_shape
        self.net = _mlp((latent_dim, *hidden, math.prod(image_shape)), nn.LeakyReLU, negative_slope=slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        height, width, channels = self.image_shape
        return torch.tanh(self.net(z)).view(-1, channels, height, width)


class MLPDiscriminator(nn.Module):
    """images f32[B, C, H, W] -> logits f32[B]: LeakyReLU + dropout after each hidden layer (`gan.MLPDiscriminator`)."""

    def __init__(self, pixels: int, hidden: tuple[int, ...], slope: float, dropout: float):
        super().__init__()
        layers, fan_in = [], pixels
        for width in hidden:
            layers += [nn.Linear(fan_in, width), nn.LeakyReLU(slope), nn.Dropout(dropout)]
            fan_in = width
        self.net = nn.Sequential(*layers, nn.Linear(fan_in, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))[:, 0]


class DCGANGenerator(nn.Module):
    """z f32[B, D] -> images f32[B, C, H, W] in [-1, 1]: the TensorFlow tutorial's generator (`gan.DCGANGenerator`).

    Dense (no bias) + BatchNorm + LeakyReLU to an (H/2^s)×(W/2^s)×features[0] map, transposed 'same' convolutions
    (no bias; the first at stride 1, the rest at stride 2), BatchNorm + LeakyReLU after each but the last, tanh.
    BatchNorm as Keras': ε = 1e-3, running averages with momentum 0.99 (PyTorch's momentum 0.01).
    """

    def __init__(
        self,
        latent_dim: int,
        features: tuple[int, ...],
        kernel_size: int,
        image_shape: tuple[int, int, int],
        slope: float,
    ):
        super().__init__()
        height, width, channels = image_shape
        factor = 2 ** (len(features) - 1)
        self.coarse = (features[0], height // factor, width // factor)
        units = math.prod(self.coarse)
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, units, bias=False),
            nn.BatchNorm1d(units, eps=1e-3, momentum=0.01),
            nn.LeakyReLU(slope),
        )
        layers, fan_in = [], features[0]
        for i, fan_out in enumerate((*features[1:], channels)):
            stride = 1 if i == 0 else 2
            layers.append(
                nn.ConvTranspose2d(
                    fan_in, fan_out, kernel_size, stride, kernel_size // 2, output_padding=stride - 1, bias=False
                )
            )
            if i < len(features) - 1:  # every layer but the last
                layers += [nn.BatchNorm2d(fan_out, eps=1e-3, momentum=0.01), nn.LeakyReLU(slope)]
            fan_in = fan_out
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.convs(self.dense(z).view(-1, *self.coarse)))


class DCGANDiscriminator(nn.Module):
    """images f32[B, C, H, W] -> logits f32[B]: stride-2 'same' convolutions with LeakyReLU and dropout, then one
    Dense to a logit (`gan.DCGANDiscriminator`)."""

    def __init__(
        self,
        features: tuple[int, ...],
        kernel_size: int,
        image_shape: tuple[int, int, int],
        slope: float,
        dropout: float,
    ):
        super().__init__()
        height, width, channels = image_shape
        layers, fan_in = [], channels
        for fan_out in features:
            layers += [
                nn.Conv2d(fan_in, fan_out, kernel_size, 2, kernel_size // 2),
                nn.LeakyReLU(slope),
                nn.Dropout(dropout),
            ]
            fan_in, height, width = fan_out, (height + 1) // 2, (width + 1) // 2
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(fan_in * height * width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


def build(config, image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
    """The peer of the model `config` trains (a gen_jax experiment config): {"vae": …} for the MLP VAE, {"generator":
    …, "discriminator": …} for the MLP and DCGAN GANs.

    Raises:
      ValueError: a family or architecture without a peer (naming it).
    """
    model = config.model
    if config.family == "vae" and model.architecture == "mlp":
        return {"vae": VAE(math.prod(image_shape), tuple(model.hidden), model.latent_dim)}
    if config.family == "gan" and not model.conditional and not model.spectral_norm:
        if model.architecture == "mlp":
            return {
                "generator": MLPGenerator(model.latent_dim, tuple(model.g_hidden), image_shape, model.negative_slope),
                "discriminator": MLPDiscriminator(
                    math.prod(image_shape), tuple(model.d_hidden), model.negative_slope, model.d_dropout
                ),
            }
        return {
            "generator": DCGANGenerator(
                model.latent_dim, tuple(model.g_features), model.kernel_size, image_shape, model.negative_slope
            ),
            "discriminator": DCGANDiscriminator(
                tuple(model.d_features), model.kernel_size, image_shape, model.negative_slope, model.d_dropout
            ),
        }
    raise ValueError(
        f"no PyTorch peer for family {config.family!r} with architecture {model.architecture!r}: peers exist for the "
        "MLP VAE and the unconditional MLP and DCGAN GANs"
    )


def parameter_count(module: nn.Module) -> int:
    """Trainable scalars of `module` (BatchNorm's running statistics are buffers, not parameters, as in Flax)."""
    return sum(p.numel() for p in module.parameters())
