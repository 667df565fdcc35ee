"""What lamina's operators share: the test for the compiled loops' inputs, a vmap rule by
looping, and each operator's plain-torch formula for graph export."""

from __future__ import annotations

import torch

# Operator -> its formula in torch's own ops, for `torch.export`'s run_decompositions: an exported
# graph (ONNX) then holds standard operators only.
DECOMPOSITIONS: dict = {}


def on_loops(*tensors) -> bool:
    """Whether tensors (None: absent, skipped) can go to a compiled loop: float32, contiguous, CPU."""
    return all(t is None or (t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous())
               for t in tensors)


def as_float32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision inputs are upcast: their range and precision are too small for statistics
    and sums."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def vmap_by_loop(op) -> None:
    """Register for `op` the vmap rule that runs it once per mapped index and stacks the results:
    right for every operator (each sees plain tensors, so its own route choice applies), and the
    one used where no batched formula is written."""

    def rule(info, in_dims, *args):
        results = [op(*(a.select(d, i) if isinstance(a, torch.Tensor) and d is not None else a
                       for a, d in zip(args, in_dims)))
                   for i in range(info.batch_size)]
        if isinstance(results[0], (tuple, list)):
            stacked = [torch.stack(r) for r in zip(*results)]
            return type(results[0])(stacked), type(results[0])(0 for _ in stacked)
        return torch.stack(results), 0

    torch.library.register_vmap(op, rule)


def decomposes(op):
    """Decorator: record the function as `op`'s plain-torch formula (see DECOMPOSITIONS)."""

    def record(formula):
        DECOMPOSITIONS[op] = formula
        return formula

    return record


# One library fragment for every family (FRAGMENT: each module adds its operators to "lamina").
_LIBRARY = torch.library.Library("lamina", "FRAGMENT")


def operator(schema: str, impl, fake, setup_context=None, backward=None, vmap=None):
    """Register the operator lamina::`schema`: `impl` runs it on real tensors of any device,
    `fake` gives its outputs' shapes for graph capture, `backward(ctx, *grads)` (with
    `setup_context(ctx, inputs, output)`) is its gradient, and `vmap` its vmap rule (default: one
    call per mapped index). Returns the operator.

    Registered with torch.library's lower-level calls rather than `torch.library.custom_op`,
    whose Python wrapper (argument defaults, alias checks, its own autograd.Function) cost more
    per call than a small norm's arithmetic. What is returned is the operator as lamina calls it
    (`entry`): `impl` itself where the dispatcher would do nothing but call it, else the operator
    through the dispatcher."""
    name = schema.split("(", 1)[0]
    _LIBRARY.define(schema)
    op = getattr(torch.ops.lamina, name).default
    _LIBRARY.impl(name, impl, "CompositeExplicitAutograd")
    torch.library.register_fake(op, fake, lib=_LIBRARY)
    autograd_kernel = None
    if backward is not None:
        # Two forms of the same autograd.Function: functorch transforms (vmap, grad) need the
        # setup_context form, whose apply inspects signatures on every call; eager calls take the
        # classic form, which does not.
        transformable = type(f"_{name}_transformable", (torch.autograd.Function,), {
            "forward": staticmethod(lambda *args: _below_autograd(op, impl, args)),
            "setup_context": staticmethod(setup_context),
            "backward": staticmethod(backward),
            "generate_vmap_rule": True,
        })

        def classic_forward(ctx, *args):
            output = _below_autograd(op, impl, args)
            setup_context(ctx, args, output)
            return output

        classic = type(f"_{name}_autograd", (torch.autograd.Function,), {
            "forward": staticmethod(classic_forward), "backward": staticmethod(backward)})

        def autograd_kernel(*args):
            if not (torch.is_grad_enabled()
                    and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)):
                return _below_autograd(op, impl, args)
            if torch._C._are_functorch_transforms_active():
                return transformable.apply(*args)
            return classic.apply(*args)

        _LIBRARY.impl(name, autograd_kernel, "Autograd")
    if vmap is None:
        vmap_by_loop(op)
    else:
        torch.library.register_vmap(op, vmap, lib=_LIBRARY)
    return entry(op, impl, autograd_kernel)


