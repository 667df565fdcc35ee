"""Layer: the base of every lamina layer — a torch.nn.Module with Keras' life cycle.

- Weights are created lazily: `build(input_shape)` runs on the first call, symbolic or eager.
- `call(inputs, training=None, mask=None)` holds the computation; `training=None` means the layer's
  own mode flag, which is torch's `self.training` (False after construction, as Keras layers run in
  inference mode unless told otherwise; `model.train()` / `.eval()` set it recursively).
- Weights are declared with their Keras shape and kept in the layout torch's kernels want; the
  `layout` permutation maps one to the other, so `get_weights()` speaks Keras.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lamina import initializers
from lamina.layers.symbolic import Node, SymbolicTensor, is_symbolic
from lamina.utils import tree
from lamina.utils.naming import to_snake_case, unique_name

_state_updates = [True]


@contextlib.contextmanager
def state_updates_disabled():
    """Within this block no layer changes its state (moving statistics, RNN states) in a call."""
    _state_updates.append(False)
    try:
        yield
    finally:
        _state_updates.pop()


def state_updates_enabled() -> bool:
    return _state_updates[-1]


@dataclass
class InputSpec:
    """What a layer accepts once built: its rank (exact or minimum) and fixed axis sizes."""

    ndim: int | None = None
    min_ndim: int | None = None
    axes: dict | None = None

    def check(self, layer: Layer, shape, index: int = 0) -> None:
        rank = len(shape)
        rank_ok = ((self.ndim is None or rank == self.ndim)
                   and (self.min_ndim is None or rank >= self.min_ndim))
        if rank_ok and all(size is None or -rank <= axis < rank and shape[axis] == size
                           for axis, size in (self.axes or {}).items()):
            return  # the usual case, decided without building a message
        where = f"Input {index} of layer '{layer.name}' ({type(layer).__name__})"
        if self.ndim is not None and rank != self.ndim:
            raise ValueError(
                f"{where} is incompatible with the layer: expected ndim={self.ndim}, found "
                f"ndim={rank}. Full shape received: {tuple(shape)}"
            )
        if self.min_ndim is not None and rank < self.min_ndim:
            raise ValueError(
                f"{where} is incompatible with the layer: expected min_ndim={self.min_ndim}, "
                f"found ndim={rank}. Full shape received: {tuple(shape)}"
            )
        for axis, size in (self.axes or {}).items():
            got = shape[axis] if -rank <= axis < rank else None
            if got is not None and size is not None and got != size:
                raise ValueError(
                    f"{where} is incompatible with the layer: expected axis {axis} of input shape "
                    f"to have value {size}, but received input with shape {tuple(shape)}"
                )


@functools.cache
def _call_accepts(cls) -> tuple[bool, bool]:
    params = inspect.signature(cls.call).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return ("training" in params or var_kw), ("mask" in params or var_kw)


def _shape_of(x):
    return tuple(x.shape) if hasattr(x, "shape") else None


@functools.cache
def _positional_names(cls) -> tuple[str, ...]:
    params = list(inspect.signature(cls.call).parameters.values())[1:]
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


@functools.cache
def _call_parameters(cls) -> frozenset:
    return frozenset(inspect.signature(cls.call).parameters)


def _holds_tensors(value) -> bool:
    return any(isinstance(t, (torch.Tensor, SymbolicTensor)) for t in tree.flatten(value))


def _tensor_arguments(cls, inputs, args, kwargs) -> dict:
    """Keras' tensor arguments of a call, by parameter name: the first argument, then every
    other one holding tensors (masks excepted)."""
    names = _positional_names(cls)
    found = {names[0] if names else "inputs": inputs}
    named_args = zip((*names[1:], *(f"arg_{i}" for i in range(len(names), len(args) + 1))), args)
    for name, value in (*named_args, *kwargs.items()):
        if not (name == "mask" or name.endswith("_mask")) and _holds_tensors(value):
            found[name] = value
    return found


@functools.cache
def _build_parameters(cls) -> tuple[str, ...]:
    return tuple(list(inspect.signature(cls.build).parameters)[1:])


def _build_keywords(cls, shapes: dict) -> dict | None:
    params = _build_parameters(cls)
    if len(shapes) < 2 or len(params) < 2:
        return None
    keywords = {f"{name}_shape": shape for name, shape in shapes.items()
                if f"{name}_shape" in params}
    return keywords or None


def _fill_masks(cls, tensor_args: dict, kwargs: dict) -> None:
    """Keras' implicit masks for a call with several tensor arguments: `<argument>_mask`
    parameters of `call` that the caller left empty get that argument's mask."""
    params = _call_parameters(cls)
    for name, value in tensor_args.items():
        key = f"{name}_mask"
        if key in params and kwargs.get(key) is None:
            mask = _mask_of(value)
            if mask is not None:
                kwargs[key] = mask


