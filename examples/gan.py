"""A conditional GAN on scikit-learn's 8x8 digits, trained by its own `train_step`.

The generator turns noise and a digit class into an 8x8 image; its hidden layers are normalised by
`ConditionalBatchNormalization`, whose scale and offset are looked up by the class, so the class
steers every layer. The discriminator sees an image with its class and says whether it is real.
The GAN is a Keras-style model with its own `compile(d_optimizer=, g_optimizer=, loss_fn=)` and
`train_step`, as in Keras' guide "Customizing what happens in fit() with PyTorch": `fit` runs that
step (with its progress bar), which trains the discriminator on real and generated images, then
the generator through the discriminator. The generator's output is part of training, so it runs
with training=True there (batch statistics) and with training=False when sampling.

    python examples/gan.py [--epochs 150] [-o docs/gan_digits.png]

Writes a grid of generated digits: one row per class 0-9.
"""

import argparse

import numpy as np
import torch

import lamina
from lamina import layers

LATENT, CLASSES = 32, 10


class Generator(lamina.Model):
    """noise (batch, LATENT), class ids (batch,) -> images (batch, 64) in [-1, 1]."""

    def __init__(self):
        super().__init__(name="generator")
        self.dense1, self.norm1 = layers.Dense(128), layers.ConditionalBatchNormalization(CLASSES)
        self.dense2, self.norm2 = layers.Dense(256), layers.ConditionalBatchNormalization(CLASSES)
        self.out = layers.Dense(64, activation="tanh")

    def call(self, inputs, training=None):
        noise, classes = inputs
        h = torch.relu(self.norm1([self.dense1(noise), classes], training=training))
        h = torch.relu(self.norm2([self.dense2(h), classes], training=training))
        return self.out(h)


class Discriminator(lamina.Model):
    """images (batch, 64), class ids (batch,) -> the logit of "real"."""

    def __init__(self):
        super().__init__(name="discriminator")
        self.hidden1, self.hidden2 = layers.Dense(256), layers.Dense(128)
        self.dropout = layers.Dropout(0.3)
        self.out = layers.Dense(1)

    def call(self, inputs, training=None):
        images, classes = inputs
        one_hot = torch.nn.functional.one_hot(classes.long().reshape(-1), CLASSES).to(images.dtype)
        h = torch.nn.functional.leaky_relu(self.hidden1(torch.cat([images, one_hot], -1)), 0.2)
        h = torch.nn.functional.leaky_relu(self.hidden2(self.dropout(h, training=training)), 0.2)
        return self.out(h)


class ConditionalGAN(lamina.Model):
    def __init__(self, generator, discriminator):
        super().__init__(name="conditional_gan")
        self.generator, self.discriminator = generator, discriminator
        self.d_loss_tracker = lamina.metrics.Mean(name="d_loss")
        self.g_loss_tracker = lamina.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def train_step(self, data):
        real, classes = data
        n, device = real.shape[0], real.device
        noise = torch.randn(n, LATENT, device=device)
        fake = self.generator([noise, classes], training=True)

        # The discriminator: real images are labelled 1 (smoothed to 0.9), generated ones 0.
        self.zero_grad()
        logits = self.discriminator([torch.cat([real, fake.detach()]), torch.cat([classes, classes])],
                                    training=True)
        labels = torch.cat([torch.full((n, 1), 0.9, device=device), torch.zeros(n, 1, device=device)])
        d_loss = self.loss_fn(labels, logits)
        d_loss.backward()
        d_weights = self.discriminator.trainable_weights
        with torch.no_grad():
            self.d_optimizer.apply([w.grad for w in d_weights], d_weights)

        # The generator: its images should be taken for real.
        self.zero_grad()
        g_loss = self.loss_fn(torch.ones(n, 1, device=device),
                              self.discriminator([fake, classes], training=True))
        g_loss.backward()
        g_weights = self.generator.trainable_weights
        with torch.no_grad():
            self.g_optimizer.apply([w.grad for w in g_weights], g_weights)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}


def save_grid(generator, path, per_class=10, seed=0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.manual_seed(seed)
    device = next(generator.parameters()).device
    classes = torch.arange(CLASSES, device=device).repeat_interleave(per_class)
    noise = torch.randn(len(classes), LATENT, device=device)
    with torch.no_grad():
        images = generator([noise, classes], training=False).cpu().numpy()
    # One row per class: (classes, per_class, 8, 8) -> (classes*9, per_class*9) with 1-pixel gaps.
    tiles = np.full((CLASSES, per_class, 9, 9), -1.0, dtype="float32")
    tiles[:, :, :8, :8] = images.reshape(CLASSES, per_class, 8, 8)
    grid = tiles.transpose(0, 2, 1, 3).reshape(CLASSES * 9, per_class * 9)[:-1, :-1]
    fig, ax = plt.subplots(figsize=(5, 5.3))
    ax.imshow(grid, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks([9 * c + 3.5 for c in range(CLASSES)], [str(c) for c in range(CLASSES)])
    ax.set_xticks([])
    ax.set_ylabel("class asked for")
    ax.set_title("Conditional GAN, 8x8 digits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("-o", "--output", default="docs/gan_digits.png")
    args = parser.parse_args()

    from sklearn.datasets import load_digits

    lamina.utils.set_random_seed(0)
    digits = load_digits()
    images = (digits.data / 8.0 - 1.0).astype("float32")  # pixel values 0..16 -> [-1, 1]
    classes = digits.target.astype("int64")

    gan = ConditionalGAN(Generator(), Discriminator())
    gan.compile(d_optimizer=lamina.optimizers.Adam(2e-4, beta_1=0.5),
                g_optimizer=lamina.optimizers.Adam(2e-4, beta_1=0.5),
                loss_fn=lamina.losses.BinaryCrossentropy(from_logits=True))
    history = gan.fit(images, classes, batch_size=64, epochs=args.epochs)
    save_grid(gan.generator, args.output)
    print(f"final d_loss {history.history['d_loss'][-1]:.3f}, g_loss {history.history['g_loss'][-1]:.3f}; "
          f"samples per class written to {args.output}")


if __name__ == "__main__":
    main()