def entry(op, impl, autograd_kernel=None):
    """`op` as lamina's code calls it. Where the dispatcher would only pass the call on to a
    Python kernel (eager, plain tensors, nothing that watches or transforms operator calls:
    `_unwatched` and `_plain_tensors`), that kernel is called here: `impl`, or `autograd_kernel`
    when a gradient is to be recorded. Each crossing between Python and the dispatcher costs ~3-6
    us, as much as a single sample's normalization or convolution. Everywhere else the call goes
    to `op`, so that graph capture, export, tracing, modes, tensor subclasses and the profiler see
    the operator. The overload is the function's `overload` attribute."""
    arguments = op._schema.arguments
    tensors = [i for i, a in enumerate(arguments) if str(a.type) in ("Tensor", "Optional[Tensor]")]
    lists = [i for i, a in enumerate(arguments) if str(a.type) in ("List[Tensor]", "List[Optional[Tensor]]")]

    def call(*args):
        # is_compiling first: under torch.compile it is a constant, and the rest is not traced.
        if torch.compiler.is_compiling() or not _unwatched():
            return op(*args)
        found = [args[i] for i in tensors]
        for i in lists:
            found.extend(args[i])
        if not _plain_tensors(found):
            return op(*args)
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in found):
            return op(*args) if autograd_kernel is None else autograd_kernel(*args)
        return impl(*args)

    call.overload = op
    call.__name__ = call.__qualname__ = f"lamina.{op.name().split('::')[1]}"
    return call


def _unwatched() -> bool:
    """No graph capture by torch.jit's tracer, functorch transform, function or dispatch mode, or
    profiler: nothing that would see or change an operator call between Python and its kernel."""
    return (torch._C._len_torch_dispatch_stack() == 0 and not torch._C._is_torch_function_mode_enabled()
            and not torch._C._are_functorch_transforms_active() and not torch._C._is_tracing()
            and not torch._C._autograd._profiler_enabled())


def _plain_tensors(tensors) -> bool:
    """Whether each tensor (or None) is one no override sees: a plain tensor or a parameter, not a
    subclass with __torch_function__ or __torch_dispatch__ (FakeTensor, DTensor, ...)."""
    for t in tensors:
        if t is None:
            continue
        plain = _PLAIN_TENSOR_TYPES.get(type(t))
        if plain is None:
            # Parameters (lamina's Variables among them) switch both protocols off; torch.Tensor
            # has its default __torch_function__, which no mode or override reaches.
            cls = type(t)
            plain = _PLAIN_TENSOR_TYPES[cls] = (
                cls.__torch_function__ is torch._C._disabled_torch_function_impl
                and cls.__torch_dispatch__ is _DISABLED)
        if not plain:
            return False
    return True


_PLAIN_TENSOR_TYPES = {torch.Tensor: True}  # tensor type -> whether no override sees its calls


def recomputed_grads(formula, inputs, needs, cotangents) -> tuple:
    """An operator's gradients for a backward that must itself be differentiable (create_graph=
    True: gradient penalties, Hessian-vector products): `formula(*inputs)`, its plain-torch
    statement, run again under autograd and differentiated with create_graph. `needs`: which
    inputs want a gradient (the others get None); `cotangents`: one per output, None for none."""
    with torch.enable_grad():
        outputs = formula(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    pairs = [(out, cot) for out, cot in zip(outputs, cotangents) if cot is not None and out.requires_grad]
    wanted = [t for t, need in zip(inputs, needs) if need]
    found = iter(torch.autograd.grad([out for out, _ in pairs], wanted, [cot for _, cot in pairs],
                                     create_graph=True, allow_unused=True))
    return tuple(next(found) if need else None for need in needs)


def _below_autograd(op, impl, args):
    """`op` on `args` below the autograd key: `impl` called here where that is all the dispatcher
    would do (plain tensors, no dispatch mode or functorch transform active), which saves a
    second crossing between Python and the dispatcher (~10 us, most of a small norm's call);
    otherwise a redispatch, so that fake tensors, tensor subclasses and modes see the op."""
    if (torch._C._len_torch_dispatch_stack() == 0 and not torch._C._are_functorch_transforms_active()
            and all(_plain(a) for a in args)):
        with torch._C._AutoDispatchBelowAutograd():
            return impl(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


_DISABLED = torch._C._disabled_torch_dispatch_impl


def _plain(arg) -> bool:
    """Whether an argument is no tensor, or a tensor (or list of them) without __torch_dispatch__."""
    if isinstance(arg, torch.Tensor):
        return type(arg).__torch_dispatch__ is _DISABLED
    if isinstance(arg, (list, tuple)):
        return all(_plain(a) for a in arg)
    return True
