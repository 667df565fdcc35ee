"""Optimizers with Keras' names and default hyperparameters, running torch's implementations.

`Adam()` here means Keras' Adam: learning_rate=0.001, epsilon=1e-7 (torch's default is 1e-8).
The torch optimizer is created once the model's weights exist (`build`), and is reachable as
`optimizer.torch_optimizer` for anything torch-specific.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch
from torch.optim import optimizer as torch_optim

from lamina.optimizers import schedules
from lamina.utils.naming import lookup

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Nadam",
           "Adamax", "get", "schedules"]


class Optimizer:
    """Base: a learning rate (float or schedule `step -> lr`), gradient clipping, a torch optimizer.

    Args:
        learning_rate: float, a `schedules.LearningRateSchedule`, or a callable taking the step
            number; the update at step k (from 0) uses `schedule(k)`, as in Keras.
        clipnorm: clip each weight's gradient to this norm. clipvalue: clip elementwise.
        global_clipnorm: clip all gradients together to this norm.
        weight_decay: decoupled weight decay where the torch optimizer supports it.
    """

    torch_class = None

    def __init__(self, learning_rate=0.001, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 weight_decay=None, name=None, **hyper):
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                f"{type(self).__name__}: use only one of clipnorm, clipvalue and global_clipnorm."
            )
        self.name = name or type(self).__name__.lower()
        self._iterations = 0
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self._schedule = None
        self.learning_rate = learning_rate
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.weight_decay = weight_decay
        self.hyper = hyper

    def _torch_kwargs(self) -> dict:
        """This optimizer's Keras hyperparameters in torch's names."""
        return dict(self.hyper)

    def build(self, params) -> None:
        self._params = [p for p in params if p.requires_grad]
        kwargs = self._torch_kwargs()
        if self.weight_decay:
            kwargs["weight_decay"] = self.weight_decay
        kwargs.update(_fastest_implementation(self.torch_class, self._params))
        self.torch_optimizer = self.torch_class(self._params, lr=self._lr, **kwargs)

    @property
    def iterations(self) -> StepCount:
        """The number of updates applied (Keras' `optimizer.iterations`): an int that also answers
        Keras' Variable reads, `.numpy()` and `.value`."""
        return StepCount(self._iterations)

    @iterations.setter
    def iterations(self, value) -> None:
        self._iterations = int(value)

    @property
    def built(self) -> bool:
        return self.torch_optimizer is not None

    @property
    def learning_rate(self) -> float:
        """The rate the next update uses: with a schedule, `schedule(iterations)`."""
        return self._lr if self._schedule is None else float(self._schedule(self.iterations))

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        """A float, a LearningRateSchedule or a callable `step -> lr`. A float cannot replace a
        schedule (Keras refuses it too): callbacks that change the rate would silently fight it."""
        if isinstance(value, dict):
            value = schedules.deserialize(value)
        if callable(value):
            self._schedule = value
            self._lr = float(value(self.iterations))
        elif self._schedule is not None:
            raise TypeError(
                f"{type(self).__name__} was created with a learning-rate schedule "
                f"({type(self._schedule).__name__}), so its learning_rate cannot be set to a number. "
                "Build the optimizer with a float learning_rate to change it from a callback."
            )
        else:
            value = float(value)
            if not value > 0:
                raise ValueError(f"{type(self).__name__}: `learning_rate` must be positive. "
                                 f"Received: learning_rate={value}")
            self._lr = value
        self._sync_torch_lr()

    def _sync_torch_lr(self) -> None:
        """Give the torch optimizer the rate of the coming update."""
        if self._schedule is not None:
            self._lr = float(self._schedule(self.iterations))
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                if group["lr"] != self._lr:
                    self._rescale_momentum(group, group["lr"], self._lr)
                    group["lr"] = self._lr

    def _rescale_momentum(self, group, old: float, new: float) -> None:
        """Keras' momentum (SGD, RMSprop) accumulates rate-scaled steps, v = m·v - lr·g; torch's
        accumulates gradients and scales at the update, w -= lr·(m·b + g). They agree while the
        rate is constant; scaling torch's buffer by old/new keeps them equal when a schedule or a
        callback changes it. (A rate of exactly 0 cannot be represented this way.)"""
        if new > 0 and old > 0:
            for p in group["params"]:
                buffer = self.torch_optimizer.state.get(p, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(old / new)

    def zero_grad(self) -> None:
        """torch's zero_grad(set_to_none=True), without its per-call profiling bookkeeping (a
        few dozen microseconds a step, which a small model notices)."""
        for group in self.torch_optimizer.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, grad_scaler=None) -> None:
        """Apply the gradients. With a torch GradScaler (float16 loss scaling) they are unscaled
        before clipping, and the update is skipped when they overflowed."""
        if self._schedule is not None:
            self._sync_torch_lr()
        if grad_scaler is not None:
            grad_scaler.unscale_(self.torch_optimizer)
        if self.clipvalue is not None:
            torch.nn.utils.clip_grad_value_(self._params, self.clipvalue)
        elif self.clipnorm is not None:
            for p in self._params:
                torch.nn.utils.clip_grad_norm_([p], self.clipnorm)
        elif self.global_clipnorm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.global_clipnorm)
        if grad_scaler is None:
            self._update()
        else:
            grad_scaler.step(self.torch_optimizer)
            grad_scaler.update()
        self.iterations += 1

    def apply(self, grads, trainable_variables=None) -> None:
        """Update `trainable_variables` with `grads` (Keras' `optimizer.apply`), as a custom
        `train_step` does after `loss.backward()`. The first call builds the optimizer for these
        variables (all the weights it was built for when left out); a weight it was built for
        that is not among them is left unchanged. A gradient of None leaves its weight unchanged.
        """
        grads = list(grads)
        if trainable_variables is None:
            if not self.built:
                raise ValueError(f"{type(self).__name__}.apply: pass `trainable_variables` on the "
                                 "first call, so that the optimizer knows which weights it updates.")
            params = list(self._params)
        else:
            params = [_parameter(v) for v in trainable_variables]
        if len(grads) != len(params):
            raise ValueError(f"{type(self).__name__}.apply: {len(grads)} gradients for "
                             f"{len(params)} variables; pass one gradient per variable.")
        if not self.built:
            self.build(params)
        own = {id(p) for p in self._params}
        unknown = [tuple(p.shape) for p in params if id(p) not in own]
        if unknown:
            raise ValueError(
                f"{type(self).__name__}.apply: variables of shapes {unknown} are not among the "
                "weights this optimizer was built for; use one optimizer per set of weights.")
        given = {id(p) for p in params}
        # The optimizer's other weights keep their gradients aside during this update.
        held = [(p, p.grad) for p in self._params if id(p) not in given and p.grad is not None]
        for p, _ in held:
            p.grad = None
        for p, g in zip(params, grads):
            if hasattr(p, "storage_gradient"):
                g = p.storage_gradient(g)
            if g is not p.grad:
                p.grad = None if g is None else g.to(p.dtype)
        with torch.no_grad():
            self.step()
        for p, g in held:
            p.grad = g

    def apply_gradients(self, grads_and_vars) -> None:
        """`apply` for a list of (gradient, variable) pairs (Keras' `apply_gradients`)."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def _update(self) -> None:
        """One update from the weights' (unscaled, clipped) gradients: torch's step."""
        self.torch_optimizer.step()

    def get_config(self) -> dict:
        lr = self._schedule if self._schedule is not None else self._lr
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
                "weight_decay": self.weight_decay, **self.hyper}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _parameter(variable) -> torch.Tensor:
    """The torch tensor a weight holds: the weight itself, or a Keras-style Variable's `.value`."""
    if isinstance(variable, torch.Tensor):
        return variable
    value = getattr(variable, "value", None)
    if isinstance(value, torch.Tensor):
        return value
    raise TypeError(f"Optimizer: expected a weight (a torch Parameter or a Variable). Received: {variable!r}")


