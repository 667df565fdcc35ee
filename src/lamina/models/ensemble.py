"""Ensemble: one model over several independently trained members that averages their outputs.

InceptionTime, H-InceptionTime and LITETime are ensembles of five networks of one architecture,
each trained on its own from its own initial weights; their prediction is the mean of the five
softmax outputs. `Ensemble` is that, as a lamina Model: `predict`, `evaluate`, `summary`,
`save` and `load_model` work on it as on any model, and `fit` trains the members one after the
other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lamina.callbacks import History
from lamina.models.model import Model


class Ensemble(Model):
    """The mean of the outputs of `members` (models with the same inputs and output shape).

    Args:
        members: the member models (e.g. five networks built by the same function).
        name: the model's name.

    `compile` gives each member its own copy of the optimizer; `fit` trains each member in turn
    with the same arguments and callbacks (callbacks see each member as `self.model`, and reset at
    each member's `on_train_begin`) and returns a History of the members' mean logs per epoch,
    with each member's own History in `history.members`.

    Example:
        >>> ensemble = Ensemble([fcn((150, 1), 2) for _ in range(5)])
        >>> ensemble.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> ensemble.fit(x, y, epochs=100)
        >>> ensemble.predict(x_test)             # the mean of the five members' probabilities
    """

    def __init__(self, members, name=None, **kwargs):
        members = list(members)
        if not members or not all(isinstance(m, Model) for m in members):
            raise ValueError(f"Ensemble: `members` must be a non-empty list of lamina models. "
                             f"Received: members={members!r}")
        super().__init__(name=name, **kwargs)
        self.members = nn.ModuleList(members)

    def call(self, inputs, training=None):
        return torch.stack([member(inputs, training=training) for member in self.members]).mean(0)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        for member in self.members:
            own = optimizer if isinstance(optimizer, str) else type(optimizer).from_config(
                optimizer.get_config())
            member.compile(optimizer=own, loss=loss, metrics=metrics, **kwargs)
        # The ensemble's own compile is what evaluate uses; its optimizer never steps.
        super().compile(optimizer="sgd", loss=loss, metrics=metrics, **kwargs)

    def fit(self, x=None, y=None, **kwargs):
        histories = [member.fit(x, y, **kwargs) for member in self.members]
        epochs = min(len(h.epoch) for h in histories)
        history = History()
        history.set_model(self)
        history.epoch = histories[0].epoch[:epochs]
        history.history = {key: np.mean([h.history[key][:epochs] for h in histories], axis=0).tolist()
                           for key in histories[0].history}
        history.members = histories
        return history

    def train_step(self, data):
        # Only fit trains member by member; a step on the mean output would train the members
        # jointly, which is another model.
        raise NotImplementedError(
            f"Ensemble '{self.name}' trains its members one after the other in fit(); call fit, "
            "or train_on_batch on a member (ensemble.members[i]).")

    def get_config(self) -> dict:
        from lamina.saving.config import serialize

        return {**super().get_config(), "members": [serialize(m) for m in self.members]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from lamina.saving.config import custom_object_scope, deserialize

        config = dict(config)
        with custom_object_scope(custom_objects):
            members = [deserialize(entry, where=f"Ensemble '{config.get('name')}', member {i}")
                       for i, entry in enumerate(config.pop("members"))]
        return cls(members, **config)
