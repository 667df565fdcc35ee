"""A model's own train_step/test_step/predict_step always run, as in Keras 3's torch guide
"Customizing what happens in fit() with PyTorch". Each script below is written once against a
module `k` and run with Keras 3 (torch backend) and with lamina: same weights, same numbers."""

import numpy as np
import pytest
import torch

import lamina
from tests.parity import keras

BACKENDS = {"keras": keras, "lamina": lamina}


def _data(n=64, features=6, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    y = (x[:, :1] * 0.7 - x[:, 1:2] * 0.3).astype("float32")
    return x, y


def _weights(model, seed=1):
    rng = np.random.RandomState(seed)
    model.set_weights([(rng.standard_normal(w.shape) * 0.3).astype("float32") for w in model.get_weights()])


def _grad(v):
    """The gradient of a weight as the guide reads it."""
    return v.value.grad


def _assert_histories_equal(a, b, rtol=1e-5, atol=1e-6):
    assert set(a.history) == set(b.history)
    for key in a.history:
        np.testing.assert_allclose(a.history[key], b.history[key], rtol=rtol, atol=atol, err_msg=key)


# ---------------------------------------------------------------------------- the guide's steps
def _guide_model(k):
    class CustomModel(k.Model):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [_grad(v) for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    inputs = k.Input(shape=(6,))
    hidden = k.layers.Dense(8, activation="relu")(inputs)
    model = CustomModel(inputs, k.layers.Dense(1)(hidden))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    _weights(model)
    return model


def test_guide_train_and_test_steps_match_keras():
    x, y = _data()
    results = {}
    for name, k in BACKENDS.items():
        model = _guide_model(k)
        history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                            validation_data=(x[:32], y[:32]))
        results[name] = (history, model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True),
                         model.get_weights(), model.metrics_names)
    (h_k, e_k, w_k, n_k), (h_l, e_l, w_l, n_l) = results["keras"], results["lamina"]
    _assert_histories_equal(h_k, h_l)
    assert e_k.keys() == e_l.keys()
    np.testing.assert_allclose([e_l[key] for key in e_k], list(e_k.values()), rtol=1e-5)
    for a, b in zip(w_k, w_l):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert n_l == n_k == ["loss", "compile_metrics"]


def test_guide_step_reads_gradients_from_variable_value():
    """The guide's literal `v.value.grad` (lamina's weights are Keras Variables)."""
    model = _guide_model(lamina)
    x, y = _data()
    reference = _guide_model(keras)
    _assert_histories_equal(reference.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0),
                            model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0))


