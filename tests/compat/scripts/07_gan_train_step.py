"""A small GAN on 8x8 digits: two sub-models, two optimizers, one custom train_step, trackers."""

import keras
import numpy as np
import torch
from keras import layers, ops
from scriptkit import save_results, seeded_weights
from sklearn.datasets import load_digits

LATENT = 8


class GAN(keras.Model):
    def __init__(self, discriminator, generator, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.seed_generator = keras.random.SeedGenerator(7)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def call(self, images):
        return self.discriminator(images)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def _apply(self, loss, model, optimizer):
        loss.backward()
        weights = model.trainable_weights
        with torch.no_grad():
            optimizer.apply([w.value.grad for w in weights], weights)

    def train_step(self, real):
        batch = ops.shape(real)[0]
        noise = keras.random.normal((batch, LATENT), seed=self.seed_generator)
        fake = self.generator(noise)
        images = ops.concatenate([fake, real], axis=0)
        labels = ops.concatenate([ops.ones((batch, 1)), ops.zeros((batch, 1))], axis=0)

        self.zero_grad()
        d_loss = self.loss_fn(labels, self.discriminator(images))
        self._apply(d_loss, self.discriminator, self.d_optimizer)

        noise = keras.random.normal((batch, LATENT), seed=self.seed_generator)
        self.zero_grad()
        g_loss = self.loss_fn(ops.zeros((batch, 1)), self.discriminator(self.generator(noise)))
        self._apply(g_loss, self.generator, self.g_optimizer)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


digits = (load_digits().images[:256] / 16.0).reshape(-1, 64).astype("float32")
discriminator = keras.Sequential([keras.Input((64,)), layers.Dense(32), layers.LeakyReLU(0.2),
                                  layers.Dense(1)], name="discriminator")
generator = keras.Sequential([keras.Input((LATENT,)), layers.Dense(32), layers.LeakyReLU(0.2),
                              layers.Dense(64, activation="sigmoid")], name="generator")
seeded_weights(discriminator, seed=1)
seeded_weights(generator, seed=2)
gan = GAN(discriminator, generator)
gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3),
            loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
history = gan.fit(digits, batch_size=32, epochs=4, verbose=0)
samples = ops.convert_to_numpy(generator(keras.random.normal((16, LATENT), seed=3)))

save_results({
    "history_keys": sorted(history.history),
    "epochs": len(history.history["d_loss"]),
    "d_loss": history.history["d_loss"],
    "g_loss": history.history["g_loss"],
    "sample_shape": list(samples.shape),
    "samples_in_unit_range": bool(samples.min() >= 0 and samples.max() <= 1),
    "discriminator_changed": bool(np.abs(discriminator.get_weights()[0]
                                         - seeded_weights(keras.models.clone_model(discriminator), seed=1)
                                         .get_weights()[0]).max() > 1e-4),
})
