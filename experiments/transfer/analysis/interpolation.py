"""Linear interpolation between checkpoints (Wu, Van Durme & Dredze 2022,
"Zero-shot cross-lingual transfer is under-specified optimization").

1-D: ``θ(a) = a·θ_bilingual + (1 − a)·θ_source`` for ``a`` on a grid (``a = 0`` is the
source model, ``a = 1`` the bilingual one: a mixed-training model, trained on the source
data and target shots), each evaluated on the source dev set and every target language's
dev set. Wu et al. find the source score flat along the line while the target score
changes smoothly: the source data alone does not pin down a good target solution.

2-D, Wu et al.'s plane, for one target language:
``θ(a1, a2) = θ_0 + a1·(θ_source − θ_0) + a2·(θ_target − θ_0)`` over a square grid.
``(0, 0)`` is ``θ_0``, the pretrained start: the base model with the seed's initial task
head, built exactly as ``Runner.pretrained_model(seed)`` builds it
(:meth:`checkpoints.ModelSetup.pretrained`); ``(1, 0)`` is the source model (trained on
the source alone) and ``(0, 1)`` the target model, trained on the target alone from the
same start (the analysis methods ``target-only``: its K shots, or ``target-only-full``:
its train split). The bilingual model (source + target supervision, e.g. ``naive-single``,
the one-step method with ``--language-set single``) does not span the plane: it is
*located* in it, by least squares, ``(c1, c2) = argmin ‖θ_bi − θ_0 − c1·δ_source −
c2·δ_target‖``, with its distance from the plane (the residual's norm, also relative to
``‖θ_bi − θ_0‖``), and marked on the contour plots of the source and target dev scores.
(This replaces an earlier plane with the bilingual model at the origin and the source and
target models at the other corners, which is not Wu et al.'s: kept no option for it.)

A plane whose axes are nearly collinear, ``|cos(δ_source, δ_target)| > 0.95``, is refused
(:func:`check_axes`): an ord-FS model, the source model plus a few small steps, would
span nothing. The cosine, and the geometry, are computed in float64 over every floating
tensor that differs between the models, flattened (:func:`plane_geometry`), and written
to the JSON output.

Every floating-point tensor of the models' state dicts is interpolated (frozen ones
are equal in all models and stay so); integer buffers must be equal. Each point is
scored with the task's metrics and with the mean loss (the model's loss per batch,
weighted by the number of features in the batch). The dev sets are the run's selection
sets (``task.source_dev`` / ``task.target_dev``) without any example the run used as a
shot, capped to a fixed sample of ``max_eval_examples``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..results import atomic_write_json, atomic_write_text
from ..shots import cap
from .checkpoints import ModelSetup
from .common import csv_text, manifest_uids, pyplot, save_figure
from .families import order_languages

logger = logging.getLogger(__name__)


def differing_tensors(states: list[dict[str, torch.Tensor]]) -> list[str]:
    """The names of the floating tensors that differ between any of ``states`` (in the first's
    order); an error for any other difference (another set of tensors, a differing integer
    tensor, another shape). :func:`combine` and :func:`plane_geometry` both rest on it."""
    names = list(states[0])
    for state in states[1:]:
        if set(state) != set(names):
            differ = sorted(set(state) ^ set(names))
            raise ValueError(f"the checkpoints have different tensors: {', '.join(differ[:5])}")
    out = []
    for name in names:
        first = states[0][name]
        if all(state[name] is first or torch.equal(state[name], first) for state in states[1:]):
            continue
        if not first.is_floating_point():
            raise ValueError(f"{name}: a non-floating tensor differs between the checkpoints")
        for state in states[1:]:
            if state[name].shape != first.shape:
                raise ValueError(f"{name}: shapes differ between checkpoints ({tuple(first.shape)} vs "
                                 f"{tuple(state[name].shape)})")
        out.append(name)
    return out


def combine(states: list[tuple[float, dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """``sum(c_i · state_i)`` for floating tensors; other tensors must be equal and are copied.

    With one coefficient 1 and the others 0 the result equals that state exactly.
    """
    if not states:
        raise ValueError("nothing to combine")
    varying = set(differing_tensors([state for _, state in states]))
    out = {}
    for name, first in states[0][1].items():
        if name not in varying:
            out[name] = first  # equal in every checkpoint (e.g. a frozen embedding): kept exactly
            continue
        total = torch.zeros_like(first)
        for coefficient, state in states:
            total += coefficient * state[name]
        out[name] = total
    return out


def line_state(bilingual: dict, source: dict, a: float) -> dict:
    """``a·θ_bilingual + (1 − a)·θ_source``."""
    return combine([(a, bilingual), (1.0 - a, source)])


def plane_state(origin: dict, source: dict, target: dict, a1: float, a2: float) -> dict:
    """``θ_0 + a1·(θ_source − θ_0) + a2·(θ_target − θ_0)``: exactly ``origin``, ``source`` and
    ``target`` at (0, 0), (1, 0) and (0, 1)."""
    return combine([(1.0 - a1 - a2, origin), (a1, source), (a2, target)])


#: the largest |cosine| between the plane's two axes that :func:`check_axes` accepts
MAX_AXIS_COSINE = 0.95


def plane_geometry(origin: dict, source: dict, target: dict, bilingual: dict | None = None) -> dict:
    """The plane's axes ``u = θ_source − θ_0``, ``v = θ_target − θ_0`` (every floating tensor that
    differs, flattened, in float64): their norms and cosine; with ``bilingual``, its least-squares
    coordinates ``(c1, c2)`` in the plane (``w = θ_bi − θ_0 ≈ c1·u + c2·v``), the residual's
    norm ``distance``, and ``relative_distance = distance / ‖w‖``."""
    states = [origin, source, target] + ([bilingual] if bilingual is not None else [])
    names = differing_tensors(states)

    def delta(state, name):
        return (state[name].double() - origin[name].double()).flatten()

    uu = vv = uv = uw = vw = ww = 0.0
    for name in names:
        u, v = delta(source, name), delta(target, name)
        uu, vv, uv = uu + float(u @ u), vv + float(v @ v), uv + float(u @ v)
        if bilingual is not None:
            w = delta(bilingual, name)
            uw, vw, ww = uw + float(u @ w), vw + float(v @ w), ww + float(w @ w)
    norm_u, norm_v = uu ** 0.5, vv ** 0.5
    cosine = uv / (norm_u * norm_v) if norm_u > 0 and norm_v > 0 else float("nan")
    out = {"axes_cosine": cosine, "source_norm": norm_u, "target_norm": norm_v, "n_tensors": len(names)}
    if bilingual is not None:
        det = uu * vv - uv * uv  # > 0 unless the axes are dependent (check_axes refuses those)
        c1, c2 = ((vv * uw - uv * vw) / det, (uu * vw - uv * uw) / det) if det > 0 else (float("nan"),) * 2
        residual = 0.0  # a second pass, not ww - c·b, which would cancel for a point near the plane
        for name in names if det > 0 else ():
            r = delta(bilingual, name) - c1 * delta(source, name) - c2 * delta(target, name)
            residual += float(r @ r)
        distance = residual ** 0.5 if det > 0 else float("nan")
        out["bilingual"] = {"coordinates": [c1, c2], "distance": distance, "norm": ww ** 0.5,
                            "relative_distance": distance / ww ** 0.5 if ww > 0 else 0.0}
    return out


def check_axes(geometry: dict, source, target, max_cosine: float = MAX_AXIS_COSINE) -> None:
    """Refuse a plane with a zero axis or with ``|cos(δ_source, δ_target)| > max_cosine``,
    naming both models."""
    for what, path, norm in (("source", source, geometry["source_norm"]),
                             ("target", target, geometry["target_norm"])):
        if not norm > 0:
            raise ValueError(f"the {what} model {path} equals the plane's origin (the pretrained start): "
                             f"no axis to span")
    cosine = geometry["axes_cosine"]
    if abs(cosine) > max_cosine:
        raise ValueError(
            f"the plane's axes are nearly collinear: cos(source - theta_0, target - theta_0) = {cosine:.4f} "
            f"(|cos| > {max_cosine}) for the source model {source} and the target model {target}; a target "
            f"model that starts from the source model (ord-FS) spans no second direction: use one trained on "
            f"the target alone from the pretrained start (--target-method target-only or target-only-full)")


@dataclass
class EvalSet:
    role: str  # "source" or "target"
    language: str
    examples: list
    encoded: object


def eval_sets(setup: ModelSetup, languages, *, max_examples: int | None) -> list[EvalSet]:
    """The source dev set and each target's dev set (without the run's shots), capped."""
    task = setup.task
    out = []
    source = task.source_dev(setup.source, setup.data_dir)
    out.append(("source", setup.source, source))
    for lang in languages:
        exclude = manifest_uids(setup.manifest_path, task.name, lang)
        out.append(("target", lang, task.target_dev(lang, setup.data_dir, exclude=exclude)))
    sets = []
    for role, lang, examples in out:
        examples = cap(examples, max_examples)
        sets.append(EvalSet(role, lang, examples, task.encode(examples, setup.tokenizer, setup.max_seq_length)))
    return sets


def mean_loss(model: torch.nn.Module, encoded, *, batch_size: int, device) -> float:
    """The model's loss averaged over batches, weighted by the number of features per batch."""
    from ..tasks.encoded import predict_batches

    total, count = 0.0, 0
    for indices, outputs in predict_batches(model, encoded, batch_size=batch_size, device=device, progress=False):
        total += float(outputs.loss) * len(indices)
        count += len(indices)
    return total / count