def _lower_level_model(k):
    """The guide's lower-level variant: no compiled loss, the model tracks its own metrics."""

    class CustomModel(k.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = k.metrics.Mean(name="loss")
            self.mae_metric = k.metrics.MeanAbsoluteError(name="mae")

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = k.losses.mean_squared_error(y, y_pred)
            loss = loss.mean()
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            with torch.no_grad():
                self.optimizer.apply([_grad(v) for v in trainable_weights], trainable_weights)
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

    inputs = k.Input(shape=(6,))
    model = CustomModel(inputs, k.layers.Dense(1)(inputs))
    model.compile(optimizer="adam")
    _weights(model)
    return model


def test_train_step_without_a_compiled_loss_matches_keras():
    x, y = _data()
    histories = [_lower_level_model(k).fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
                 for k in BACKENDS.values()]
    _assert_histories_equal(*histories)


def _weighted_step_model(k):
    """The guide's sample_weight variant, trained with class_weight."""

    class CustomModel(k.Model):
        def train_step(self, data):
            x, y, sample_weight = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            with torch.no_grad():
                self.optimizer.apply([_grad(v) for v in trainable_weights], trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    inputs = k.Input(shape=(6,))
    model = CustomModel(inputs, k.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    _weights(model)
    return model


def test_sample_weighted_step_with_class_weight_matches_keras():
    x, y = _data()
    labels = (y > 0).astype("float32")
    histories = [_weighted_step_model(k).fit(x, labels, batch_size=16, epochs=2, shuffle=False, verbose=0,
                                             class_weight={0: 1.0, 1: 4.0}) for k in BACKENDS.values()]
    _assert_histories_equal(*histories)


def _compute_loss_model(k):
    """compute_loss overridden with the signature from before Keras 3.3 (no `training`)."""

    class CustomModel(k.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.mae_tracker = k.metrics.Mean(name="abs_error")

        def compute_loss(self, x, y, y_pred, sample_weight):
            self.mae_tracker.update_state(torch.mean(torch.abs(y_pred - y)))
            return torch.mean((y_pred - y) ** 2) * 2.0

    inputs = k.Input(shape=(6,))
    model = CustomModel(inputs, k.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd")
    _weights(model)
    return model


def test_compute_loss_override_without_training_argument_matches_keras():
    x, y = _data()
    histories = [_compute_loss_model(k).fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                                            validation_data=(x, y)) for k in BACKENDS.values()]
    _assert_histories_equal(*histories)


# ---------------------------------------------------------------------------- a GAN's pattern
def _gan(k, latent_dim=3):
    """Two optimizers through an overridden compile(); the generator's output is trained through
    the discriminator. The latent codes are a fixed function of the batch, for the comparison."""
    discriminator = k.Sequential([k.Input((4,)), k.layers.Dense(5, activation="relu"), k.layers.Dense(1)],
                                 name="discriminator")
    generator = k.Sequential(
        [k.Input((latent_dim,)), k.layers.Dense(5, activation="relu"), k.layers.Dense(4)], name="generator")

    class GAN(k.Model):
        def __init__(self, discriminator, generator):
            super().__init__()
            self.discriminator, self.generator = discriminator, generator
            self.d_loss_tracker = k.metrics.Mean(name="d_loss")
            self.g_loss_tracker = k.metrics.Mean(name="g_loss")

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def call(self, x):  # Keras builds the model by calling it
            return self.discriminator(x)

        def train_step(self, real):
            if isinstance(real, tuple):
                real = real[0]
            latent = real[:, :latent_dim] * 0.5
            fake = self.generator(latent, training=True)
            both = torch.cat([fake, real])
            ones, zeros = torch.ones_like(real[:, :1]), torch.zeros_like(real[:, :1])
            labels = torch.cat([ones, zeros])
            self.zero_grad()
            d_loss = self.loss_fn(labels, self.discriminator(both.detach(), training=True))
            d_loss.backward()
            d_weights = self.discriminator.trainable_weights
            with torch.no_grad():
                self.d_optimizer.apply([_grad(v) for v in d_weights], d_weights)
            self.zero_grad()
            g_loss = self.loss_fn(zeros,
                                  self.discriminator(self.generator(latent, training=True), training=True))
            g_loss.backward()
            g_weights = self.generator.trainable_weights
            with torch.no_grad():
                self.g_optimizer.apply([_grad(v) for v in g_weights], g_weights)
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    _weights(discriminator, 2)
    _weights(generator, 3)
    gan = GAN(discriminator, generator)
    gan.compile(d_optimizer=k.optimizers.SGD(0.05, momentum=0.5), g_optimizer=k.optimizers.SGD(0.1),
                loss_fn=k.losses.BinaryCrossentropy(from_logits=True))
    return gan


def test_gan_with_two_optimizers_matches_keras():
    real = np.random.RandomState(4).standard_normal((48, 4)).astype("float32")
    results = []
    for k in BACKENDS.values():
        gan = _gan(k)
        history = gan.fit(real, batch_size=16, epochs=3, shuffle=False, verbose=0)
        results.append((history, gan.generator.get_weights(), int(gan.d_optimizer.iterations),
                        int(gan.g_optimizer.iterations)))
    (h_k, w_k, *it_k), (h_l, w_l, *it_l) = results
    _assert_histories_equal(h_k, h_l, rtol=1e-4)
    for a, b in zip(w_k, w_l):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    assert it_l == it_k == [9, 9]


# ---------------------------------------------------------------------------- steps always run
def _counting(base):
    class Counting(base):
        calls = None

        def _count(self, what):
            self.calls = {**(self.calls or {}), what: (self.calls or {}).get(what, 0) + 1}

        def train_step(self, data):
            self._count("train")
            return {"custom": 41.0 + self.calls["train"], "seen": torch.tensor(float(len(data)))}

        def test_step(self, data):
            self._count("test")
            return {"checked": torch.tensor(7.0)}

        def predict_step(self, data):
            self._count("predict")
            x = data[0] if isinstance(data, tuple) else data
            return torch.full((x.shape[0], 3), 5.0)

    return Counting


def _counting_models():
    """A subclassed, a Sequential (a Dense softmax stack with sparse cross-entropy: the model the
    hand-derived Dense step takes) and a functional subclass, each counting its step calls."""
    from lamina import layers

    class Subclassed(lamina.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.dense(x)

    def functional():
        inputs = layers.Input((6,))
        return _counting(lamina.Model)(inputs, layers.Dense(3, activation="softmax")(inputs))

    return {
        "subclassed": lambda: _counting(Subclassed)(),
        "sequential": lambda: _counting(lamina.Sequential)(
            [layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")]),
        "functional": functional,
    }


@pytest.mark.parametrize("kind", ["subclassed", "sequential", "functional"])
def test_fit_evaluate_predict_run_only_the_models_own_steps(kind):
    model = _counting_models()[kind]()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, _ = _data()
    y = np.random.RandomState(3).randint(0, 3, len(x))
    model(torch.as_tensor(x[:2]))  # built, so that the weights can be compared
    before = [w.copy() for w in model.get_weights()]

    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y))
    assert model.calls == {"train": 8, "test": 8}
    assert history.history == {"custom": [45.0, 49.0], "seen": [2.0, 2.0], "val_checked": [7.0, 7.0]}
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the train_step asked for no update

    assert model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True) == {"checked": 7.0}
    assert model.calls["test"] == 10
    np.testing.assert_array_equal(model.predict(x, batch_size=16, verbose=0), np.full((64, 3), 5.0))
    np.testing.assert_array_equal(model.predict(x[:1], verbose=0), np.full((1, 3), 5.0))
    np.testing.assert_array_equal(model.predict_on_batch(x[:4]), np.full((4, 3), 5.0))
    assert model.calls["predict"] == 4 + 1 + 1
    assert model.train_on_batch(x, y, return_dict=True)["custom"] == 50.0
    assert model.test_on_batch(x, y) == 7.0
    assert model.calls == {"train": 9, "test": 11, "predict": 6}
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_step_calling_the_default_step_trains_as_the_default():
    """super().train_step is the default step (lamina's hand-derived Dense step included): the same
    model subclassed so, in Keras and in lamina, from the same weights, trains to the same losses."""
    x, _ = _data()
    y = np.random.RandomState(3).randint(0, 3, len(x))
    histories, steps = [], []
    for k in BACKENDS.values():
        class Logged(k.Sequential):
            library = k

            def train_step(self, data):
                steps.append(self.library)
                return super().train_step(data)

        model = Logged([k.layers.Input((6,)), k.layers.Dense(8, activation="relu"),
                        k.layers.Dense(3, activation="softmax")])
        _weights(model)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        histories.append(model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0))
    assert steps.count(lamina) == steps.count(keras) == 8
    _assert_histories_equal(*histories)


# ---------------------------------------------------------------------------- logs and metrics
def test_step_logs_may_be_floats_tensors_or_nested_as_keras():
    x, y = _data(16)
    histories = []
    for k in BACKENDS.values():
        class Plain(k.Model):
            def train_step(self, data):
                return {"a": 1.5, "b": torch.tensor(2.0), "nested": {"c": torch.tensor(3.0)}}

        inputs = k.Input((6,))
        model = Plain(inputs, k.layers.Dense(1)(inputs))
        model.compile()
        histories.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0))
    _assert_histories_equal(*histories)
    assert histories[1].history == {"a": [1.5, 1.5], "b": [2.0, 2.0], "c": [3.0, 3.0]}


def test_metrics_set_as_attributes_are_reset_each_epoch_as_keras():
    x, y = _data(64)
    histories = []
    for k in BACKENDS.values():
        class Tracking(k.Model):
            mean_class = k.metrics.Mean
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.step_mean = type(self).mean_class(name="step_mean")

            def train_step(self, data):
                self.step_mean.update_state(float(self.optimizer.iterations))
                logs = super().train_step(data)
                return {**logs, "step_mean": self.step_mean.result()}

        inputs = k.Input((6,))
        model = Tracking(inputs, k.layers.Dense(1)(inputs))
        model.compile(optimizer="sgd", loss="mse")
        _weights(model)
        histories.append(model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0))
        assert model.metrics_names == ["loss", "step_mean"]
    _assert_histories_equal(*histories)
    assert histories[1].history["step_mean"] == [1.5, 5.5, 9.5]