def _fastest_implementation(torch_class, params) -> dict:
    """torch's fused kernel (one op for all weights) where this optimizer has one for these
    tensors, else its multi-tensor (foreach) path; the per-tensor Python loop is torch's CPU
    default and costs several small ops per weight per step."""
    parameters = inspect.signature(torch_class.__init__).parameters
    devices = {p.device.type for p in params}
    dtypes_ok = all(p.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16) for p in params)
    if "fused" in parameters and dtypes_ok and len(devices) == 1 and devices <= {"cpu", "cuda", "mps"}:
        return {"fused": True}
    if "foreach" in parameters and len(devices) <= 1:
        return {"foreach": True}
    return {}


class SGD(Optimizer):
    torch_class = torch.optim.SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)


class StepCount(int):
    """An optimizer's step count: a Python int with Keras' Variable reads."""

    def numpy(self) -> np.ndarray:
        return np.asarray(int(self), dtype=np.int64)

    @property
    def value(self) -> torch.Tensor:
        return torch.tensor(int(self), dtype=torch.int64)


class _AdamFamily(Optimizer):
    # Keras' Adam and AdamW add epsilon to sqrt(v) before the bias correction, torch's after it:
    # at step t, torch's epsilon = Keras' / sqrt(1 - beta_2**t) gives Keras' update exactly.
    _bias_corrected_epsilon = False

    def _torch_kwargs(self):
        h = dict(self.hyper)
        return {"betas": (h.pop("beta_1"), h.pop("beta_2")), "eps": h.pop("epsilon"), **h}

    def step(self, grad_scaler=None) -> None:
        if self._bias_corrected_epsilon:
            eps = self.hyper["epsilon"] / math.sqrt(1.0 - self.hyper["beta_2"] ** (self.iterations + 1))
            for group in self.torch_optimizer.param_groups:
                group["eps"] = eps
        super().step(grad_scaler)


