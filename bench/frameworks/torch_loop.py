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
            blocks += [nn.Conv1d(channels, filters, kernel, padding="same"), _bn(filters), nn.ReLU()]
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


def _bn(channels, rank=1):
    norm = nn.BatchNorm1d if rank == 1 else nn.BatchNorm2d
    return norm(channels, eps=workloads.BN_EPSILON, momentum=1 - workloads.BN_MOMENTUM)


class ResNet(nn.Module):
    """bench/workloads.py's `_resnet` (lamina.tsc.resnet's architecture) in torch."""

    def __init__(self, workload):
        super().__init__()
        self.blocks = nn.ModuleList()
        channels = workload.input_shape[-1]
        for filters in workloads.RESNET_BLOCKS:
            block = nn.Module()
            block.body = nn.Sequential(
                nn.Conv1d(channels, filters, 8, padding="same"), _bn(filters), nn.ReLU(),
                nn.Conv1d(filters, filters, 5, padding="same"), _bn(filters), nn.ReLU(),
                nn.Conv1d(filters, filters, 3, padding="same"), _bn(filters))
            block.shortcut = nn.Sequential(
                *([] if channels == filters else [nn.Conv1d(channels, filters, 1)]), _bn(filters))
            self.blocks.append(block)
            channels = filters
        self.classifier = nn.Linear(channels, workload.classes)

    def forward(self, x):
        h = x.transpose(1, 2)
        for block in self.blocks:
            h = torch.relu(block.body(h) + block.shortcut(h))
        return self.classifier(h.mean(-1))


class Conv2DClassifier(nn.Module):
    def __init__(self, workload):
        super().__init__()
        stack, channels = [], workload.input_shape[-1]
        for filters in workloads.CONV2D_FILTERS:
            stack += [nn.Conv2d(channels, filters, 3, padding="same"), _bn(filters, rank=2), nn.ReLU(),
                      nn.MaxPool2d(2)]
            channels = filters
        self.features = nn.Sequential(*stack)
        self.classifier = nn.Linear(channels, workload.classes)

    def forward(self, x):
        # channels_last images (batch, height, width, channels), as every framework receives them
        return self.classifier(self.features(x.permute(0, 3, 1, 2)).mean((-2, -1)))


def mlp(workload) -> nn.Sequential:
    stack, features = [], workload.input_shape[-1]
    for rate in workloads.MLP_DROPOUT[:-1]:
        stack += [nn.Dropout(rate), nn.Linear(features, workloads.MLP_UNITS), nn.ReLU()]
        features = workloads.MLP_UNITS
    return nn.Sequential(*stack, nn.Dropout(workloads.MLP_DROPOUT[-1]), nn.Linear(features, workload.classes))


def build_net(workload) -> nn.Module:
    return {"fcn": FCN, "lstm": LSTMClassifier, "mlp": mlp, "resnet": ResNet,
            "conv2d": Conv2DClassifier}[workload.name](workload)


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
    """The loop on `device`: the data stays on the host, and each batch is moved as it is used."""

    def __init__(self, workload, weights, compiled, compile_backend, device="cpu"):
        torch.manual_seed(workloads.SEED)
        self.device = torch.device(device)
        self.net = build_net(workload)
        if weights is not None:
            load_keras_weights(self.net, weights)
        self.net.to(self.device)
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
        x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
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
            running = torch.zeros((), device=self.device)
            for i in range(0, len(y), batch_size):
                batch = order[i:i + batch_size]
                running += self.step(x[batch].to(self.device, non_blocking=True),
                                     y[batch].to(self.device, non_blocking=True))
            float(running)  # the epoch's loss is read once, as Keras' and lamina's epoch logs are
            seconds.append(time.perf_counter() - start)
        return seconds

    def predict_paths(self, x1):
        self.net.eval()
        tensor = torch.from_numpy(x1).to(self.device)

        def call():
            with torch.inference_mode():
                return self.inference(tensor).cpu().numpy()

        return {"model(x)": call}

    def predict_all(self, x, batch_size):
        self.net.eval()
        x = torch.from_numpy(x)
        with torch.inference_mode():
            outputs = [torch.softmax(self.inference(x[i:i + batch_size].to(self.device)), -1).cpu()
                       for i in range(0, len(x), batch_size)]
        return torch.cat(outputs).numpy()


def make_runner(framework_id, workload, weights, options):
    return TorchRunner(workload, weights, compiled=framework_id == "torch_compile",
                       compile_backend=options.get("compile_backend", "inductor"),
                       device=options.get("device", "cpu"))
