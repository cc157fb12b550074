"""Loss registry: each public module of ``lossbench.losses`` registers its losses with ``@register_loss``.

Modules are found by ``discover()``, so adding a loss is one module plus one ``conf/loss/<name>.yaml`` and one
test; nothing here is edited.

Validating a config needs a loss's parameters but not its torch code, and ``import torch`` costs ~2 s (every
CLI call, every launcher worker, every scikit-learn-only run). So ``discover()`` *reads* each module instead
of importing it: it evaluates the ``@register_loss(...)`` decorator calls from the source (with the constraint
classes, literals and the module-level names they use), which registers every loss without its factory. The
module itself is imported when a loss is first built; its decorators then attach the factories and are checked
against what was read. A module whose decorators cannot be read that way is imported at discovery (correct,
only slower; ``tests/test_losses.py`` checks every built-in module is read).
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import _validation
from ._validation import InvalidLossParameterError, check_class_counts, check_num_classes, check_param

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

__all__ = [
    "LOSSES",
    "LossSpec",
    "available_losses",
    "build_loss",
    "class_weights",
    "register_loss",
    "validate_loss_params",
]

_REGISTRY: dict[str, LossSpec] = {}
LOSSES: Mapping[str, LossSpec] = MappingProxyType(_REGISTRY)


@dataclass(frozen=True)
class LossSpec:
    """Metadata of one registered loss (``LOSSES[name]``).

    Attributes
    ----------
    name : registry and yaml name.
    summary : one line: what the loss is, with its reference.
    params : parameter name -> default (the keys of ``conf/loss/<name>.yaml`` besides ``name``).
    needs_class_counts : True when ``build_loss`` with the *default* params needs ``class_counts``
        (``requires_class_counts(params)`` answers for given params, e.g. weighted_ce with explicit weights).
    probabilistic : True when ``softmax(logits)`` is the model's probability estimate under this loss.
    module, factory_name : where the factory is (``module.factory_name``); ``factory`` is None until that
        module is imported (``build_loss`` imports it).
    """

    name: str
    summary: str
    params: Mapping[str, Any]
    needs_class_counts: bool
    probabilistic: bool
    module: str
    factory_name: str
    factory: Callable[..., nn.Module] | None = field(repr=False, compare=False)
    constraints: Mapping[str, tuple[Any, ...]] = field(repr=False)
    counts_rule: Callable[[Mapping[str, Any]], bool] = field(repr=False, compare=False)

    def requires_class_counts(self, params: Mapping[str, Any]) -> bool:
        """Whether ``build_loss`` needs ``class_counts`` with these (validated, defaults-filled) params."""
        return self.counts_rule(params)


def _make_spec(
    name: str,
    *,
    summary: str,
    params: Mapping[str, tuple[Any, Sequence[Any]]],
    probabilistic: bool,
    needs_class_counts: bool | Callable[[Mapping[str, Any]], bool] = False,
    module: str,
    factory_name: str,
    factory: Callable[..., nn.Module] | None,
) -> LossSpec:
    """The LossSpec of one ``register_loss(name, **kwargs)`` call (defaults checked by their constraints)."""
    rule = needs_class_counts if callable(needs_class_counts) else (lambda _p, _v=needs_class_counts: _v)
    constraints = {p: tuple(c) for p, (_, c) in params.items()}
    defaults = {p: check_param(f"loss {name!r}", p, d, constraints[p], None) for p, (d, _) in params.items()}
    return LossSpec(
        name=name,
        summary=summary,
        params=MappingProxyType(defaults),
        needs_class_counts=bool(rule(defaults)),
        probabilistic=probabilistic,
        module=module,
        factory_name=factory_name,
        factory=factory,
        constraints=MappingProxyType(constraints),
        counts_rule=rule,
    )


def _registered_twice(known: LossSpec) -> RuntimeError:
    return RuntimeError(f"Loss {known.name!r} is registered twice ({known.module}.{known.factory_name}).")


def register_loss(
    name: str,
    *,
    summary: str,
    params: Mapping[str, tuple[Any, Sequence[Any]]],
    probabilistic: bool,
    needs_class_counts: bool | Callable[[Mapping[str, Any]], bool] = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``factory(num_classes=..., class_counts=..., **params) -> nn.Module`` under ``name``.

    ``params`` maps each parameter to ``(default, constraints)``; a value is valid when it satisfies any
    constraint (see ``_validation``). ``needs_class_counts`` may be a function of the validated params.
    Keep the arguments to literals, constraint objects and module-level names, so ``discover`` can read them
    without importing the module.
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        spec = _make_spec(
            name,
            summary=summary,
            params=params,
            probabilistic=probabilistic,
            needs_class_counts=needs_class_counts,
            module=factory.__module__,
            factory_name=factory.__qualname__,
            factory=factory,
        )
        known = _REGISTRY.get(name)
        if known is None:
            _REGISTRY[name] = spec
        elif known.factory is None and (known.module, known.factory_name) == (spec.module, spec.factory_name):
            if known != spec:  # the module changed since it was read, or the reading is wrong
                raise RuntimeError(
                    f"Loss {name!r}: the registration read from {spec.module}'s source ({known}) differs "
                    f"from the one its import made ({spec}). Restart the process after editing a loss module."
                )
            _REGISTRY[name] = replace(known, factory=factory, counts_rule=spec.counts_rule)
        else:
            raise _registered_twice(known)
        return factory

    return decorator


# names a decorator call may use when read from source (besides literals and module-level assignments)
_READ_NAMES = {n: getattr(_validation, n) for n in ("ClassVector", "NoneValue", "Real", "StrOptions")}


def _read_module(module: str) -> bool:
    """Register the losses of ``module`` from its source without importing it; False when it cannot be read
    that way (no source file, or a decorator argument that needs more than literals, constraint classes and
    module-level assignments of those). Nothing is registered then."""
    found = importlib.util.find_spec(module)
    origin = getattr(found, "origin", None)
    if not origin or not origin.endswith(".py"):
        return False
    with open(origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), origin)
    assigned = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    }
    calls = [
        (fn.name, deco)
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef)
        for deco in fn.decorator_list
        if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "register_loss"
    ]
    namespace: dict[str, Any] = {**_READ_NAMES, "register_loss": lambda name, **kwargs: (name, kwargs)}

    def evaluate(node: ast.expr, seen: frozenset[str] = frozenset()) -> Any:
        # module-level names the expression uses are evaluated first (e.g. hinge's _PARAMS uses VARIANTS)
        for var in sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - namespace.keys()):
            if var in assigned and var not in seen:
                namespace[var] = evaluate(assigned[var], seen | {var})
        return eval(compile(ast.Expression(node), origin, "eval"), namespace)

    specs = []
    try:
        for factory_name, call in calls:
            name, kwargs = evaluate(call)
            specs.append(_make_spec(name, **kwargs, module=module, factory_name=factory_name, factory=None))
    except Exception:  # a name or expression the reading does not cover: import the module instead
        return False
    for spec in specs:
        if spec.name in _REGISTRY:
            raise _registered_twice(_REGISTRY[spec.name])
        _REGISTRY[spec.name] = spec
    return True


def discover(package: str, path: Sequence[str]) -> None:
    """Register the losses of every public module of the package: read from source, else imported."""
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("_") and not _read_module(f"{package}.{info.name}"):
            importlib.import_module(f"{package}.{info.name}")


def _factory(spec: LossSpec) -> Callable[..., nn.Module]:
    """The loss's factory, importing its module the first time."""
    if spec.factory is None:
        importlib.import_module(spec.module)
        spec = _REGISTRY[spec.name]
        if spec.factory is None:
            raise RuntimeError(
                f"Loss {spec.name!r}: importing {spec.module} did not register {spec.factory_name}."
            )
    return spec.factory