class Adam(_AdamFamily):
    torch_class = torch.optim.Adam
    _bias_corrected_epsilon = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, **kwargs)
        self._fused_state = None

    def build(self, params) -> None:
        super().build(params)
        self._fused_state = None

    def _update(self) -> None:
        """torch's fused Adam kernel called directly once torch's own step has created the state:
        the same update without torch's per-step Python (on six small weights: torch's step 34 us,
        the direct call 12 us). Anything the direct call does not cover (amsgrad, weight decay, a
        weight without a gradient, several groups, hooks) goes through torch's step; the
        schedule, loss scaling and clipping are the base step's, around this."""
        state = self._direct_state()
        grads = None if state is None else [p.grad for p in state[0]]
        if grads is None or any(g is None for g in grads):
            super()._update()
            return
        params, exp_avgs, exp_avg_sqs, steps, group = state
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                           beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False,
                           grad_scale=None, found_inf=None)

    def _direct_state(self):
        opt = self.torch_optimizer
        groups = opt.param_groups
        if (len(groups) != 1 or not hasattr(torch, "_fused_adam_")
                or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
                or torch_optim._global_optimizer_pre_hooks or torch_optim._global_optimizer_post_hooks):
            return None
        group = groups[0]
        cached = self._fused_state
        if cached is not None and cached[4] is group and len(cached[0]) == len(group["params"]):
            return cached
        if (not group.get("fused") or group["amsgrad"] or group["weight_decay"] or group["maximize"]
                or group.get("capturable") or group.get("differentiable")
                or not isinstance(group["lr"], float)):
            return None
        params = list(group["params"])
        states = [self.torch_optimizer.state.get(p) for p in params]
        if not params or not all(states) or len({(p.device, p.dtype) for p in params}) != 1:
            return None  # torch's first step creates the state
        self._fused_state = (params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                             [s["step"] for s in states], group)
        return self._fused_state


