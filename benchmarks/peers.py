"""torchjd as a peer: the same surgery through another library's public API.

torchjd (PyPI ``torchjd``, tested with 0.18.0; ``pip install '.[peers]'``) does
Jacobian descent: ``torchjd.autojac.backward([loss_1, ..., loss_m])`` stores in
each parameter's ``.jac`` field its Jacobian (``m`` rows, one per loss, shaped
``(m, *p.shape)``), and ``torchjd.autojac.jac_to_grad(params, aggregator)``
turns those Jacobians into ``.grad`` fields.  A ``GramianWeightedAggregator``
computes the Gramian ``G = J J^T`` of the whole Jacobian, asks its
``Weighting`` for one weight per row and writes ``weights @ J``.
(Verified in torchjd 0.18.0's own code: ``torchjd/autojac/_backward.py``
``backward``, ``torchjd/autojac/_jac_to_grad.py`` ``jac_to_grad``,
``_jacobian_based``/``_gramian_based``, ``torchjd/aggregation/_aggregator_bases.py``
``GramianWeightedAggregator``, ``torchjd/aggregation/_weighting_bases.py``
``Weighting``, ``torchjd/aggregation/_pcgrad.py`` ``PCGrad``.)

With the two losses (train, oracle), rows 0 and 1 are the train gradient t
and the oracle gradient o, G01 = t.o and G11 = |o|^2, and the one-sided
surgery of ``sgs_ext.surgery_`` is the weighting

    weights = [1, max(0, -G01) / max(G11, eps)]     (0 when G11 == 0, or any entry is not finite)

which is :class:`OneSidedSurgeryWeighting` (``sgs_ext.reference.projection_coefficient``
with its sign flipped).  torchjd's ``PCGrad`` is the symmetric surgery of Yu
et al.: each row projected off every row it conflicts with, then summed (for
two rows: t - (G01/G11) o + o - (G01/G00) t when G01 < 0, else t + o); it is a
different update, timed here for its cost only.

What is timed (``python benchmarks/peers.py --sizes 10M,100M,xlmr-base``):
one step of a model whose two losses are linear in its parameters,
``loss_train = sum_i p_i . t_i`` and ``loss_oracle = sum_i p_i . o_i``, with
the parameter shapes of ``shapes.py`` and (t, o) from ``gradients.make_pair``
(conflicting, so every surgery projects): the gradients are exactly t and o,
and the backward passes cost what they cost for any model whose last op
is that cheap.  Per variant, in a fresh process, each round (after an
untimed forward) times

- ``backward``: ``fused``: ``torch.autograd.grad(loss_oracle, params)`` then
  ``loss_train.backward()`` (two plain backward passes, two gradient lists);
  ``torchjd_*``: ``autojac.backward([loss_train, loss_oracle])`` (one
  vmapped backward filling ``.jac``: the 2-row Jacobian of every parameter);
- ``aggregate``: ``fused``: ``sgs_ext.surgery_(grads, oracle)``;
  ``torchjd_surgery``: ``jac_to_grad(params, GramianWeightedAggregator(OneSidedSurgeryWeighting()))``
  (concatenates the Jacobians into one 2 x n matrix: its default);
  ``torchjd_surgery_gramian``: the same with ``optimize_gramian_computation=True``
  (sums per-parameter Gramians, no concatenation); ``torchjd_pcgrad``:
  ``jac_to_grad(params, PCGrad())``;

and the peak extra memory (resident-set high-water mark, as ``memory.py``
measures it) of the aggregation alone (beyond what ``backward`` left: the two
gradient lists or the Jacobians) and of the whole step (beyond the parameters and
the loss data, before the forward).  Times are the fastest and the median
round; memory is the median over rounds.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: see conftest.py

import torch  # noqa: E402

import sgs_ext  # noqa: E402
from benchmarks.gradients import make_pair  # noqa: E402
from benchmarks.memory import WARMUP_SHAPES, _malloc_trim, _reset_peak_rss, _status_kib  # noqa: E402
from benchmarks.shapes import model_shapes, num_params, parse_sizes  # noqa: E402
from benchmarks.timing import available_bytes  # noqa: E402

TESTED_TORCHJD = "0.18.0"

try:
    import torchjd
    from torchjd.aggregation import GramianWeightedAggregator, PCGrad, Weighting
    from torchjd.autojac import backward as jd_backward
    from torchjd.autojac import jac_to_grad
except ImportError as exc:  # torchjd is an optional peer
    torchjd = None
    TORCHJD_MISSING = (f"torchjd is not installed ({exc}); install it with pip install '.[peers]' "
                       f"(torchjd=={TESTED_TORCHJD})")
else:
    TORCHJD_MISSING = None


def torchjd_version() -> Optional[str]:
    return None if torchjd is None else getattr(torchjd, "__version__", None) or _dist_version()


def _dist_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("torchjd")
    except Exception:  # noqa: BLE001
        return None


def require_torchjd() -> None:
    if torchjd is None:
        raise ImportError(TORCHJD_MISSING)


if torchjd is not None:

    class OneSidedSurgeryWeighting(Weighting):
        """Weights [1, max(0, -G01) / max(G11, eps)] of a 2x2 Gramian of (train, oracle): the
        one-sided surgery ``train - c * oracle`` of ``sgs_ext.surgery_`` (c = min(G01, 0) /
        max(G11, eps), 0 when the oracle is all zero (G11 == 0, so G01 == 0) or a statistic is
        not finite, as ``sgs_ext.reference.projection_coefficient``).  Computed in the
        Gramian's dtype, on its device, without a host synchronisation."""

        def __init__(self, eps: float = 1e-12) -> None:
            super().__init__()
            if not (eps > 0 and math.isfinite(eps)):
                raise ValueError(f"eps must be a positive finite number, got {eps}")
            self.eps = eps

        def forward(self, gramian: torch.Tensor, /) -> torch.Tensor:
            if gramian.shape != (2, 2):
                raise ValueError(f"the one-sided surgery needs exactly 2 rows (train, oracle); "
                                 f"got a Gramian of shape {tuple(gramian.shape)}")
            dot, oracle_sq, train_sq = gramian[0, 1], gramian[1, 1], gramian[0, 0]
            w = (-dot).clamp_min(0) / oracle_sq.clamp_min(self.eps)
            ok = torch.isfinite(dot) & torch.isfinite(oracle_sq) & torch.isfinite(train_sq) & torch.isfinite(w)
            w = torch.where(ok & (dot < 0), w, torch.zeros_like(w))
            return torch.stack([torch.ones_like(w), w])

    def one_sided_surgery(eps: float = 1e-12) -> "GramianWeightedAggregator":
        """The aggregator of the one-sided surgery, to pass to ``jac_to_grad``."""
        return GramianWeightedAggregator(OneSidedSurgeryWeighting(eps))


