"""Why do transformers use LayerNormalization, not BatchNormalization? The same small transformer
encoder, trained with each, at several batch sizes.

The data are scikit-learn's 8x8 digits, each image read as a sequence of 8 rows (tokens) of 8
pixels. The model is written as in Keras' transformer examples: a Dense projection plus learned
position embeddings, encoder blocks of MultiHeadAttention and a feed-forward network, each
wrapped in a residual add and a normalization layer, then average pooling and a softmax. Only the
normalization layer changes: LayerNormalization normalizes each token over its features, so it
does the same thing whatever the batch; BatchNormalization normalizes each feature over the batch
and the sequence, so its statistics are noisy in small batches and, at inference, replaced by
moving averages that the training batches never saw.

Prints a table of test accuracy and losses, and draws the curves to docs/transformer_norms.png.

    python examples/transformer_norms.py [--batch-sizes 4 16 64] [--epochs 12] [--long]
"""

import argparse
import time
from pathlib import Path

import numpy as np

import lamina
from lamina import layers

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEADS, FEED_FORWARD = 32, 4, 64


class PositionEmbedding(layers.Layer):
    """Adds a learned vector to each position of the sequence."""

    def build(self, input_shape):
        self.positions = self.add_weight(name="positions", shape=tuple(input_shape[1:]),
                                         initializer="random_normal")

    def call(self, inputs):
        return inputs + self.positions


def normalization(kind):
    return layers.LayerNormalization() if kind == "layer" else layers.BatchNormalization()


def encoder_block(x, kind):
    attended = layers.MultiHeadAttention(num_heads=HEADS, key_dim=WIDTH // HEADS, dropout=0.1)(x, x)
    x = normalization(kind)(x + attended)  # residual connections, as in Keras' transformer examples
    fed = layers.Dense(FEED_FORWARD, activation="relu")(x)
    fed = layers.Dense(WIDTH)(layers.Dropout(0.1)(fed))
    return normalization(kind)(x + fed)


def transformer(kind, steps, features, classes, blocks=2):
    inputs = layers.Input((steps, features))
    x = PositionEmbedding()(layers.Dense(WIDTH)(inputs))
    for _ in range(blocks):
        x = encoder_block(x, kind)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return lamina.Model(inputs, outputs)


def digits_as_sequences():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")  # (n, 8 rows, 8 pixels)
    return train_test_split(x, digits.target, test_size=0.25, random_state=0, stratify=digits.target)


def run(kind, batch_size, epochs, seed, data):
    x_train, x_test, y_train, y_test = data
    lamina.utils.set_random_seed(seed)
    model = transformer(kind, x_train.shape[1], x_train.shape[2], 10)
    model.compile(optimizer=lamina.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        validation_data=(x_test, y_test), verbose=0)
    return history.history


def plot(results, batch_sizes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(batch_sizes), figsize=(4 * len(batch_sizes), 6.5), sharey="row",
                             squeeze=False)
    colors = {"layer": "tab:blue", "batch": "tab:red"}
    names = {"layer": "LayerNormalization", "batch": "BatchNormalization"}
    for col, batch_size in enumerate(batch_sizes):
        for kind in ("layer", "batch"):
            runs = results[kind, batch_size]
            epochs = np.arange(1, len(runs[0]["loss"]) + 1)
            for i, history in enumerate(runs):
                label = names[kind] if i == 0 else None
                axes[0, col].plot(epochs, history["loss"], color=colors[kind], ls="--", alpha=0.6)
                axes[0, col].plot(epochs, history["val_loss"], color=colors[kind], label=label)
                axes[1, col].plot(epochs, history["val_accuracy"], color=colors[kind], label=label)
        axes[0, col].set_title(f"batch size {batch_size}")
        axes[0, col].set_yscale("log")
        axes[1, col].set_xlabel("epoch")
    axes[0, 0].set_ylabel("loss (dashed: train, solid: test)")
    axes[1, 0].set_ylabel("test accuracy")
    axes[1, 0].legend(loc="lower right")
    fig.suptitle("A 2-block transformer encoder on digits rows: LayerNorm vs BatchNorm")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=1, help="runs per configuration")
    parser.add_argument("--long", action="store_true", help="40 epochs and 3 seeds per configuration")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "transformer_norms.png")
    args = parser.parse_args()
    if args.long:
        args.epochs, args.seeds = 40, 3

    data = digits_as_sequences()
    results = {}
    # train loss: with the batch's own statistics (BN) in training mode; test loss: BN's moving
    # averages. A large gap for BN alone is the train/inference mismatch of its statistics.
    print(f"{'norm':<20}{'batch':>6}{'test acc':>10}{'train loss':>12}{'test loss':>11}"
          f"{'gap':>9}{'seconds':>9}")
    for batch_size in args.batch_sizes:
        for kind in ("layer", "batch"):
            start = time.perf_counter()
            runs = [run(kind, batch_size, args.epochs, seed, data) for seed in range(args.seeds)]
            results[kind, batch_size] = runs
            final = {key: np.mean([h[key][-1] for h in runs])
                     for key in ("val_accuracy", "loss", "val_loss")}
            name = "LayerNormalization" if kind == "layer" else "BatchNormalization"
            print(f"{name:<20}{batch_size:>6}{final['val_accuracy']:>10.3f}{final['loss']:>12.4f}"
                  f"{final['val_loss']:>11.4f}{final['val_loss'] - final['loss']:>9.4f}"
                  f"{time.perf_counter() - start:>9.1f}", flush=True)
    plot(results, args.batch_sizes, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