class AdamW(_AdamFamily):
    _bias_corrected_epsilon = True
    torch_class = torch.optim.AdamW

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, **kwargs)


class Adamax(_AdamFamily):
    torch_class = torch.optim.Adamax

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


class Nadam(_AdamFamily):
    torch_class = torch.optim.NAdam

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)


class _KerasRMSprop(torch.optim.RMSprop):
    """torch's RMSprop with Keras' denominator, sqrt(v + epsilon) (torch's is sqrt(v) + epsilon),
    on torch's state (so state_dict, loading and GradScaler work as for torch's). The momentum
    buffer keeps torch's convention (the learning rate applied outside it)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["weight_decay"] or group["maximize"] or group["differentiable"] or group["capturable"]:
                return super().step()  # options Keras' RMSprop does not have in torch's form
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._keras_update(group, params)
        return loss

    def _keras_update(self, group, params):
        rho, eps, lr, momentum = group["alpha"], group["eps"], group["lr"], group["momentum"]
        grads = [p.grad for p in params]
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if momentum > 0:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["centered"]:
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        squares = [state["square_avg"] for state in states]
        torch._foreach_mul_(squares, rho)
        torch._foreach_addcmul_(squares, grads, grads, value=1 - rho)
        if group["centered"]:
            averages = [state["grad_avg"] for state in states]
            torch._foreach_lerp_(averages, grads, 1 - rho)
            denominators = torch._foreach_addcmul(squares, averages, averages, value=-1)
            torch._foreach_add_(denominators, eps)
        else:
            denominators = torch._foreach_add(squares, eps)
        torch._foreach_sqrt_(denominators)
        if momentum > 0:
            buffers = [state["momentum_buffer"] for state in states]
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_addcdiv_(buffers, grads, denominators)
            torch._foreach_add_(params, buffers, alpha=-lr)
        else:
            torch._foreach_addcdiv_(params, grads, denominators, value=-lr)
        torch._foreach_add_([state["step"] for state in states], 1)


class RMSprop(Optimizer):
    torch_class = _KerasRMSprop

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, rho=rho, momentum=momentum, epsilon=epsilon,
                         centered=centered, **kwargs)

    def _torch_kwargs(self):
        h = self.hyper
        return {"alpha": h["rho"], "momentum": h["momentum"], "eps": h["epsilon"],
                "centered": h["centered"]}


class Adagrad(Optimizer):
    torch_class = torch.optim.Adagrad

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, initial_accumulator_value=initial_accumulator_value,
                         epsilon=epsilon, **kwargs)

    def _torch_kwargs(self):
        return {"initial_accumulator_value": self.hyper["initial_accumulator_value"],
                "eps": self.hyper["epsilon"]}


class Adadelta(Optimizer):
    torch_class = torch.optim.Adadelta

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, rho=rho, epsilon=epsilon, **kwargs)

    def _torch_kwargs(self):
        return {"rho": self.hyper["rho"], "eps": self.hyper["epsilon"]}


_NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
          "adadelta": Adadelta, "nadam": Nadam, "adamax": Adamax}


def get(identifier) -> Optimizer:
    """An Optimizer from a Keras name, a config dict or an Optimizer object."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, torch.optim.Optimizer):
        raise TypeError(
            "compile() takes a lamina optimizer or its name (e.g. 'adam' or "
            "lamina.optimizers.Adam(1e-3)); a torch optimizer needs the model's weights before "
            "the model is built. Use lamina.optimizers.* instead."
        )
    if isinstance(identifier, dict):
        classes = {c.__name__.lower(): c for c in _NAMES.values()}
        cls = lookup("optimizer", identifier["class_name"].lower(), classes)
        return cls.from_config(identifier.get("config", {}))
    return lookup("optimizer", identifier, _NAMES)()