# ---------------------------------------------------------------------------
# The benchmark model: two losses linear in the parameters


class LinearTwoLossModel:
    """Parameters shaped like ``shapes``, and data (t, o) such that d loss_train / dp = t and
    d loss_oracle / dp = o exactly (``torch.dot`` per tensor; its backward is grad_out * data)."""

    def __init__(self, shapes, seed: int = 0, device: str = "cpu"):
        self.pair = make_pair(shapes, seed=seed, device=device)
        self.params = [torch.empty(tuple(s), device=device).fill_(0.01).requires_grad_() for _, s in shapes]

    def losses(self):
        def loss(data):
            return torch.stack([torch.dot(p.view(-1), d.reshape(-1)) for p, d in zip(self.params, data)]).sum()

        return loss(self.pair.train), loss(self.pair.oracle)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
            if hasattr(p, "jac"):
                del p.jac


def _fused_step(model: LinearTwoLossModel):
    loss_train, loss_oracle = model.losses()

    def backward():
        oracle = list(torch.autograd.grad(loss_oracle, model.params))
        loss_train.backward()
        return oracle

    def aggregate(oracle):
        sgs_ext.surgery_([p.grad for p in model.params], oracle)

    return backward, aggregate


def _torchjd_step(model: LinearTwoLossModel, make_aggregator, optimize_gramian: bool = False):
    require_torchjd()
    loss_train, loss_oracle = model.losses()
    aggregator = make_aggregator()

    def backward():
        jd_backward([loss_train, loss_oracle], inputs=model.params)

    def aggregate(_):
        if optimize_gramian:
            jac_to_grad(model.params, aggregator, optimize_gramian_computation=True)
        else:
            jac_to_grad(model.params, aggregator)

    return backward, aggregate


def _variants():
    v = {"fused": _fused_step}
    if torchjd is not None:
        v["torchjd_surgery"] = lambda m: _torchjd_step(m, one_sided_surgery)
        v["torchjd_surgery_gramian"] = lambda m: _torchjd_step(m, one_sided_surgery, optimize_gramian=True)
        v["torchjd_pcgrad"] = lambda m: _torchjd_step(m, PCGrad)
    return v