def test_class_weight_weights_only_weighted_metrics_as_keras():
    x, y = _data(96)
    labels = (y > 0.4).astype("float32")
    results = []
    for k in BACKENDS.values():
        model = k.Sequential([k.Input((6,)), k.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="binary_crossentropy",
                      metrics=["accuracy", k.metrics.Precision(name="precision")],
                      weighted_metrics=["accuracy", k.metrics.Precision(name="w_precision")])
        _weights(model)
        history = model.fit(x, labels, batch_size=16, epochs=2, shuffle=False, verbose=0,
                            class_weight={0: 1.0, 1: 6.0})
        evaluation = model.evaluate(x, labels, sample_weight=np.linspace(0, 2, 96), verbose=0,
                                    return_dict=True)
        results.append((history, evaluation, model.metrics_names))
    (h_k, e_k, n_k), (h_l, e_l, n_l) = results
    assert set(h_l.history) == {"loss", "accuracy", "precision", "weighted_accuracy", "w_precision"}
    _assert_histories_equal(h_k, h_l)
    assert e_k.keys() == e_l.keys()
    np.testing.assert_allclose([e_l[key] for key in e_k], list(e_k.values()), rtol=1e-5)
    assert n_l == n_k
    # The unweighted and the weighted precision differ: the class weights reach only the latter.
    assert abs(h_l.history["precision"][-1] - h_l.history["w_precision"][-1]) > 0.05


@pytest.mark.parametrize("metrics", [None, ["mae"]])
def test_metrics_names_as_keras(metrics):
    x, y = _data(16)
    names = []
    for k in BACKENDS.values():
        model = k.Sequential([k.Input((6,)), k.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", metrics=metrics)
        before = model.metrics_names
        model.fit(x, y, verbose=0)
        names.append((before, model.metrics_names))
    assert names[0] == names[1]


# ---------------------------------------------------------------------------- add_loss
def _activity_model(k, compiled_loss):
    class ActivityPenalty(k.layers.Layer):
        def call(self, inputs):
            self.add_loss(0.05 * torch.mean(inputs ** 2))
            return inputs

    inputs = k.Input((6,))
    hidden = ActivityPenalty()(k.layers.Dense(4, activation="relu")(inputs))
    model = k.Model(inputs, k.layers.Dense(1)(hidden))
    model.compile(optimizer="sgd", loss=compiled_loss)
    _weights(model)
    return model


@pytest.mark.parametrize("compiled_loss", ["mse", None])
def test_add_loss_is_trained_on_as_keras(compiled_loss):
    x, y = _data()
    histories = []
    for k in BACKENDS.values():
        model = _activity_model(k, compiled_loss)
        histories.append(model.fit(x, y if compiled_loss else None, batch_size=16, epochs=2,
                                   shuffle=False, verbose=0))
    _assert_histories_equal(*histories)


def _endpoint_model(k, two_arguments):
    """Keras' endpoint-layer pattern: the targets are an input, the loss is added by a layer."""

    class LogisticEndpoint(k.layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = k.losses.BinaryCrossentropy(from_logits=True)

        def call(self, *args):
            targets, logits = args if two_arguments else args[0]
            self.add_loss(self.loss_fn(targets, logits))
            return torch.softmax(logits, -1)

    inputs, targets = k.Input(shape=(3,), name="inputs"), k.Input(shape=(10,), name="targets")
    logits = k.layers.Dense(10)(inputs)
    endpoint = LogisticEndpoint(name="predictions")
    predictions = endpoint(targets, logits) if two_arguments else endpoint([targets, logits])
    model = k.Model(inputs=[inputs, targets], outputs=predictions)
    model.compile(optimizer="adam")
    _weights(model)
    return model


@pytest.mark.parametrize("two_arguments", [False, True], ids=["list", "two-arguments"])
def test_endpoint_layer_pattern_trains_as_keras(two_arguments):
    rng = np.random.RandomState(0)
    data = {"inputs": rng.random_sample((12, 3)).astype("float32"),
            "targets": rng.random_sample((12, 10)).astype("float32")}
    model = _endpoint_model(lamina, two_arguments)
    reference = _endpoint_model(keras, two_arguments)
    _assert_histories_equal(reference.fit(data, batch_size=4, epochs=3, shuffle=False, verbose=0),
                            model.fit(data, batch_size=4, epochs=3, shuffle=False, verbose=0))


def test_model_losses_hold_the_latest_calls_terms():
    model = _activity_model(lamina, "mse")
    x = torch.as_tensor(_data(8)[0])
    model(x)
    model(x)
    assert len(model.losses) == 1
    hidden = model.layers[1](x)
    torch.testing.assert_close(model.losses[0], 0.05 * torch.mean(hidden ** 2))


def test_a_gan_without_call_trains_with_its_own_step():
    gan = _gan(lamina)
    del type(gan).call  # lamina's fit needs no forward pass of the model itself
    before = gan.generator.get_weights()
    history = gan.fit(np.random.RandomState(4).standard_normal((32, 4)).astype("float32"), batch_size=16,
                      epochs=2, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert gan.g_optimizer.iterations == gan.d_optimizer.iterations == 4
    assert not np.allclose(before[0], gan.generator.get_weights()[0])


def test_no_loss_at_all_is_a_clear_error():
    model = lamina.Sequential([lamina.layers.Input((6,)), lamina.layers.Dense(1)])
    model.compile(optimizer="sgd")
    x, y = _data(8)
    with pytest.raises(ValueError, match=r"No loss to compute.*compile\(loss="):
        model.fit(x, y, verbose=0)


# ---------------------------------------------------------------------------- callbacks
HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
         "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"]


def _recorder(k, calls):
    def hook(name):
        def record(self, *args, logs=None):
            if args and not isinstance(args[-1], int):  # logs given by position
                args, logs = args[:-1], args[-1]
            calls.append((name, *args, sorted(logs) if logs is not None else None))
        return record

    return type("Recorder", (k.callbacks.Callback,), {name: hook(name) for name in HOOKS})()


def test_callback_hooks_are_called_in_keras_order():
    x, y = _data(8)
    recorded = []
    for k in BACKENDS.values():
        calls = []
        model = k.Sequential([k.Input((6,)), k.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), callbacks=[_recorder(k, calls)],
                  verbose=0)
        model.evaluate(x, y, batch_size=4, callbacks=[_recorder(k, calls)], verbose=0)
        model.predict(x, batch_size=4, callbacks=[_recorder(k, calls)], verbose=0)
        recorded.append(calls)
    assert recorded[0] == recorded[1]
    assert ("on_test_batch_end", 1, ["loss", "mae"]) in recorded[1]
    assert ("on_predict_batch_end", 1, ["outputs"]) in recorded[1]


# ---------------------------------------------------------------------------- optimizer.apply
def test_apply_gradients_updates_only_the_given_weights_as_torch_sgd():
    w1, w2 = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = lamina.optimizers.SGD(0.1)
    optimizer.apply([torch.full((3,), 2.0), torch.full((2,), 3.0)], [w1, w2])
    w2.grad = torch.full((2,), 5.0)  # left from another loss: apply on w1 alone must not use it
    optimizer.apply_gradients([(torch.full((3,), 1.0), w1)])
    torch.testing.assert_close(w1.detach(), torch.full((3,), 1.0 - 0.2 - 0.1))
    torch.testing.assert_close(w2.detach(), torch.full((2,), 1.0 - 0.3))
    torch.testing.assert_close(w2.grad, torch.full((2,), 5.0))
    assert optimizer.iterations == 2
    with pytest.raises(ValueError, match="not among the weights"):
        optimizer.apply([torch.ones(4)], [torch.nn.Parameter(torch.ones(4))])


# ---------------------------------------------------------------------------- the batch a step gets
def test_unpack_x_y_sample_weight_as_keras():
    x, y, w = torch.ones(2, 3), torch.zeros(2), torch.full((2,), 0.5)
    for data in [x, (x,), (x, y), (x, y, w), [x, y]]:
        ours = lamina.utils.unpack_x_y_sample_weight(data)
        theirs = keras.utils.unpack_x_y_sample_weight(data)
        assert [a is b for a, b in zip(ours, theirs)] == [True, True, True]


def test_a_list_of_inputs_reaches_predict_step_as_one_item():
    from lamina import layers

    seen = []

    class Recording(lamina.Model):
        def predict_step(self, data):
            seen.append(lamina.utils.unpack_x_y_sample_weight(data))
            return super().predict_step(data)

    a, b = layers.Input((2,), name="a"), layers.Input((3,), name="b")
    model = Recording([a, b], layers.Dense(1)(layers.Concatenate()([a, b])))
    out = model.predict([np.ones((4, 2), "float32"), np.ones((4, 3), "float32")], verbose=0)
    assert out.shape == (4, 1)
    x, y, w = seen[0]
    assert len(x) == 2 and y is None and w is None


def test_a_loader_of_images_alone_gives_the_step_the_images():
    """The GAN guide's DataLoader over TensorDataset(images): each batch is [images], which Keras
    unpacks as (x,), so the step receives the images tensor."""
    seen = []

    class Recording(lamina.Model):
        def train_step(self, data):
            seen.append(data)
            return {}

    model = Recording()
    model.compile()
    images = torch.arange(24.0).reshape(8, 3)
    model.fit(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=4), verbose=0)
    assert len(seen) == 2 and all(isinstance(batch, torch.Tensor) for batch in seen)
    torch.testing.assert_close(torch.cat(seen), images)
