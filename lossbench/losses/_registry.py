"""Loss registry: each public module of ``lossbench.losses`` registers its losses with ``@register_loss``.

Modules are found by ``discover()``, so adding a loss is one module plus one ``conf/loss/<name>.yaml`` and one
test; nothing here is edited.

Validating a config needs a loss's parameters but not its torch code, and ``import torch`` costs ~2 s (every
CLI call, every launcher worker, every scikit-learn-only run). So a loss module imports without torch: its
``@register_loss`` arguments use only the ``_validation`` constraint classes, its functions import torch when
called, and its ``nn.Module`` classes are defined on first access (``_lazy``). ``discover()`` imports every
module, which registers every loss with its factory; building a loss is what imports torch.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import InvalidLossParameterError, check_class_counts, check_num_classes, check_param

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "LOSSES",
    "LossSpec",
    "available_losses",
    "build_loss",
    "class_weights",
    "discover",
    "register_loss",
    "validate_loss_params",
]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float64 logits ``[N, C]``, stable for large values."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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
    probabilistic : True when the loss makes its model a probability estimator (see ``probability``).
    factory : ``factory(num_classes=..., class_counts=..., **params) -> nn.Module``; it imports torch.
    to_proba : ``to_proba(logits, params) -> proba`` in NumPy, the distribution the loss trains its model's
        logits towards (softmax(z) by default; LDAM: softmax(scale z)). Use :meth:`probability`.
    """

    name: str
    summary: str
    params: Mapping[str, Any]
    needs_class_counts: bool
    probabilistic: bool
    factory: Callable[..., nn.Module] = field(repr=False)
    constraints: Mapping[str, tuple[Any, ...]] = field(repr=False)
    counts_rule: Callable[[Mapping[str, Any]], bool] = field(repr=False, compare=False)
    to_proba: Callable[[np.ndarray, Mapping[str, Any]], np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )
    head: Callable[[Mapping[str, Any]], str] | None = field(default=None, repr=False, compare=False)

    def output_layer(self, params: Mapping[str, Any] | None = None) -> str:
        """The last layer a torch model trained with this loss gets: ``linear`` (default) or ``cosine``
        (normalised logits in [-1, 1], :class:`lossbench.heads.CosineLinear`)."""
        return "linear" if self.head is None else self.head({**self.params, **(params or {})})

    def probability(self, logits: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray | None:
        """The model's class probabilities from its logits ``[N, C]`` under this loss (float64 rows summing to
        one), with the loss's params (defaults filled in); None for a loss that gives no probabilities
        (margin and square losses)."""
        if not self.probabilistic:
            return None
        z = np.asarray(logits, dtype=np.float64)
        full = {**self.params, **(params or {})}
        return softmax(z) if self.to_proba is None else self.to_proba(z, full)

    def requires_class_counts(self, params: Mapping[str, Any]) -> bool:
        """Whether ``build_loss`` needs ``class_counts`` with these (validated, defaults-filled) params."""
        return self.counts_rule(params)


def _where(factory: Callable[..., Any]) -> str:
    return f"{factory.__module__}.{factory.__qualname__}"


def register_loss(
    name: str,
    *,
    summary: str,
    params: Mapping[str, tuple[Any, Sequence[Any]]],
    probabilistic: bool,
    needs_class_counts: bool | Callable[[Mapping[str, Any]], bool] = False,
    to_proba: Callable[[np.ndarray, Mapping[str, Any]], np.ndarray] | None = None,
    head: Callable[[Mapping[str, Any]], str] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``factory(num_classes=..., class_counts=..., **params) -> nn.Module`` under ``name``.

    ``params`` maps each parameter to ``(default, constraints)``; a value is valid when it satisfies any
    constraint (see ``_validation``), and each default is checked here. ``needs_class_counts`` may be a
    function of the validated params. ``to_proba(logits, params)`` (NumPy) maps logits to the probabilities
    the loss trains, when that is not softmax(logits), and ``head(params)`` the torch models' last layer
    (``linear`` or ``cosine``; see :class:`LossSpec`). Runs when the loss module is
    imported, so it must not need torch.
    """
    rule = needs_class_counts if callable(needs_class_counts) else (lambda _p, _v=needs_class_counts: _v)
    constraints = {p: tuple(c) for p, (_, c) in params.items()}
    defaults = {p: check_param(f"loss {name!r}", p, d, constraints[p], None) for p, (d, _) in params.items()}

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(
                f"Loss {name!r} is registered twice: by {_where(_REGISTRY[name].factory)} and by "
                f"{_where(factory)}. Rename one of them."
            )
        _REGISTRY[name] = LossSpec(
            name=name,
            summary=summary,
            params=MappingProxyType(defaults),
            needs_class_counts=bool(rule(defaults)),
            probabilistic=probabilistic,
            factory=factory,
            constraints=MappingProxyType(constraints),
            counts_rule=rule,
            to_proba=to_proba,
            head=head,
        )
        return factory

    return decorator


def discover(package: str, path: Sequence[str]) -> list[str]:
    """Import every public module (name not starting with ``_``) of ``package`` found on ``path``, which
    registers its losses; return the modules' names, sorted."""
    modules = sorted(f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if info.name[0] != "_")
    for module in modules:
        importlib.import_module(module)
    return modules


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
        hint = _did_you_mean(unknown[0], list(spec.params))
        close = difflib.get_close_matches(unknown[0], list(spec.params), n=1)
        raise InvalidLossParameterError(
            f"Unknown parameter {unknown[0]!r} for loss {name!r}. Allowed parameters: {allowed}.{hint}",
            param=unknown[0],
            value=params[unknown[0]],
            allowed=f"loss {name!r} has no such parameter (its parameters: {allowed})"
            + (f"; did you mean {close[0]!r}?" if close else ""),
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
    return spec.factory(num_classes=num_classes, class_counts=counts, **checked)


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