def available_losses() -> list[str]:
    """Sorted names of the registered losses."""
    return sorted(_REGISTRY)


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _spec(name: Any) -> LossSpec:
    if not isinstance(name, str) or name not in _REGISTRY:
        hint = _did_you_mean(name, list(_REGISTRY)) if isinstance(name, str) else ""
        raise ValueError(f"Unknown loss {name!r}. Available losses: {', '.join(available_losses())}.{hint}")
    return _REGISTRY[name]


def validate_loss_params(name: str, *, num_classes: int | None = None, **params: Any) -> dict[str, Any]:
    """Check every parameter of loss ``name``; return them normalised, with defaults filled in.

    Needs no data: per-class lists are length-checked only when ``num_classes`` is given. Numbers come back
    as ``float``, per-class sequences (list, tuple, ListConfig, ndarray) as ``list[float]``.

    Raises
    ------
    ValueError
        Unknown loss name (the message lists the available ones).
    InvalidLossParameterError
        (a ``ValueError`` and a ``TypeError``) unknown parameter, or a bad value or type.

    Examples
    --------
    >>> validate_loss_params("focal", gamma=1)
    {'gamma': 1.0, 'alpha': None}
    """
    spec = _spec(name)
    if num_classes is not None:
        num_classes = check_num_classes(num_classes, "validate_loss_params")
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(repr(p) for p in spec.params) if spec.params else "none (it takes no parameters)"
        raise InvalidLossParameterError(
            f"Unknown parameter {unknown[0]!r} for loss {name!r}. Allowed parameters: {allowed}."
            + _did_you_mean(unknown[0], list(spec.params))
        )
    return {
        p: check_param(f"loss {name!r}", p, params.get(p, default), spec.constraints[p], num_classes)
        for p, default in spec.params.items()
    }


