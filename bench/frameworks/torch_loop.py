"""The hand-written PyTorch training loop, eager ("torch") or with torch.compile ("torch_compile").

Written as a PyTorch user would, the way the peer figures in shared/anchors/peers.md were made:
the data preloaded as tensors, a fresh `randperm` each epoch, channels_last input transposed
once per batch for `nn.Conv1d`, `nn.LSTM(batch_first=True)`, `torch.optim.Adam`,
`nn.CrossEntropyLoss` on logits and `zero_grad(set_to_none=True)`. The compiled variant follows
PyTorch's recipes: `torch.compile` on the forward and loss (AOTAutograd compiles the backward
too) and on `optimizer.step`.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from bench import workloads


class FCN(nn.Module):
    def __init__(self, workload):
        super().__init__()
        blocks, channels = [], workload.input_shape[-1]
        for filters, kernel in workloads.FCN_BLOCKS:
            blocks += [nn.Conv1d(channels, filters, kernel, padding="same"),
                       nn.BatchNorm1d(filters, eps=workloads.BN_EPSILON, momentum=1 - workloads.BN_MOMENTUM),
                       nn.ReLU()]
            channels = filters
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, workload.classes)

    def forward(self, x):
        # x arrives channels_last (batch, steps, channels), as every framework here receives it.
        return self.classifier(self.features(x.transpose(1, 2)).mean(-1))


class LSTMClassifier(nn.Module):
    def __init__(self, workload):
        super().__init__()
        self.lstm = nn.LSTM(workload.input_shape[-1], workloads.LSTM_UNITS, batch_first=True)
        self.classifier = nn.Linear(workloads.LSTM_UNITS, workload.classes)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.classifier(h[-1])


def mlp(workload) -> nn.Sequential:
    stack, features = [], workload.input_shape[-1]
    for rate in workloads.MLP_DROPOUT[:-1]:
        stack += [nn.Dropout(rate), nn.Linear(features, workloads.MLP_UNITS), nn.ReLU()]
        features = workloads.MLP_UNITS
    return nn.Sequential(*stack, nn.Dropout(workloads.MLP_DROPOUT[-1]), nn.Linear(features, workload.classes))


def build_net(workload) -> nn.Module:
    return {"fcn": FCN, "lstm": LSTMClassifier, "mlp": mlp}[workload.name](workload)


def load_keras_weights(net: nn.Module, weights) -> None:
    """Copy weights given in Keras' order and layout into torch's modules, in module order."""
    arrays = iter(torch.from_numpy(w) for w in weights)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv1d):
                m.weight.copy_(next(arrays).permute(2, 1, 0))  # (k, in, out) -> (out, in, k)
                m.bias.copy_(next(arrays))
            elif isinstance(m, nn.BatchNorm1d):
                for t in (m.weight, m.bias, m.running_mean, m.running_var):
                    t.copy_(next(arrays))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(next(arrays).T)
                m.bias.copy_(next(arrays))
            elif isinstance(m, nn.LSTM):
                # Keras' gate order i, f, c, o is torch's i, f, g, o; Keras has one bias.
                m.weight_ih_l0.copy_(next(arrays).T)
                m.weight_hh_l0.copy_(next(arrays).T)
                m.bias_ih_l0.copy_(next(arrays))
                m.bias_hh_l0.zero_()
    if next(arrays, None) is not None:
        raise ValueError("More weight arrays than the torch model has weights.")


class TorchRunner:
    def __init__(self, workload, weights, compiled, compile_backend):
        torch.manual_seed(workloads.SEED)
        self.net = build_net(workload)
        load_keras_weights(self.net, weights)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=workloads.LEARNING_RATE,
                                          eps=workloads.ADAM_EPSILON)
        self.loss_fn = nn.CrossEntropyLoss()

        def forward_loss(xb, yb):
            return self.loss_fn(self.net(xb), yb)

        self.forward_loss, self.optimizer_step, self.inference = forward_loss, self.optimizer.step, self.net
        if compiled:
            self.forward_loss = torch.compile(forward_loss, backend=compile_backend)
            self.optimizer_step = torch.compile(self.optimizer.step, backend=compile_backend)
            self.inference = torch.compile(self.net, backend=compile_backend)

    def initial_loss(self, x, y) -> float:
        self.net.eval()
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        with torch.no_grad():
            total = sum(self.loss_fn(self.net(x[i:i + 256]), y[i:i + 256]) * len(y[i:i + 256])
                        for i in range(0, len(y), 256))
        return float(total) / len(y)

    def step(self, xb, yb):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_loss(xb, yb)
        loss.backward()
        self.optimizer_step()
        return loss.detach()

    def train(self, x, y, batch_size, epochs) -> list[float]:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        self.net.train()
        seconds = []
        for _ in range(epochs):
            start = time.perf_counter()
            order = torch.randperm(len(y))
            running = torch.zeros(())
            for i in range(0, len(y), batch_size):
                batch = order[i:i + batch_size]
                running += self.step(x[batch], y[batch])
            float(running)  # the epoch's loss is read once, as Keras' and lamina's epoch logs are
            seconds.append(time.perf_counter() - start)
        return seconds

    def predict_paths(self, x1):
        self.net.eval()
        tensor = torch.from_numpy(x1)

        def call():
            with torch.inference_mode():
                return self.inference(tensor).numpy()

        return {"model(x)": call}


def make_runner(framework_id, workload, weights, options):
    return TorchRunner(workload, weights, compiled=framework_id == "torch_compile",
                       compile_backend=options.get("compile_backend", "inductor"))