def evaluate_point(model, setup: ModelSetup, sets: list[EvalSet], *, batch_size: int,
                   with_loss: bool = True) -> list[dict]:
    """Scores (every task metric) and, with ``with_loss``, the mean loss of ``model`` on each set."""
    rows = []
    for s in sets:
        scores = setup.task.evaluate(model, s.examples, setup.tokenizer, max_seq_length=setup.max_seq_length,
                                     batch_size=batch_size, device=setup.device)
        row = {"set": s.role, "language": s.language, **{m: float(scores[m]) for m in setup.task.metrics}}
        if with_loss:
            row["loss"] = mean_loss(model, s.encoded, batch_size=batch_size, device=setup.device)
        rows.append(row)
    return rows


def _state(model) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def grid(lo: float, hi: float, n: int) -> list[float]:
    if n < 2:
        raise ValueError(f"a grid needs at least 2 points, got {n}")
    if not hi > lo:
        raise ValueError(f"the grid's range must be increasing, got {lo}..{hi}")
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


# ----------------------------------------------------------------------------- 1-D


def run_line(setup: ModelSetup, *, bilingual: Path, source: Path, out_dir: Path, stem: str, alphas: list[float],
             languages=None, max_examples: int | None = 200, batch_size: int = 64,
             label: str = "bilingual", with_loss: bool = True) -> dict[str, Path]:
    """Evaluate ``θ(a)`` for every ``a`` in ``alphas``; write ``<stem>.{csv,json,png}``
    (``label`` names the bilingual model in the figure; ``with_loss=False`` skips the
    second pass over each set that the loss takes)."""
    langs = order_languages(languages or setup.targets)
    sets = eval_sets(setup, langs, max_examples=max_examples)
    work = setup.load(bilingual)
    theta_bi, theta_src = _state(work), _state(setup.load(source))
    points = []
    for a in alphas:
        work.load_state_dict(line_state(theta_bi, theta_src, a))
        for row in evaluate_point(work, setup, sets, batch_size=batch_size, with_loss=with_loss):
            points.append({"a": a, **row})
        logger.info("a = %.3f done", a)
    metric = setup.task.metrics[0]
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png"}
    header = ["a", "set", "language", *setup.task.metrics, *(["loss"] if with_loss else [])]
    atomic_write_text(paths["csv"], csv_text(header, [[p[c] for c in header] for p in points]))
    atomic_write_json(paths["json"], {
        "task": setup.task.name, "formula": "theta(a) = a * bilingual + (1 - a) * source",
        "bilingual": str(bilingual), "source": str(source), "source_language": setup.source, "languages": langs,
        "n_examples": {f"{s.role}:{s.language}": len(s.examples) for s in sets}, "points": points})
    _plot_line(points, [metric, *(["loss"] if with_loss else [])], paths["png"],
               f"{setup.task.name}: a * {label} model + (1 - a) * source model")
    return paths