def build_loss(
    name: str, *, num_classes: int, class_counts: Sequence[int] | None = None, **params: Any
) -> nn.Module:
    """Build loss ``name``: a module mapping ``(logits [N, C] float, target [N] int64)`` to a 0-dim mean loss.

    ``class_counts`` are the training counts n_k of each class; losses that use them (balanced weights,
    class_balanced, logit_adjusted, ldam) raise ``ValueError`` when they are missing, of the wrong length, or
    contain a zero. Parameters are checked by ``validate_loss_params``.

    Examples
    --------
    >>> loss = build_loss("focal", num_classes=3, gamma=1.0)
    >>> loss(torch.zeros(2, 3), torch.tensor([0, 2]))
    tensor(0.7324)
    """
    spec, num_classes, counts, checked = _checked_call(name, num_classes, class_counts, params, "build_loss")
    return _factory(spec)(num_classes=num_classes, class_counts=counts, **checked)


def class_weights(
    name: str, *, num_classes: int, class_counts: Sequence[int] | None = None, **params: Any
) -> np.ndarray:
    """The per-class weights [C] (float32) of a loss realised as class weights (``weighted_ce``,
    ``class_balanced``), checked as :func:`build_loss` checks them, without torch: scikit-learn models fit
    with them as per-sample weights. They equal the built loss's ``weight`` buffer.

    >>> class_weights("weighted_ce", num_classes=2, class_counts=[3, 1])
    array([0.6666667, 2.       ], dtype=float32)
    """
    from ._weights import CLASS_WEIGHTS

    if name not in CLASS_WEIGHTS:
        raise ValueError(
            f"Loss {name!r} is not realised as class weights; those that are: {sorted(CLASS_WEIGHTS)}."
        )
    _, _, counts, checked = _checked_call(name, num_classes, class_counts, params, "class_weights")
    return CLASS_WEIGHTS[name](counts, **checked)


def _checked_call(name: str, num_classes, class_counts, params: dict, caller: str):
    """(spec, num_classes, class_counts, params) of a loss, each checked; class_counts may stay None when the
    loss with these parameters does not use them."""
    spec = _spec(name)
    num_classes = check_num_classes(num_classes, caller)
    checked = validate_loss_params(name, num_classes=num_classes, **params)
    needed = spec.requires_class_counts(checked)
    counts = None
    if class_counts is not None:
        counts = check_class_counts(
            class_counts, num_classes, caller=f"{caller} (loss {name!r})", positive=needed
        )
    elif needed:
        raise ValueError(
            f"Loss {name!r} with parameters {checked} needs class_counts, the training count of each of the "
            f"{num_classes} classes; got None. "
            f"Pass class_counts=np.bincount(y_train, minlength={num_classes})."
        )
    return spec, num_classes, counts, checked
