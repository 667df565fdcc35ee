"""A training loop written from scratch, as in Keras' torch-backend guide: a torch DataLoader, the
model called on batches, loss_fn, backward, optimizer.apply, metrics updated and reset by hand."""

import keras
import numpy as np
import torch
from keras import layers
from scriptkit import save_results, seeded_weights

rng = np.random.default_rng(31)
x = rng.normal(size=(60, 4)).astype("float32")
y = (x[:, 0] - x[:, 2] > 0).astype("int64")
dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
loader = torch.utils.data.DataLoader(dataset, batch_size=20, shuffle=False)

model = seeded_weights(keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"),
                                         layers.Dense(2)]))
optimizer = keras.optimizers.Adam(learning_rate=1e-2)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
train_acc = keras.metrics.SparseCategoricalAccuracy()

epoch_losses, epoch_accuracies = [], []
for _ in range(3):
    batch_losses = []
    for inputs, targets in loader:
        logits = model(inputs)
        loss = loss_fn(targets, logits)
        model.zero_grad()
        loss.backward()
        trainable_weights = [v for v in model.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            optimizer.apply(gradients, trainable_weights)
        train_acc.update_state(targets, logits)
        batch_losses.append(float(loss.detach()))
    epoch_losses.append(batch_losses)
    epoch_accuracies.append(float(train_acc.result()))
    train_acc.reset_state()

save_results({
    "losses": epoch_losses,
    "accuracies": epoch_accuracies,
    "iterations": int(optimizer.iterations.numpy()),
    "logits": model(torch.from_numpy(x[:4])).detach(),
})