def _plot_line(points: list[dict], keys: list[str], path: Path, title: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    axes = axes[0]
    series = {}
    for p in points:
        series.setdefault((p["set"], p["language"]), []).append(p)
    colours = plt.get_cmap("tab10")
    for i, ((role, lang), rows) in enumerate(series.items()):
        rows.sort(key=lambda p: p["a"])
        style = dict(color="black", linestyle="--") if role == "source" else dict(color=colours(i % 10))
        label = f"{lang} ({role} dev)"
        for ax, key in zip(axes, keys):
            ax.plot([p["a"] for p in rows], [p[key] for p in rows], marker="o", markersize=3, label=label, **style)
    for ax, key in zip(axes, keys):
        ax.set_xlabel("a   (0: source model, 1: bilingual model)")
        ax.set_ylabel(f"dev {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- 2-D


def run_plane(setup: ModelSetup, *, source: Path, target: Path, language: str, out_dir: Path, stem: str,
              coords: list[float], seed: int, bilingual: Path | None = None, max_examples: int | None = 200,
              batch_size: int = 64, label: str = "bilingual", with_loss: bool = True,
              max_axis_cosine: float = MAX_AXIS_COSINE) -> dict[str, Path]:
    """Evaluate ``θ_0 + a1·δ_source + a2·δ_target`` on the grid ``coords x coords`` (``θ_0``: the
    pretrained start of ``seed``), locate ``bilingual`` in the plane; write ``<stem>.{csv,json,png}``.
    Refuses nearly collinear axes (:func:`check_axes`) before evaluating anything."""
    work = setup.pretrained(seed)
    theta_0, theta_src, theta_tgt = _state(work), _state(setup.load(source)), _state(setup.load(target))
    theta_bi = _state(setup.load(bilingual)) if bilingual is not None else None
    geometry = plane_geometry(theta_0, theta_src, theta_tgt, theta_bi)
    del theta_bi
    check_axes(geometry, source, target, max_axis_cosine)
    logger.info("plane axes: cos %.4f; bilingual at %s", geometry["axes_cosine"], geometry.get("bilingual"))
    sets = eval_sets(setup, [language], max_examples=max_examples)
    points = []
    for a1 in coords:
        for a2 in coords:
            work.load_state_dict(plane_state(theta_0, theta_src, theta_tgt, a1, a2))
            for row in evaluate_point(work, setup, sets, batch_size=batch_size, with_loss=with_loss):
                points.append({"a1": a1, "a2": a2, **row})
        logger.info("a1 = %.3f done", a1)
    metric = setup.task.metrics[0]
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png"}
    header = ["a1", "a2", "set", "language", *setup.task.metrics, *(["loss"] if with_loss else [])]
    atomic_write_text(paths["csv"], csv_text(header, [[p[c] for c in header] for p in points]))
    located = geometry.get("bilingual")
    atomic_write_json(paths["json"], {
        "task": setup.task.name,
        "formula": "theta(a1, a2) = theta_0 + a1 * (source - theta_0) + a2 * (target - theta_0)",
        "origin": f"pretrained {setup.base_model} with seed {seed}'s initial task head", "seed": seed,
        "source": str(source), "target": str(target), "target_language": language, "source_language": setup.source,
        "axes_cosine": geometry["axes_cosine"], "max_axis_cosine": max_axis_cosine,
        "axis_norms": {"source": geometry["source_norm"], "target": geometry["target_norm"]},
        "bilingual": None if located is None else {"path": str(bilingual), "label": label, **located},
        "n_examples": {f"{s.role}:{s.language}": len(s.examples) for s in sets}, "points": points})
    title = (f"{setup.task.name}: theta_0 + a1 (source - theta_0) + a2 (target - theta_0), target {language}, "
             f"axes cos {geometry['axes_cosine']:.2f}")
    if located is not None:
        c1, c2 = located["coordinates"]
        title += (f"\n{label} at ({c1:.2f}, {c2:.2f}), {located['relative_distance']:.0%} of its distance from "
                  f"theta_0 off the plane")
    _plot_plane(points, coords, metric, paths["png"], title,
                bilingual=None if located is None else (tuple(located["coordinates"]), label))
    return paths


def _plot_plane(points: list[dict], coords: list[float], metric: str, path: Path, title: str,
                bilingual: tuple[tuple[float, float], str] | None = None) -> Path:
    import numpy as np

    plt = pyplot()
    roles = [("source", "source dev"), ("target", "target dev")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    index = {c: i for i, c in enumerate(coords)}
    for ax, (role, label) in zip(axes, roles):
        z = np.full((len(coords), len(coords)), np.nan)
        for p in points:
            if p["set"] == role:
                z[index[p["a2"]], index[p["a1"]]] = p[metric]
        contour = ax.contourf(coords, coords, z, levels=12, cmap="viridis")
        ax.contour(coords, coords, z, levels=12, colors="white", linewidths=0.4)
        fig.colorbar(contour, ax=ax, label=f"{label} {metric}")
        middle = (coords[0] + coords[-1]) / 2
        marks = [((0, 0), "theta_0", "red"), ((1, 0), "source", "red"), ((0, 1), "target", "red")]
        if bilingual is not None:  # its least-squares projection, where it falls inside the grid
            (x, y), name = bilingual
            if coords[0] <= x <= coords[-1] and coords[0] <= y <= coords[-1]:
                marks.append(((x, y), f"{name} (projected)", "orange"))
        for (x, y), name, colour in marks:
            ax.plot([x], [y], marker="o", color=colour, markersize=5, clip_on=False)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4 if x < middle else -4, 4 if y < middle else -10),
                        ha="left" if x < middle else "right", color=colour, fontsize=8, annotation_clip=False)
        ax.set_xlabel("a1 (towards the source model)")
        ax.set_ylabel("a2 (towards the target model)")
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