VARIANTS = ["fused", "torchjd_surgery", "torchjd_surgery_gramian", "torchjd_pcgrad"]

# Resident bytes a measuring process needs at its peak, in float32 copies of one gradient list:
# parameters + the loss data (t, o) = 3, plus the step's peak extra as measured at 10M-278M
# (fused: the two gradient lists, 2.0; torchjd: 3.6-5.4 for the Jacobians, their concatenation
# or per-parameter products, and the aggregated gradient), rounded up.  Used only to skip what
# cannot fit; the real peak is measured.
EXPECTED_COPIES = {"fused": 3 + 2, "torchjd_surgery": 3 + 6, "torchjd_surgery_gramian": 3 + 6, "torchjd_pcgrad": 3 + 6}


def measure(variant: str, size: str, rounds: int = 3, threads: int = 2) -> dict:
    """Time and peak extra memory of ``rounds`` steps of ``variant`` (run in a fresh process)."""
    variants = _variants()
    if variant not in variants:
        if variant in VARIANTS:
            require_torchjd()
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    torch.set_num_threads(threads)
    step = variants[variant]
    warm = LinearTwoLossModel(WARMUP_SHAPES)
    backward, aggregate = step(warm)
    aggregate(backward())
    del warm, backward, aggregate
    _malloc_trim()

    shapes = model_shapes(size)
    model = LinearTwoLossModel(shapes)
    rows: List[Dict[str, float]] = []
    for _ in range(rounds):
        model.zero_grad()
        _malloc_trim()
        backward, aggregate = step(model)  # the forward, untimed
        rss0 = _status_kib("VmRSS")
        _reset_peak_rss()
        t0 = time.perf_counter()
        out = backward()
        t1 = time.perf_counter()
        hwm_backward = _status_kib("VmHWM")
        rss1 = _status_kib("VmRSS")
        _reset_peak_rss()
        t2 = time.perf_counter()
        aggregate(out)
        t3 = time.perf_counter()
        hwm_aggregate = _status_kib("VmHWM")
        del out, backward, aggregate
        rows.append({
            "backward_s": t1 - t0,
            "aggregate_s": t3 - t2,
            "step_s": (t1 - t0) + (t3 - t2),
            "aggregate_peak_extra_bytes": max(hwm_aggregate - rss1, 0) * 1024,
            "step_peak_extra_bytes": max(hwm_backward - rss0, hwm_aggregate - rss0, 0) * 1024,
        })
    grads = [p.grad for p in model.params]
    grad_norm = float(torch.stack([g.double().norm() for g in grads]).norm())
    result = {"variant": variant, "size": size, "numel": num_params(shapes), "rounds": rounds, "threads": threads,
              "grad_norm": grad_norm, "torchjd": torchjd_version()}
    for key in ("backward_s", "aggregate_s", "step_s"):
        values = [r[key] for r in rows]
        result[key.replace("_s", "_min_s")] = min(values)
        result[key.replace("_s", "_median_s")] = statistics.median(values)
    for key in ("aggregate_peak_extra_bytes", "step_peak_extra_bytes"):
        result[key] = int(statistics.median(r[key] for r in rows))
    return result


# ---------------------------------------------------------------------------
# All sizes and variants, one fresh process each


def _fmt_bytes(b: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.2f} {unit}" if unit == "GiB" else f"{b / scale:.1f} {unit}"
    return f"{int(b)} B"


def _fmt_mem(b: float, numel: int) -> str:
    """Bytes, and in copies of one float32 gradient list."""
    return f"{_fmt_bytes(b)} ({b / (4 * numel):.2f} lists)"


def run_all(sizes, rounds: int = 3, threads: int = 2, variants=None) -> List[dict]:
    """Every (size, variant) in a fresh process; skips what does not fit, with a message."""
    if torchjd is None:
        print(f"peers: skipped: {TORCHJD_MISSING}", flush=True)
        return []
    results = []
    for size in sizes:
        numel = num_params(model_shapes(size))
        for variant in variants or VARIANTS:
            need = EXPECTED_COPIES[variant] * numel * 4
            have = available_bytes("cpu")
            if need * 1.1 > have:
                print(f"peers: skip {variant} {size}: needs ~{need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available",
                      flush=True)
                results.append({"variant": variant, "size": size, "numel": numel, "skipped":
                                f"needs ~{need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available"})
                continue
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", "--size", size, "--variant", variant,
                   "--rounds", str(rounds), "--threads", str(threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"peers: {variant} {size} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", flush=True)
                results.append({"variant": variant, "size": size, "numel": numel,
                                "skipped": f"failed with exit status {proc.returncode}"})
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"peers: {variant:24s} {size:10s} step {r['step_min_s'] * 1e3:9.1f} ms (aggregate "
                  f"{r['aggregate_min_s'] * 1e3:8.1f} ms)  peak extra: step {_fmt_bytes(r['step_peak_extra_bytes'])}, "
                  f"aggregate {_fmt_bytes(r['aggregate_peak_extra_bytes'])}", flush=True)
            results.append(r)
    return results


