"""K seeds of one config trained as one vectorised ensemble (``torch.func``), each reproducing its own run.

``execute_seeds(prepared)`` takes configs that :func:`lossbench.pipeline.prepare` made and returns what
:func:`lossbench.pipeline.execute` would return for each, in order. Configs that differ only in ``seed`` (so
in their data split, imbalance subsample, initial weights and batch order) are trained together: the K nets
are built exactly as the sequential path builds them (``build_model`` with each run's seed), their parameters
stacked (``stack_module_state``) and every step runs all members at once (``vmap`` of ``functional_call``).
Per member, everything the sequential loop (:func:`lossbench.train.fit_torch`) does is kept:

- its own training rows and batch order (its own ``torch.Generator`` seeded with its seed, one ``randperm``
  per epoch), the same batch size and step count;
- its own loss parameters: the loss module of each member is built from its own class counts (logit
  adjustment, LDAM margins, balanced or class-balanced weights, ``rebalance=class_weight``), and its buffers
  are stacked and vmapped with the logits;
- the optimizer (Adam, AdamW, SGD with momentum) over the stacked parameters: those optimizers act element by
  element, so one optimizer over ``[K, ...]`` tensors is K independent optimizers as long as each member's
  gradient is the gradient of its own objective, which is why the members' objectives are *summed*;
- the explicit L1/L2/elastic-net penalty of its own weights (:func:`lossbench.train.weight_penalty`, same
  coefficients, so the same gradient);
- validation, curves and early stopping per member: a member that stops (or hits a non-finite loss) leaves
  the ensemble, which is compacted (parameters, optimizer state, data) so the others train on alone; its
  best-epoch weights are kept and loaded into its own net, which is then evaluated by the same code as a
  sequential run (:func:`lossbench.pipeline.evaluate`).

Numbers agree with the sequential runs up to floating-point rounding: a batched matmul may round the last bit
differently from K single ones (so may the sequential path itself between thread counts or devices). In nets
with kinks (ReLU, max-pool) such a last-bit difference can, on an unlucky seed, tip a unit across its kink and
grow over a long training into a slightly different trajectory, just as changing the sequential run's thread
count does; smooth nets stay at rounding level. What is not vectorised runs sequentially through ``execute``,
with the reason logged and recorded in ``RunResult.info["sequential_reason"]``: scikit-learn models, dropout
(its masks come from each run's global RNG stream), a config no other config in the call matches up to its
seed, and seeds whose fitted training splits differ in size (a vectorised step needs equal batch shapes;
resampling or ties in the stratified split can cause that). A vectorised group that fails for any other
reason is re-run sequentially, with a warning.

    from lossbench.ensemble import execute_seeds
    results = execute_seeds([prepare(cfg_seed0), prepare(cfg_seed1), prepare(cfg_seed2)])
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lossbench.pipeline import Prepared, RunResult, execute

log = logging.getLogger("lossbench")

# torch models whose nets are stateless stacks of layers that vmap over stacked parameters
VECTORISED_MODELS = ("torch_linear", "torch_mlp", "torch_cnn")


@dataclass
class EnsemblePlan:
    """How :func:`execute_seeds` runs a list of prepared configs."""

    groups: list[list[int]] = field(default_factory=list)  # positions trained together, one ensemble each
    sequential: dict[int, str] = field(default_factory=dict)  # position -> why it runs on its own

    def describe(self) -> str:
        parts = [f"vectorised {g}" for g in self.groups]
        parts += [f"sequential [{i}]: {why}" for i, why in sorted(self.sequential.items())]
        return "; ".join(parts) or "nothing to run"


def _group_key(cfg: dict) -> str:
    """What a run computes apart from its seed (the fingerprint's keys, less ``seed``)."""
    from lossbench.config import NON_SEMANTIC_KEYS

    ignored = {"seed", "hydra", *NON_SEMANTIC_KEYS}
    return json.dumps({k: v for k, v in cfg.items() if k not in ignored}, sort_keys=True, default=str)


def _why_not_vectorised(p: Prepared) -> str | None:
    """The reason a config cannot join an ensemble on its own terms, or None."""
    from lossbench.models import MODELS

    c = p.cfg
    name = c["model"]["name"]
    if MODELS[name].backend != "torch":
        return (
            f"model={name} is a scikit-learn model; only torch models ({', '.join(VECTORISED_MODELS)}) "
            "are vectorised"
        )
    if name not in VECTORISED_MODELS:
        return f"model={name} has no vectorised form (only {', '.join(VECTORISED_MODELS)})"
    reg = c["regularization"]
    if reg["name"] == "dropout" and float(reg.get("rate", 0.0)) > 0:
        return (
            "regularization=dropout: each sequential run draws its dropout masks from its own global RNG "
            "stream, which a vmapped ensemble cannot reproduce"
        )
    return None


def plan_seeds(prepared: Sequence[Prepared]) -> EnsemblePlan:
    """Group the configs that can train as one ensemble: a torch model, no dropout, the same config up to
    ``seed``, and the same fitted-split and val-split sizes. Everything else runs sequentially, with a
    reason."""
    plan = EnsemblePlan()
    candidates: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        reason = _why_not_vectorised(p)
        if reason is not None:
            plan.sequential[i] = reason
            continue
        key = (_group_key(p.cfg), len(p.y_fit), len(p.y_val))
        candidates.setdefault(key, []).append(i)
    for (cfg_key, n_fit, n_val), members in candidates.items():
        if len(members) > 1:
            plan.groups.append(members)
            continue
        others = [
            (f"{n}/{nv}", positions)
            for (k, n, nv), positions in candidates.items()
            if k == cfg_key and (n, nv) != (n_fit, n_val)
        ]
        if others:
            sizes = ", ".join(f"{rows} (configs {positions})" for rows, positions in others)
            plan.sequential[members[0]] = (
                f"its fitted training / val splits have {n_fit}/{n_val} rows while its other seeds have "
                f"{sizes}: a vectorised step needs the same batch shapes for every member"
            )
        else:
            plan.sequential[members[0]] = "no other config in the call differs from it only by seed"
    return plan


def execute_seeds(
    prepared: Sequence[Prepared], *, return_exceptions: bool = False
) -> list[RunResult | BaseException]:
    """``[execute(p) for p in prepared]``, with the configs that differ only by seed trained as one ensemble.

    Returns one :class:`RunResult` per config, in order, with the same metrics, curves, predictions and info
    as ``execute`` (up to floating-point rounding); ``info`` also holds ``vectorised`` (bool),
    ``ensemble_size`` and, for a sequential run, ``sequential_reason``. ``info["fit_seconds"]`` of an ensemble
    member is its share of the ensemble's fit (the ensemble's time / its size), so sums stay wall time.

    A run that fails (e.g. a non-finite loss) raises as ``execute`` would, unless ``return_exceptions``: then
    its exception takes its place in the list and the other runs go on.
    """
    plan = plan_seeds(prepared)
    if len(prepared) > 1:
        log.info("execute_seeds: %d configs: %s", len(prepared), plan.describe())
    results: list[RunResult | BaseException | None] = [None] * len(prepared)

    def sequential(i: int, reason: str) -> None:
        log.info("config %d runs sequentially: %s", i, reason)
        try:
            result = execute(prepared[i])
        except Exception as e:
            if not return_exceptions:
                raise
            results[i] = e
            return
        result.info.update(vectorised=False, ensemble_size=1, sequential_reason=reason)
        results[i] = result

    for group in plan.groups:
        try:
            outcomes = _run_group([prepared[i] for i in group])
        except Exception as e:  # the sequential path is the reference: never return a half-vectorised guess
            log.warning(
                "vectorised training of configs %s failed (%s: %s); running them sequentially",
                group,
                type(e).__name__,
                e,
            )
            for i in group:
                sequential(i, f"the vectorised ensemble failed: {type(e).__name__}: {e}")
            continue
        for i, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not return_exceptions:
                raise outcome
            results[i] = outcome
    for i, reason in sorted(plan.sequential.items()):
        sequential(i, reason)
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------- one run, as execute does
def _build(p: Prepared):
    """The TorchModel ``pipeline.execute`` builds for this config (same context, same seeded init)."""
    from lossbench.pipeline import build

    return build(p)


def _result(p: Prepared, model, fit, ensemble_size: int) -> RunResult:
    """Evaluate a fitted model and assemble its RunResult exactly as ``pipeline.execute`` does."""
    from lossbench.pipeline import result

    return result(p, model, fit, vectorised=True, ensemble_size=ensemble_size)


def _run_group(group: list[Prepared]) -> list[RunResult | BaseException]:
    c = group[0].cfg
    log.info(
        "vectorised ensemble of %d seeds %s: data=%s model=%s loss=%s, %d training rows each",
        len(group),
        [int(p.cfg["seed"]) for p in group],
        group[0].dataset.name,
        c["model"]["name"],
        c["loss"]["name"],
        len(group[0].y_fit),
    )
    models = [_build(p) for p in group]
    fits = fit_ensemble(
        models,
        [(p.X_fit, p.y_fit) for p in group],
        [(p.X_val, p.y_val) for p in group],
        seeds=[int(p.cfg["seed"]) for p in group],
    )
    return [
        fit if isinstance(fit, BaseException) else _result(p, model, fit, len(group))
        for p, model, fit in zip(group, models, fits, strict=True)
    ]


# ------------------------------------------------------------------------------------ the vectorised loop
class _Weights:
    """Stand-in module for ``weight_penalty``: its parameters are the stacked weight tensors only (stacked
    biases have ndim 2 and would otherwise pass the ``ndim > 1`` test that tells weights from biases)."""

    def __init__(self, tensors: list) -> None:
        self._tensors = tensors

    def parameters(self):
        return iter(self._tensors)


def _check_same_structure(modules: list, what: str) -> None:
    """Members must be the same module up to tensor values: same tensor names and shapes, same settings."""
    import torch

    def signature(m):
        tensors = [(n, tuple(t.shape), t.dtype) for n, t in [*m.named_parameters(), *m.named_buffers()]]
        settings = {
            name: repr(value)
            for sub_name, sub in m.named_modules()
            for name, value in ((f"{sub_name}.{k}", v) for k, v in vars(sub).items() if not k.startswith("_"))
            if not isinstance(value, torch.Tensor)
        }
        return tensors, settings

    first = signature(modules[0])
    for k, m in enumerate(modules[1:], start=1):
        if signature(m) != first:
            raise ValueError(f"the {what} of member {k} differs from member 0 beyond its tensor values")


def fit_ensemble(
    models: list,
    train: list[tuple[np.ndarray, np.ndarray]],
    val: list[tuple[np.ndarray, np.ndarray]],
    *,
    seeds: list[int],
) -> list:
    """Train K TorchModels of one architecture, loss and training config together; member k trains on
    ``train[k]``, validates on ``val[k]`` and shuffles with ``seeds[k]``, as ``fit_torch`` would alone.

    All ``train`` arrays must have the same length, all ``val`` arrays too. Each model's net ends holding its
    best-epoch weights, on its device. Returns one ``TrainResult`` per member, or the
    ``NonFiniteLossError`` that member's sequential run would have raised.
    """
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    from lossbench.fitted import TrainResult
    from lossbench.train import (
        EpochProgress,
        NonFiniteLossError,
        Schedule,
        _optimizer,
        use_threads,
        weight_penalty,
    )

    start = time.perf_counter()
    K = len(models)
    ctx = models[0].ctx
    device = models[0].device
    train_cfg, regularization, C = ctx.train, ctx.regularization, ctx.num_classes
    if len({len(y) for _, y in train}) != 1 or len({len(y) for _, y in val}) != 1:
        raise ValueError("every member needs training (and val) splits of the same size")
    for m in models:
        if m.device != device:
            raise ValueError(f"members on different devices: {m.device} and {device}")
        if any(True for _ in m.net.buffers()):
            raise ValueError("nets with buffers (e.g. batch norm) are not vectorised")
    use_threads(train_cfg, device)
    nets = [m.net.to(device) for m in models]
    loss_fns = [m.loss_fn.to(device) for m in models]
    _check_same_structure(nets, "net")
    _check_same_structure(loss_fns, "loss")

    params, _ = stack_module_state(nets)  # new leaf tensors [K, ...]; the member nets stay untouched
    weight_names = [name for name, p in nets[0].named_parameters() if p.ndim > 1]
    base_net = copy.deepcopy(nets[0]).to("meta")
    base_loss = copy.deepcopy(loss_fns[0])
    loss_buffers = {
        name: torch.stack([dict(f.named_buffers())[name] for f in loss_fns])
        for name, _ in base_loss.named_buffers()
    }

    def forward_one(p, x):
        return functional_call(base_net, p, (x,))

    def loss_one(b, logits, target):
        return functional_call(base_loss, b, (logits, target))

    forward, loss_of = vmap(forward_one), vmap(loss_one)

    Xt = torch.as_tensor(np.stack([X for X, _ in train]), device=device)
    yt = torch.as_tensor(np.stack([y for _, y in train]), device=device)
    Xv = torch.as_tensor(np.stack([X for X, _ in val]), device=device)
    yv = torch.as_tensor(np.stack([y for _, y in val]), device=device)
    optimizer = _optimizer(list(params.values()), train_cfg)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    batch_size = int(train_cfg["batch_size"])
    schedule = Schedule(train_cfg, len(train[0][1]), base_loss)  # the members' splits have one size
    epochs = schedule.epochs
    maximise = train_cfg.get("monitor", "val_loss") == "val_balanced_accuracy"
    on_epoch_start = getattr(base_loss, "on_epoch_start", None)

    curves = [{"train_loss": [], "val_loss": [], "val_balanced_accuracy": []} for _ in range(K)]
    best_score: list[float | None] = [None] * K
    best_epoch, epochs_run = [0] * K, [0] * K
    best = {name: p.detach().clone() for name, p in params.items()}  # indexed by member
    failures: dict[int, BaseException] = {}
    progress = EpochProgress(epochs, f"ensemble of {K} seeds (means)")  # the members still training
    alive = list(range(K))  # the member of each stacked row
    n = len(train[0][1])
    support = torch.zeros(K, C, dtype=torch.long, device=device).scatter_add_(1, yv, torch.ones_like(yv))
    support_host = support.cpu()

    with warnings.catch_warnings():
        # hinge's scatter_ has no batching rule: vmap loops over members there (correct, a little slower)
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
        for epoch in range(epochs):
            if on_epoch_start is not None:
                on_epoch_start(epoch, epochs)
            base_net.train()
            order = torch.stack([torch.randperm(n, generator=generators[k]) for k in alive]).to(device)
            rows = torch.arange(len(alive), device=device)[:, None]
            total = torch.zeros(len(alive), device=device)
            for i in range(0, n, batch_size):
                batch = order[:, i : i + batch_size]
                losses = loss_of(loss_buffers, forward(params, Xt[rows, batch]), yt[rows, batch])
                penalty = weight_penalty(_Weights([params[w] for w in weight_names]), regularization)
                # summed, not averaged: each member's gradient is then the gradient of its own objective
                objective = losses.sum() if penalty is None else losses.sum() + penalty
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                total += losses.detach() * batch.shape[1]

            base_net.eval()
            with torch.no_grad():
                logits_val = torch.cat(
                    [forward(params, Xv[:, j : j + 4096]) for j in range(0, Xv.shape[1], 4096)], dim=1
                )
                val_losses = loss_of(loss_buffers, logits_val, yv)
                hits = torch.zeros_like(support).scatter_add_(1, yv, (logits_val.argmax(2) == yv).long())
            # one sync for all members: losses (float32 values, exact in float64) and integer hit counts
            stats = torch.cat([torch.stack([total / n, val_losses], 1).double(), hits.double()], 1).tolist()

            keep, improved, epoch_losses, epoch_baccs = [], [], [], []
            for r, (k, (train_loss, val_loss, *member_hits)) in enumerate(zip(alive, stats, strict=True)):
                epochs_run[k] = epoch + 1
                val_bacc = _balanced_accuracy_of(member_hits, support_host[k])
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    failures[k] = NonFiniteLossError(
                        f"non-finite loss at epoch {epoch + 1}: train {train_loss}, val {val_loss} "
                        f"(try a smaller train.lr or another loss setting)"
                    )
                    continue
                curves[k]["train_loss"].append(train_loss)
                curves[k]["val_loss"].append(val_loss)
                curves[k]["val_balanced_accuracy"].append(val_bacc)
                epoch_losses.append(train_loss)
                epoch_baccs.append(val_bacc)
                score = val_bacc if maximise else val_loss
                previous = None if schedule.restarts_selection(epoch) else best_score[k]
                if previous is None or (score > previous if maximise else score < previous):
                    best_score[k], best_epoch[k] = score, epoch
                    improved.append(r)
                if schedule.should_stop(epoch, best_epoch[k]):
                    continue
                keep.append(r)
            if epoch_losses:
                n_alive = len(epoch_losses)
                progress.update(epoch, sum(epoch_losses) / n_alive, sum(epoch_baccs) / n_alive)
            if improved:
                index = torch.tensor(improved, device=device)
                members = torch.tensor([alive[r] for r in improved], device=device)
                for name, p in params.items():
                    best[name][members] = p.detach()[index]
            if len(keep) < len(alive):
                if not keep:
                    break
                index = torch.tensor(keep, device=device)
                params, optimizer = _compact(params, optimizer, index, train_cfg)
                loss_buffers = {name: b[index] for name, b in loss_buffers.items()}
                Xt, yt, Xv, yv, support = Xt[index], yt[index], Xv[index], yv[index], support[index]
                alive = [alive[r] for r in keep]

    progress.close()
    share = (time.perf_counter() - start) / K
    out: list = []
    for k, net in enumerate(nets):
        if k in failures:
            out.append(failures[k])
            continue
        net.load_state_dict({name: best[name][k] for name in best})
        out.append(TrainResult(curves[k], epochs_run[k], best_epoch[k] + 1, str(device), share))
    return out


def _balanced_accuracy_of(hits: list[float], support):
    """``lossbench.train._balanced_accuracy`` from one member's per-class hit counts (counted on the device
    for all members at once) and its val support: the same float32 ops on the host, so the same value as a
    sequential CPU run (a GPU run's mean may round differently in the last bit)."""
    import torch

    hits_t = torch.tensor(hits, dtype=torch.float64).long()
    present = support > 0
    return (hits_t[present].float() / support[present].float()).mean().item()


def _compact(params: dict, optimizer, index, train_cfg):
    """Keep the stacked rows ``index``: new leaf parameters and an optimizer carrying their state over."""
    from lossbench.train import _optimizer

    new = {name: p.detach()[index].clone().requires_grad_(True) for name, p in params.items()}
    new_optimizer = _optimizer(list(new.values()), train_cfg)
    for old_p, new_p in zip(params.values(), new.values(), strict=True):
        state = optimizer.state.get(old_p)
        if state:  # per-element state is [K, ...]; scalars (Adam's step count) are shared by every member
            new_optimizer.state[new_p] = {
                key: (value[index].clone() if value.ndim > 0 else value.clone())
                if hasattr(value, "ndim")
                else value
                for key, value in state.items()
            }
    return new, new_optimizer