class Layer(nn.Module):
    """Base class of all layers. Subclasses implement `build`, `call` and `get_config`.

    Args:
        name: the layer's name; unique by default ("dense", "dense_1", …).
        trainable: whether the layer's weights are updated in training.
        dtype: the dtype of its weights (float32 by default).
    """

    supports_masking = False  # True: an incoming mask passes through unchanged
    resolves_training = True  # False for containers: training=None reaches each sublayer as None
    # True where an overridden compute_mask only passes on (or drops) the input's mask, never
    # makes one from the values: a Sequential's inference plan may then skip it.
    passes_masks_only = False
    is_dropout = False  # True for the layers that predict_mc switches on

    def __init__(self, *, name=None, trainable=True, dtype=None, input_shape=None,
                 activity_regularizer=None, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unrecognized keyword arguments: {sorted(kwargs)}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string. Received: name={name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.compute_dtype = _torch_dtype(dtype)
        self.built = False
        self.training = False
        self.input_spec = None
        self._trainable = bool(trainable)
        self._weight_specs: list[tuple[str, tuple | None, bool]] = []
        self._regularizers: list[tuple[str, object]] = []
        self.activity_regularizer = _regularizer(activity_regularizer)
        self._build_input_shape = None
        # Keras 2 style `input_shape=` on the first layer of a Sequential: kept for Sequential.
        self._declared_input_shape = tuple(input_shape) if input_shape is not None else None

    # ----------------------------------------------------------------- life cycle
    def build(self, input_shape) -> None:
        """Create the weights for inputs of this shape (batch axis included, may be None)."""

    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement call().")

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape. The default runs the layer on zeros."""
        def concrete(shape):
            return tuple(2 if i == 0 and d is None else (1 if d is None else d)
                         for i, d in enumerate(shape))

        dtype = getattr(self, "_dry_run_dtype", self.compute_dtype)
        dummy = tree.map_shapes(lambda s: torch.zeros(concrete(s), dtype=dtype), input_shape)
        with torch.no_grad(), state_updates_disabled():
            out = self.call(dummy, **self._mode_kwargs(False, None))
        return tree.map_structure(lambda t: (None, *tuple(t.shape)[1:]), out)

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _marks_built(cls.__dict__["build"])

    def build_from_shape(self, input_shape) -> None:
        if not self.built:
            # A first call inside predict (inference mode) must still make ordinary weights,
            # which set_weights and the optimizer can change in place later.
            with torch.inference_mode(False):
                self.build(input_shape)
            # Layer.build itself is not wrapped by _marks_built: a class without its own build
            # (Activation, a subclassed Model) is marked here, with the shape it was built for.
            self._build_input_shape = input_shape
            self.built = True

    # ----------------------------------------------------------------- calling
    def __call__(self, *args, **kwargs):
        # The common eager call (one tensor, plain keyword values such as training=) skips the
        # walk for symbolic inputs and arrays.
        if len(args) == 1 and isinstance(args[0], torch.Tensor) and all(
                v is None or isinstance(v, _PLAIN) for v in kwargs.values()):
            return super().__call__(*args, **kwargs)
        # Keras turns arrays into backend tensors (floats in the layer's dtype) before calling.
        args, kwargs = tree.map_structure(self._array_to_tensor, (args, kwargs))
        if is_symbolic((args, kwargs)):
            return self._call_symbolic(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _array_to_tensor(self, value):
        if not isinstance(value, np.ndarray):
            return value
        device = next(self.parameters(), torch.empty(0)).device
        dtype = self.compute_dtype if np.issubdtype(value.dtype, np.floating) else None
        return torch.as_tensor(value, dtype=dtype, device=device)

    def forward(self, inputs, *args, training=None, mask=None, **kwargs):
        # Plain options (BN's _relu=True, return_state flags) skip the walk for more tensors.
        if args or not all(v is None or isinstance(v, _SCALARS) for v in kwargs.values()):
            tensor_args = _tensor_arguments(type(self), inputs, args, kwargs)
            if not self.built:
                self._build_for(tree.map_structure(_shape_of, tensor_args))
            if len(tensor_args) > 1:
                _fill_masks(type(self), tensor_args, kwargs)
        elif not self.built:
            self.build_from_shape(tree.map_structure(_shape_of, inputs))
        spec = self.input_spec
        if spec is not None:
            if isinstance(inputs, torch.Tensor) and isinstance(spec, InputSpec):
                spec.check(self, inputs.shape)
            else:
                self._check_input(inputs)
        if mask is None:
            mask = _mask_of(inputs)
        outputs = self.call(inputs, *args, **kwargs, **self._mode_kwargs(training, mask))
        if self.activity_regularizer is not None:
            self._add_activity_losses(outputs)
        out_mask = self.compute_mask(inputs, mask)
        if out_mask is not None:
            for t in tree.flatten(outputs):
                if isinstance(t, torch.Tensor):
                    t._lamina_mask = out_mask
        return outputs

    def _add_activity_losses(self, outputs) -> None:
        # As Keras 3: the penalty of each output, divided by its batch size.
        for output in tree.flatten(outputs):
            if isinstance(output, torch.Tensor):
                penalty = self.activity_regularizer(output)
                self.add_loss(penalty / output.shape[0] if output.ndim > 0 and output.shape[0] else penalty)

    def _build_for(self, shapes: dict) -> None:
        """Build from the shapes of a call's tensor arguments, as Keras: a `build` with one
        parameter gets the first argument's shape; one with several gets `<argument>_shape`
        keywords (MultiHeadAttention's `build(query_shape, value_shape, key_shape)`)."""
        first = next(iter(shapes.values()))
        keywords = _build_keywords(type(self), shapes)
        if self.built or not keywords:
            self.build_from_shape(first)
            return
        with torch.inference_mode(False):
            self.build(**keywords)
        self._build_input_shape = first
        self.built = True

    def _mode_kwargs(self, training, mask) -> dict:
        takes_training, takes_mask = _call_accepts(type(self))
        kwargs = {}
        if takes_training:
            if training is None and self.resolves_training:
                training = self.training
            kwargs["training"] = training if training is None else bool(training)
        if takes_mask and mask is not None:
            kwargs["mask"] = mask
        return kwargs

    def _call_symbolic(self, inputs, *args, **kwargs):
        tensor_args = _tensor_arguments(type(self), inputs, args, kwargs)
        shapes = tree.map_structure(lambda t: t.shape if isinstance(t, SymbolicTensor) else t,
                                    tensor_args)
        self._build_for(shapes)
        if self.input_spec is not None:
            self._check_input(inputs)
        masked = any(getattr(t, "mask_shape", None) is not None for t in tree.flatten(inputs))
        shaped = type(self).compute_output_shape is not Layer.compute_output_shape
        if len(tensor_args) == 1 and not set(kwargs) - {"training", "mask"} and (shaped or not masked):
            dtype = tree.flatten(inputs)[0].dtype
            out_shapes = self.compute_output_shape(shapes[next(iter(shapes))])
            out_dtype = self._output_dtype(dtype)
            outputs = tree.map_shapes(lambda s: SymbolicTensor(s, out_dtype), out_shapes)
            self._record_masks(inputs, args, kwargs, outputs, masked)
        else:
            outputs = self._dry_run(inputs, args, kwargs)
        node = Node(self, (inputs, *args), kwargs, outputs)
        for t in tree.flatten(outputs):
            t.node = node
        self.__dict__.setdefault("_inbound_nodes", []).append(node)
        return outputs

    def _record_masks(self, inputs, args, kwargs, outputs, masked) -> None:
        """Where masks flow (an input carries one, or the layer makes them), run the layer on
        zeros as Keras runs it symbolically: a `call(inputs, mask=None)` sees a mask while the
        graph is built, and the outputs record whether they carry one (`mask_shape`). (A layer
        without its own compute_output_shape gets its shapes from that run itself.)"""
        if not masked and (type(self).compute_mask is Layer.compute_mask or self.passes_masks_only):
            return  # no mask comes in and the layer makes none: nothing to record
        try:
            probe = self._dry_run(inputs, args, kwargs)
        except Exception:  # noqa: BLE001 - only the symbolic mask record is lost, never a value
            return
        probes = tree.flatten(probe)
        if len(probes) == len(tree.flatten(outputs)):
            for t, p in zip(tree.flatten(outputs), probes):
                t.mask_shape = p.mask_shape

    def _dry_run(self, inputs, args, kwargs):
        """Symbolic outputs found by running the layer on zeros of the inputs' shapes (a batch
        of 2; unknown axes 16, then 17 to find which output axes follow them), for calls with
        several tensor arguments or options that may change the outputs' structure
        (return_attention_scores). Each output records the shape of the mask it carries."""
        flat_in = [t for t in tree.flatten((inputs, args, kwargs)) if isinstance(t, SymbolicTensor)]
        unknown = any(d is None for t in flat_in for d in t.shape[1:])
        runs = [self._run_on_zeros(inputs, args, kwargs, size) for size in ((16, 17) if unknown else (16,))]

        def merged(shapes):
            if shapes[0] is None:
                return None
            return (None, *[d if all(s[i] == d for s in shapes) else None
                            for i, d in enumerate(shapes[0]) if i > 0])

        flat = []
        for tensors in zip(*[tree.flatten(r) for r in runs]):
            result = SymbolicTensor(merged([tuple(t.shape) for t in tensors]), tensors[0].dtype)
            masks = [getattr(t, "_lamina_mask", None) for t in tensors]
            result.mask_shape = None if masks[0] is None else merged([tuple(m.shape) for m in masks])
            flat.append(result)
        it = iter(flat)
        return tree.map_structure(lambda _: next(it), runs[0])

    def _run_on_zeros(self, inputs, args, kwargs, size):
        def concrete(shape):
            return tuple(2 if i == 0 and d is None else (size if d is None else d)
                         for i, d in enumerate(shape))

        def zeros(t):
            if not isinstance(t, SymbolicTensor):
                return t
            value = torch.zeros(concrete(t.shape), dtype=t.dtype)
            if getattr(t, "mask_shape", None) is not None:
                value._lamina_mask = torch.ones(concrete(t.mask_shape), dtype=torch.bool)
            return value

        inputs, args, kwargs = tree.map_structure(zeros, (inputs, args, kwargs))
        kwargs.pop("training", None)
        with torch.no_grad(), state_updates_disabled():
            return self.forward(inputs, *args, training=False, **kwargs)

    # Keras' graph bookkeeping: the tensors of the layer's first call on symbolic inputs.
    @property
    def input(self):
        """The input tensor(s) of the layer's first call in a functional graph."""
        args, kwargs = self._first_node().args, self._first_node().kwargs
        tensors = [t for t in tree.flatten((args, kwargs)) if isinstance(t, SymbolicTensor)]
        return tensors[0] if len(tensors) == 1 else tensors

    @property
    def output(self):
        """The output tensor(s) of the layer's first call in a functional graph."""
        return self._first_node().outputs

    def _first_node(self):
        nodes = self.__dict__.get("_inbound_nodes")
        if not nodes:
            # torch's Module.__getattr__ then reports the attribute as missing, as Keras does
            # for a layer never called in a graph.
            raise AttributeError("input/output")
        return nodes[0]

    def _output_dtype(self, input_dtype):
        return self.compute_dtype if input_dtype.is_floating_point else torch.float32

    def _check_input(self, inputs) -> None:
        specs = self.input_spec if isinstance(self.input_spec, (list, tuple)) else [self.input_spec]
        values = tree.flatten(inputs)
        for i, (spec, x) in enumerate(zip(specs, values)):
            if spec is not None and hasattr(x, "shape"):
                spec.check(self, tuple(x.shape), i)

    # ----------------------------------------------------------------- weights
    def add_weight(self, name=None, shape=None, initializer=None, trainable=True, layout=None,
                   regularizer=None, dtype=None, constraint=None, autocast=True, aggregation=None,
                   overwrite_with_gradient=False):
        """Create a weight of Keras shape `shape`, kept in torch's order by `layout` (an axis
        permutation tuple, or an object with to_keras/from_keras).

        Trainable weights are `lamina.Variable`s (nn.Parameters); the others (moving statistics)
        are buffers (`BufferVariable`), so both appear in `state_dict()`. Both also speak Keras'
        Variable API (`.value`, `.assign`, `.numpy()`, ...). Called as lamina does,
        `add_weight("kernel", shape)`, or as Keras 3 does, `add_weight(shape=..., initializer=...)`
        or `add_weight((3, 2), "zeros")`: a weight without a name gets Keras' "variable",
        "variable_1", …, which is also its state_dict key; the attribute it is assigned to
        (`self.w = self.add_weight(...)`) refers to the same tensor. `autocast`, `aggregation`
        and `overwrite_with_gradient` are accepted for Keras code and have no effect here.
        """
        from lamina.variables import BufferVariable, Variable

        if name is not None and not isinstance(name, str):  # Keras' order: (shape, initializer, ...)
            name, shape, initializer = None, name, initializer if shape is None else shape
        if constraint is not None:
            raise NotImplementedError(
                f"Layer '{self.name}': weight constraints are not supported by lamina; leave "
                "`constraint` as None."
            )
        auto_named = name is None
        if auto_named:
            name = self._free_weight_name()
        shape = () if shape is None else ((shape,) if isinstance(shape, int) else tuple(shape))
        dtype = _torch_dtype(dtype) if dtype is not None else self.compute_dtype
        if initializer is None:
            initializer = "glorot_uniform" if dtype.is_floating_point else "zeros"
        value = initializers.get(initializer)(shape, dtype)
        layout = _layout(layout)
        if layout is not None:
            value = layout.from_keras(value).contiguous()
        path = f"{self.name}/{name}"
        self._weight_specs.append((name, layout, trainable))
        if trainable:
            weight = Variable.of(value, self._trainable, name, path, layout)
            self.register_parameter(name, weight)
        else:
            weight = BufferVariable.of(value, name, path, layout)
            self.register_buffer(name, weight)
        weight._auto_named = auto_named
        if regularizer is not None:
            from lamina import regularizers

            self._regularizers.append((name, regularizers.get(regularizer)))
        return weight

    def _free_weight_name(self) -> str:
        """Keras' name for an unnamed weight: "variable", then "variable_1", … (unique here)."""
        taken = {n for n, _, _ in self._weight_specs}
        candidates = ("variable" if i == 0 else f"variable_{i}" for i in range(len(taken) + 1))
        return next(n for n in candidates if n not in taken)

    def add_variable(self, shape, initializer, dtype=None, trainable=True, autocast=True,
                     regularizer=None, constraint=None, name=None):
        """Keras' alias of add_weight with the shape first."""
        return self.add_weight(name=name, shape=shape, initializer=initializer, dtype=dtype,
                               trainable=trainable, regularizer=regularizer, constraint=constraint)

    def register_parameter(self, name, param) -> None:
        # `self.w = self.add_weight(shape=...)` registers a Parameter under the attribute's name
        # too; a weight add_weight named (Keras' "variable_1") keeps that one registration, so
        # state_dict has it once, and the attribute is a plain reference to it.
        if (param is not None and param.__dict__.get("_auto_named")
                and self._parameters.get(param.__dict__.get("_keras_name")) is param):
            object.__setattr__(self, name, param)
            return
        super().register_parameter(name, param)
        specs = self.__dict__.get("_weight_specs")
        if param is not None and specs is not None and not any(
                n == name or self._parameters.get(n) is param for n, _, _ in specs):
            # A parameter assigned as an attribute (`self.w = nn.Parameter(...)`, as torch code
            # writes it) is one of the layer's weights, as Keras tracks a Variable assigned so:
            # in get_weights/set_weights, summaries and `.keras` files, in torch's layout.
            specs.append((name, None, param.requires_grad))

    def _apply(self, fn, *args, **kwargs):
        # A device or dtype move replaces each buffer with fn(buffer), a plain tensor: it becomes
        # a BufferVariable again, and attributes that referred to the old one (see
        # register_parameter) follow it.
        from lamina.variables import BufferVariable

        before = {n: b for n, b in self._buffers.items() if isinstance(b, BufferVariable)}
        result = super()._apply(fn, *args, **kwargs)
        for name, old in before.items():
            new = self._buffers.get(name)
            if new is None or new is old:
                continue
            if not isinstance(new, BufferVariable):
                new = self._buffers[name] = BufferVariable.of(new, old.name, old.path,
                                                              old.__dict__.get("_keras_layout"))
                new._auto_named = old.__dict__.get("_auto_named", False)
            for attr, value in list(self.__dict__.items()):
                if value is old:
                    object.__setattr__(self, attr, new)
        return result

    def _own_weights(self, trainable):
        return [(getattr(self, n), layout) for n, layout, t in self._weight_specs
                if t == trainable and getattr(self, n, None) is not None]  # (deleted since: gone)

    def _sublayers(self):
        """Direct sublayers, looking through plain containers (ModuleList, ModuleDict)."""
        return [m for m in _direct_modules(self) if isinstance(m, Layer)]

    def _keras_weights(self):
        """(tensor, layout) pairs in Keras' order: own trainable, own non-trainable, sublayers."""
        pairs = self._own_weights(True) + self._own_weights(False)
        for child in _direct_modules(self):
            if isinstance(child, Layer):
                pairs += child._keras_weights()
            else:  # a plain torch module inside a lamina model: its own tensors, torch layout
                pairs += [(t, None) for t in (*child.parameters(), *child.buffers())]
        return pairs

    @property
    def weights(self) -> list[torch.Tensor]:
        return [t for t, _ in self._keras_weights()]

    @property
    def trainable_weights(self) -> list[torch.Tensor]:
        return [t for t in self.weights if isinstance(t, nn.Parameter) and t.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        return [t for t in self.weights if not (isinstance(t, nn.Parameter) and t.requires_grad)]

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays in Keras' order and shapes."""
        return [_to_keras(t, layout).detach().cpu().numpy().copy()
                for t, layout in self._keras_weights()]

    def set_weights(self, weights) -> None:
        """Set weights from numpy arrays in Keras' order and shapes (as `get_weights` returns)."""
        pairs = self._keras_weights()
        if len(weights) != len(pairs):
            raise ValueError(
                f"Layer '{self.name}' expects {len(pairs)} weight arrays "
                f"({[tuple(_to_keras(t, lay).shape) for t, lay in pairs]}), but received "
                f"{len(weights)}."
            )
        for i, ((t, layout), w) in enumerate(zip(pairs, weights)):
            w = torch.as_tensor(np.asarray(w))
            expected = tuple(_to_keras(t, layout).shape)
            if tuple(w.shape) != expected:
                raise ValueError(
                    f"Layer '{self.name}' weight {i} has shape {expected} (Keras layout), but the "
                    f"array given for it has shape {tuple(w.shape)}."
                )
            if layout is not None:
                w = layout.from_keras(w)
            with torch.no_grad():
                t.copy_(w.to(t.dtype))

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' has no weights yet: it is built on its first call. Call it on "
                "an input (or give the model an Input) before count_params()."
            )
        return sum(t.numel() for t in self.weights)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for m in self.modules():
            if isinstance(m, Layer):
                m._trainable = bool(value)
            for p in m.parameters(recurse=False):
                p.requires_grad_(bool(value))

    def add_loss(self, loss) -> None:
        """Add a loss term from inside `call` (Keras' `add_loss`), e.g. an endpoint layer that
        computes a loss from targets it receives as an input. `fit`/`compute_loss` add the sum
        of every layer's terms to the compiled loss (which may then be left out of compile()).

        A layer's terms are those of its latest call: the next call starts a new list.
        """
        if "_added_losses" not in vars(self):
            self._added_losses = []
            # Cleared as each call begins (a forward pre-hook), so that the terms of earlier
            # steps do not pile up; the hook exists only on layers that add losses.
            self.register_forward_pre_hook(_clear_added_losses)
        self._added_losses.append(torch.as_tensor(loss))
        _losses_added[0] = True

    @property
    def losses(self) -> list[torch.Tensor]:
        """As Keras 3 lists them: the terms added with `add_loss` in the latest call by this layer
        and its sublayers, then the regularization penalties on their current weights."""
        tree_layers = self._layer_tree()
        added = [t for layer in tree_layers for t in vars(layer).get("_added_losses", ())]
        return added + [reg(getattr(layer, name)) for layer in tree_layers
                        for name, reg in layer._regularizers]

    def _layer_tree(self) -> list:
        """This layer, then its sublayers depth first."""
        found = [self]
        for child in self._sublayers():
            found += child._layer_tree()
        return found

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.compute_dtype != torch.float32:
            config["dtype"] = str(self.compute_dtype).removeprefix("torch.")
        if self.activity_regularizer is not None:
            from lamina import regularizers

            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class Permuted:
    """A weight kept as its Keras shape permuted by `perm` (e.g. a conv kernel in torch's order).

    Any object with `to_keras(t)` and `from_keras(t)` can serve as a layout the same way, for
    weights whose torch form is not a mere permutation of axes (GRU's gate order, say).
    """

    def __init__(self, perm):
        self.perm = tuple(perm)
        self.inverse = tuple(int(i) for i in np.argsort(self.perm))

    def to_keras(self, t):
        return t.permute(self.inverse)

    def from_keras(self, t):
        return t.permute(self.perm)


def _layout(layout):
    return Permuted(layout) if isinstance(layout, (tuple, list)) else layout


def _marks_built(build):
    """Wrap a subclass' build so that calling it directly (as Keras users do before set_weights)
    marks the layer built, and a second call is a no-op instead of re-creating the weights."""

    @functools.wraps(build)
    def wrapper(self, *shapes, **named_shapes):
        if self.built:
            return
        build(self, *shapes, **named_shapes)
        self._build_input_shape = (shapes or (*named_shapes.values(), None))[0]
        self.built = True

    return wrapper


# Set by the first add_loss in this process: until then a training step skips looking for terms.
_losses_added = [False]


def any_layer_adds_losses() -> bool:
    return _losses_added[0]


def _clear_added_losses(layer, args):
    layer._added_losses.clear()


def _direct_modules(module):
    for child in module.children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            yield from _direct_modules(child)
        else:
            yield child


def _to_keras(t, layout):
    return t if layout is None else layout.to_keras(t)


# Keyword values that cannot hold a symbolic tensor, and those that are no tensor at all.
_PLAIN = (bool, int, float, str, torch.Tensor)
_SCALARS = (bool, int, float, str)


def _mask_of(inputs):
    if isinstance(inputs, torch.Tensor):
        return getattr(inputs, "_lamina_mask", None)
    masks = [getattr(t, "_lamina_mask", None) for t in tree.flatten(inputs)]
    return None if all(m is None for m in masks) else masks


def _regularizer(identifier):
    if identifier is None:
        return None
    from lamina import regularizers

    return regularizers.get(identifier)


def _torch_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, dict):  # a Keras DTypePolicy config
        dtype = dtype.get("config", {}).get("name", "float32")
    name = str(dtype).removeprefix("torch.")
    if name.startswith("mixed_"):
        name = "float32"
    resolved = getattr(torch, name, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"Unknown dtype: {dtype!r}. Use e.g. 'float32', 'float64' or 'bfloat16'.")
    return resolved