def markdown(results: List[dict], machine: Optional[dict] = None) -> str:
    lines = ["# torchjd beside the fused surgery", ""]
    if machine:
        lines += [f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
                  f"{machine.get('threads', '?')} threads; torch {torch.__version__}; torchjd {torchjd_version()}",
                  f"- load average before {machine.get('load_before', '?')}, after {machine.get('load_after', '?')}", ""]
    lines += ["One step of a model with two losses linear in its parameters (gradients exactly the benchmark's "
              "train/oracle lists). backward: fused = two plain backward passes, torchjd = one "
              "`autojac.backward` of both losses (2-row Jacobians in `.jac`). aggregate: fused = "
              "`sgs_ext.surgery_`, torchjd = `jac_to_grad`. Peak extra memory: resident-set high-water mark "
              "above the level before (aggregate: after backward; step: before backward), also in copies of one "
              "float32 gradient list (4 B/param). Ratios are torchjd / fused.",
              "",
              "| size | params | variant | backward min ms | aggregate min ms | aggregate median ms | step min ms | "
              "aggregate peak extra | step peak extra | aggregate time vs fused | step time vs fused | "
              "step memory vs fused | rounds |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fused = {r["size"]: r for r in results if r["variant"] == "fused" and "skipped" not in r}
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['size']} | {r['numel'] / 1e6:.1f}M | {r['variant']} | skipped: {r['skipped']} "
                         "| | | | | | | | | |")
            continue
        f = fused.get(r["size"])

        def ratio(key, fmt="{:.1f}×"):
            if f is None or r["variant"] == "fused" or not f[key]:
                return ""
            return fmt.format(r[key] / f[key])

        lines.append(
            f"| {r['size']} | {r['numel'] / 1e6:.1f}M | {r['variant']} | {r['backward_min_s'] * 1e3:.1f} | "
            f"{r['aggregate_min_s'] * 1e3:.1f} | {r['aggregate_median_s'] * 1e3:.1f} | {r['step_min_s'] * 1e3:.1f} | "
            f"{_fmt_mem(r['aggregate_peak_extra_bytes'], r['numel'])} | {_fmt_mem(r['step_peak_extra_bytes'], r['numel'])} | "
            f"{ratio('aggregate_min_s')} | {ratio('step_min_s')} | {ratio('step_peak_extra_bytes')} | {r['rounds']} |")
    checks = []
    for r in results:
        f = fused.get(r["size"])
        if r["variant"] in ("torchjd_surgery", "torchjd_surgery_gramian") and f and "grad_norm" in r:
            rel = abs(r["grad_norm"] - f["grad_norm"]) / f["grad_norm"]
            checks.append(f"{r['size']} {r['variant']}: |grad| relative difference to fused {rel:.1e}")
    if checks:
        lines += ["", "Same update (norm of the resulting gradient against the fused one's): " + "; ".join(checks) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10M,100M,xlmr-base", help="comma-separated sizes (default 10M,100M,xlmr-base)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated (default {','.join(VARIANTS)})")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU intra-op threads (default 2)")
    parser.add_argument("--out", type=Path, help="write peers.json and peers.md into this folder")
    parser.add_argument("--one", action="store_true", help="(internal) measure one --size/--variant, print JSON")
    parser.add_argument("--size", help="with --one")
    parser.add_argument("--variant", help="with --one")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.variant, args.size, args.rounds, args.threads)))
        return
    machine = {"cpu": _cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
               "load_before": round(os.getloadavg()[0], 2)}
    results = run_all(parse_sizes(args.sizes), args.rounds, args.threads,
                      [v.strip() for v in args.variants.split(",") if v.strip()])
    machine["load_after"] = round(os.getloadavg()[0], 2)
    if not results:
        return
    text = markdown(results, machine)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "peers.json").write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
        (args.out / "peers.md").write_text(text)
        print(f"wrote {args.out / 'peers.json'} and {args.out / 'peers.md'}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "?"


if __name__ == "__main__":
    main()
