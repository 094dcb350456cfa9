"""Turn pytest-benchmark JSON (+ memory measurements) into results.json, results.md and a plot.

Rates are computed from the fastest round of each case (on a shared machine
the minimum is what the code can do; the median is shown beside it):

    GB/s                 = minimum traffic of the op / fastest round
    fraction of bandwidth = GB/s / the best STREAM-like probe rate of that size
    speed-up             = fastest round of the other variant / fastest round of this one

"dot+axpy" (the bandwidth a surgery is measured against, the paired case the
target is judged on, the two-pass ceiling) is defined, and its choice argued,
in one place: benchmarks/README.md, "Which bandwidth a surgery is measured
against" (README_METHOD_ANCHOR).  The report links there.

Re-make the report from saved raw data:

    python benchmarks/report.py benchmarks/results/raw/*.json --memory benchmarks/results/raw/memory.json
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional

# Targets of the CPU path (2 threads) at 100M parameters and above.
TARGET_MIN_NUMEL = 100_000_000
TARGET_VS_NAIVE = 10.0
TARGET_VS_BEST_PYTORCH = 1.3
TARGET_FRACTION_OF_BANDWIDTH = 0.85
# What the bandwidth target is taken of; README_METHOD_ANCHOR's section says why.
TARGET_BANDWIDTH = "dot+axpy probes"
TARGET_THREADS = 2

PURE_PYTORCH = {"naive", "loop", "foreach"}
SIZE_ORDER = ["1M", "10M", "100M", "xlmr-base", "xlmr-large"]

README = Path(__file__).resolve().parent / "README.md"
README_METHOD_ANCHOR = "which-bandwidth-a-surgery-is-measured-against"  # "### Which bandwidth a surgery is measured against"


# ---------------------------------------------------------------------------
# Reading


def load_cases(paths: Iterable[Path]) -> List[dict]:
    """One flat dict per benchmark case: its extra_info plus its timing statistics (seconds)."""
    cases = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        if "benchmarks" not in data:
            raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' key)")
        for i, bench in enumerate(data["benchmarks"]):
            info = bench.get("extra_info") or {}
            if "kind" not in info:
                raise ValueError(f"{path}: benchmark {i} ({bench.get('name')}) has no extra_info['kind']; not from benchmarks/")
            stats = bench["stats"]
            cases.append({
                **info,
                "name": bench.get("name"),
                "min_s": stats["min"],
                "median_s": stats["median"],
                "mean_s": stats["mean"],
                "stddev_s": stats["stddev"],
                "rounds": stats["rounds"],
            })
    return cases


def _memory_key(op, variant, size, num_sets):
    return (op, variant, size, int(num_sets or 2))


# ---------------------------------------------------------------------------
# Summarising: one function per part of the summary, composed by summarize()


def _size_rank(size: str):
    return (SIZE_ORDER.index(size) if size in SIZE_ORDER else len(SIZE_ORDER), size)


def _quartiles(values: List[float]) -> List[float]:
    """First and third quartiles.  ``inclusive`` treats the rounds as the whole population (the
    fastest and slowest round are the 0th and 100th percentiles, as numpy's default)."""
    if len(values) == 1:  # statistics.quantiles needs two points before Python 3.13
        return [values[0], values[0]]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [q1, q3]


def _dot_axpy_gbps(probe_bytes: dict, probe_seconds: dict) -> Optional[float]:
    """dot+axpy (see README_METHOD_ANCHOR); None without both probes."""
    if "dot" not in probe_bytes or "axpy" not in probe_bytes:
        return None
    return (probe_bytes["dot"] + probe_bytes["axpy"]) / (probe_seconds["dot"] + probe_seconds["axpy"]) / 1e9


def summarize_bandwidth(cases: List[dict]) -> Dict[tuple, dict]:
    """The STREAM-like probes per (group, size): each probe's rate, the best one, dot+axpy."""
    bandwidth: Dict[tuple, dict] = {}
    probe_bytes: Dict[tuple, dict] = {}
    probe_seconds: Dict[tuple, dict] = {}
    for c in cases:
        if c["kind"] == "bandwidth":
            key = (c["group"], c["size"])
            row = bandwidth.setdefault(key, {"group": c["group"], "size": c["size"], "numel": c["numel"]})
            row[f"{c['variant']}_gbps"] = c["bytes"] / c["min_s"] / 1e9
            probe_bytes.setdefault(key, {})[c["variant"]] = c["bytes"]
            probe_seconds.setdefault(key, {})[c["variant"]] = c["min_s"]
    for key, row in bandwidth.items():
        row["best_gbps"] = max(v for k, v in row.items() if k.endswith("_gbps"))
        row["best_probe"] = max((k for k in row if k.endswith("_gbps") and k != "best_gbps"), key=lambda k: row[k])[: -len("_gbps")]
        row["surgery_mix_gbps"] = _dot_axpy_gbps(probe_bytes[key], probe_seconds[key])
    return bandwidth


def summarize_paired(cases: List[dict]) -> List[dict]:
    return sorted((_paired_row(c) for c in cases if c["kind"] == "paired"), key=lambda r: _size_rank(r["size"]))


def _paired_row(case: dict) -> dict:
    """The fused surgery against the probes timed in alternating rounds with it: per round, the
    fused rate over the best probe's and over dot+axpy, and dot+axpy over the best probe (the
    two-pass ceiling); each the median over rounds, with quartiles.  Beside them, each one's
    fastest round (which may come from different minutes)."""
    rounds, probe_bytes = case["round_times_s"], case["probe_bytes"]
    if not rounds:
        raise ValueError(f"paired case {case.get('name')}: no rounds recorded")
    has_mix = "dot" in probe_bytes and "axpy" in probe_bytes

    def rates(r):
        return {name: probe_bytes[name] / r[name] / 1e9 for name in probe_bytes}

    of_best, of_mix, ceiling = [], [], []
    for r in rounds:
        fused, best = case["bytes"] / r["fused"] / 1e9, max(rates(r).values())
        of_best.append(fused / best)
        if has_mix:
            mix = _dot_axpy_gbps(probe_bytes, r)
            of_mix.append(fused / mix)
            ceiling.append(mix / best)
    fastest = {name: min(r[name] for r in rounds) for name in [*probe_bytes, "fused"]}
    best_rates = rates(fastest)
    best = max(best_rates, key=best_rates.get)
    row = {k: case.get(k) for k in ("size", "numel", "device", "threads", "bytes")}
    row.update(rounds=len(rounds), min_s=fastest["fused"], median_s=statistics.median(r["fused"] for r in rounds),
               gbps=case["bytes"] / fastest["fused"] / 1e9, probe_gbps=best_rates, best_probe=best,
               bandwidth_gbps=best_rates[best])
    row["fraction_of_fastest"] = row["gbps"] / row["bandwidth_gbps"]
    row["fraction_of_bandwidth"], row["fraction_quartiles"] = statistics.median(of_best), _quartiles(of_best)
    row["surgery_mix_gbps"] = _dot_axpy_gbps(probe_bytes, fastest)
    row["fraction_of_matched_bandwidth"] = statistics.median(of_mix) if has_mix else None
    row["matched_quartiles"] = _quartiles(of_mix) if has_mix else None
    row["two_pass_ceiling"] = statistics.median(ceiling) if has_mix else None
    return row


def summarize_ops(cases: List[dict], bandwidth: Dict[tuple, dict], memory: Optional[List[dict]]) -> List[dict]:
    """Every surgery, dot_norm and gram case: rates, fractions of both bandwidths, speed-up, peak memory."""
    memory_by_key = {_memory_key(m["op"], m["variant"], m["size"], m.get("num_sets")): m for m in memory or []}
    ops = []
    for c in cases:
        if c["kind"] not in ("surgery", "dot_norm", "gram"):
            continue
        row = {k: c.get(k) for k in ("kind", "size", "numel", "variant", "num_sets", "bytes", "dtype", "device", "threads",
                                     "min_s", "median_s", "rounds")}
        row["num_sets"] = c.get("num_sets", 2)
        row["gbps"] = c["bytes"] / c["min_s"] / 1e9
        row["gbps_median"] = c["bytes"] / c["median_s"] / 1e9
        bw = bandwidth.get((c["group"], c["size"]))
        row["bandwidth_gbps"] = bw["best_gbps"] if bw else None
        row["fraction_of_bandwidth"] = row["gbps"] / bw["best_gbps"] if bw else None
        matched = (bw.get("surgery_mix_gbps") if c["kind"] == "surgery" else bw.get("dot_gbps")) if bw else None
        row["matched_bandwidth_gbps"] = matched
        row["fraction_of_matched_bandwidth"] = row["gbps"] / matched if matched else None
        mem = memory_by_key.get(_memory_key(c["kind"], c["variant"], c["size"], row["num_sets"]))
        row["peak_extra_bytes"] = mem["peak_extra_bytes"] if mem else None
        ops.append(row)

    def same_case(a, b):
        return a["kind"] == b["kind"] and a["size"] == b["size"] and a["num_sets"] == b["num_sets"]

    for row in ops:
        naive = next((o for o in ops if same_case(o, row) and o["variant"] == "naive"), None)
        row["speedup_vs_naive"] = naive["min_s"] / row["min_s"] if naive else None
    ops.sort(key=lambda r: (r["kind"], _size_rank(r["size"]), r["num_sets"], r["min_s"]))
    return ops


def summarize_train_step(cases: List[dict]) -> List[dict]:
    """The training steps, fastest first, against the plain step; the surgery call's share of a step
    (timed inside the steps: differences of whole steps are within their noise for a fused surgery)."""
    steps = [c for c in cases if c["kind"] == "train_step"]
    plain = next((s for s in steps if s["variant"] == "plain"), None)
    train_step = []
    for s in sorted(steps, key=lambda s: s["min_s"]):
        row = {k: s.get(k) for k in ("variant", "numel", "model", "batch", "oracle_batch", "seq_len", "min_s", "median_s", "rounds")}
        row["vs_plain"] = s["min_s"] / plain["min_s"] if plain else None
        row["surgery_median_s"] = s.get("surgery_median_s")
        row["surgery_share"] = s["surgery_median_s"] / s["median_s"] if s.get("surgery_median_s") else None
        train_step.append(row)
    return train_step


def summarize_method(memory: Optional[List[dict]]) -> dict:
    see = f"benchmarks/README.md#{README_METHOD_ANCHOR}"
    return {
        "time": "fastest of N rounds (pytest-benchmark pedantic, 1 call per round); median shown beside it",
        "traffic_bytes_per_param_fp32": {"surgery": 20, "dot_norm": 8, "gram": "4 per set"},
        "bandwidth": "best of copy, dot, axpy (STREAM-like, no write-allocate counted) on the same buffers, same run",
        "matched_bandwidth": f"surgery: dot+axpy; dot_norm, gram: the dot probe (see {see})",
        "target_bandwidth": TARGET_BANDWIDTH,
        "paired": f"fused surgery and every probe in alternating rounds, each right after the same restore copy (see {see})",
        "memory": (memory[0]["method"] if memory else "not measured"),
    }


def summarize(cases: List[dict], memory: Optional[List[dict]] = None, machine: Optional[dict] = None) -> dict:
    bandwidth = summarize_bandwidth(cases)
    ops = summarize_ops(cases, bandwidth, memory)
    paired = summarize_paired(cases)
    return {
        "machine": machine or {},
        "bandwidth": sorted(bandwidth.values(), key=lambda r: (r["group"], _size_rank(r["size"]))),
        "ops": ops,
        "paired": paired,
        "train_step": summarize_train_step(cases),
        "targets": evaluate_targets(ops, paired),
        "method": summarize_method(memory),
    }


def evaluate_targets(ops: List[dict], paired: Optional[List[dict]] = None) -> List[dict]:
    """The issue's targets for the fused surgery on the CPU, 2 threads, >= 100M parameters."""
    paired_by_size = {r["size"]: r for r in paired or []}
    targets = []
    for fused in ops:
        if not (fused["kind"] == "surgery" and fused["variant"] == "fused" and fused["numel"] >= TARGET_MIN_NUMEL):
            continue
        if fused["device"] != "cpu" or fused["threads"] != TARGET_THREADS:
            continue
        others = [o for o in ops if o["kind"] == "surgery" and o["size"] == fused["size"] and o["variant"] in PURE_PYTORCH]
        naive = next((o for o in others if o["variant"] == "naive"), None)
        best = min(others, key=lambda o: o["min_s"]) if others else None

        def add(name, value, goal, detail):
            targets.append({"size": fused["size"], "numel": fused["numel"], "target": name, "goal": goal,
                            "value": value, "met": (value is not None and value >= goal), "detail": detail})

        add("fused vs naive torch.cat surgery", naive["min_s"] / fused["min_s"] if naive else None, TARGET_VS_NAIVE,
            "speed-up" if naive else "naive variant not measured")
        add("fused vs best pure-PyTorch surgery", best["min_s"] / fused["min_s"] if best else None, TARGET_VS_BEST_PYTORCH,
            f"speed-up over {best['variant']}" if best else "no pure-PyTorch variant measured")
        add("fused fraction of measured bandwidth", *_bandwidth_target(fused, paired_by_size.get(fused["size"])))
    return targets


def _bandwidth_target(fused: dict, pair: Optional[dict]):
    """(value, goal, detail) of the bandwidth target: of dot+axpy, from the paired case where there is one."""
    if pair and pair["fraction_of_matched_bandwidth"] is not None:
        q1, q3 = pair["matched_quartiles"]
        b1, b3 = pair["fraction_quartiles"]
        value = pair["fraction_of_matched_bandwidth"]
        detail = (f"median over {pair['rounds']} rounds of fused / dot+axpy in the same round, quartiles {q1:.2f}–{q3:.2f}; "
                  f"of the best probe ({pair['best_probe']}): {pair['fraction_of_bandwidth']:.2f} ({b1:.2f}–{b3:.2f}); "
                  f"two-pass ceiling {pair['two_pass_ceiling']:.2f}")
    elif fused["fraction_of_matched_bandwidth"] is not None:
        value = fused["fraction_of_matched_bandwidth"]
        detail = (f"{fused['gbps']:.2f} of dot+axpy's {fused['matched_bandwidth_gbps']:.2f} GB/s, in separate "
                  f"cases; of the best probe: {fused['fraction_of_bandwidth']:.2f}")
    else:
        value, detail = None, "no dot and axpy probes measured"
    return value, TARGET_FRACTION_OF_BANDWIDTH, detail


# ---------------------------------------------------------------------------
# Markdown: one function per section, composed by to_markdown()


def _fmt_time(s):
    return f"{s * 1e3:.1f}" if s >= 0.01 else f"{s * 1e3:.3f}"


def _fmt(v, spec, none="–"):
    return none if v is None else format(v, spec)


def _fmt_bytes(b):
    if b is None:
        return "–"
    if b >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    if b >= 2**20:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**10:.0f} KiB"


def _params(n):
    return f"{n / 1e6:.1f}M"


def _pct(value, quartiles=None):
    if value is None:
        return "–"
    return f"{100 * value:.0f}%" + (f" ({100 * quartiles[0]:.0f}–{100 * quartiles[1]:.0f}%)" if quartiles else "")


def machine_section(m: dict) -> List[str]:
    if not m:
        return []
    return [
        f"- machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('device', 'cpu')}"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f", {m.get('threads', '?')} threads; torch {m.get('torch', '?')}",
        f"- run: `{m.get('command', '?')}` at {m.get('started', '?')}, load average before {m.get('load_before', '?')}, "
        f"after {m.get('load_after', '?')}",
        "",
    ]


def method_section(method_link: str) -> List[str]:
    return ["Rates use each case's fastest round (median beside it); bandwidth is the best of a STREAM-like copy/dot/axpy "
            "probe on the same bytes in the same run. Minimum traffic per float32 parameter: surgery 20 B, dot_norm 8 B, "
            f"gram 4 B per set. \"dot+axpy\", the paired rounds and the two-pass ceiling: see {method_link}.", ""]


def targets_section(targets: List[dict]) -> List[str]:
    lines = ["## Targets (CPU, 2 threads, 100M parameters and above)", ""]
    if not targets:
        return lines + ["Not evaluated: no CPU surgery case at 100M parameters or more on 2 threads in this run.", ""]
    lines += ["| size | target | goal | measured | met |", "|---|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['size']} | {t['target']} | {t['goal']:g}{'' if 'fraction' in t['target'] else '×'} | "
                     f"{_fmt(t['value'], '.2f')} ({t['detail']}) | {'yes' if t['met'] else '**NO**'} |")
    missed = [t for t in targets if not t["met"]]
    return lines + ["", f"**{len(targets) - len(missed)} of {len(targets)} targets met.**" + (
        " Not met: " + "; ".join(f"{t['target']} at {t['size']} ({_fmt(t['value'], '.2f')} < {t['goal']:g})" for t in missed)
        if missed else ""), ""]


def bandwidth_section(rows: List[dict]) -> List[str]:
    if not rows:
        return []
    lines = ["## Memory bandwidth (STREAM-like probe)", "",
             "| bytes of | size | params | copy GB/s | dot GB/s | axpy GB/s | best (bandwidth used) | dot+axpy GB/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['size']} | {_params(r['numel'])} | {_fmt(r.get('copy_gbps'), '.2f')} | "
                     f"{_fmt(r.get('dot_gbps'), '.2f')} | {_fmt(r.get('axpy_gbps'), '.2f')} | {r['best_gbps']:.2f} ({r['best_probe']}) | "
                     f"{_fmt(r.get('surgery_mix_gbps'), '.2f')} |")
    return lines + [""]


def paired_section(rows: List[dict]) -> List[str]:
    if not rows:
        return []
    lines = ["## Fused surgery against the probes, round by round", "",
             "Percentages: median over rounds (quartiles); the bandwidth target is judged on \"% of dot+axpy\". "
             "GB/s columns: each one's fastest round.", "",
             "| size | params | fused min ms | fused GB/s | copy GB/s | dot GB/s | axpy GB/s | % of dot+axpy | "
             "% of best probe | two-pass ceiling | rounds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = r["probe_gbps"]
        lines.append(f"| {r['size']} | {_params(r['numel'])} | {_fmt_time(r['min_s'])} | {r['gbps']:.2f} | "
                     f"{_fmt(g.get('copy'), '.2f')} | {_fmt(g.get('dot'), '.2f')} | {_fmt(g.get('axpy'), '.2f')} | "
                     f"{_pct(r['fraction_of_matched_bandwidth'], r['matched_quartiles'])} | "
                     f"{_pct(r['fraction_of_bandwidth'], r['fraction_quartiles'])} ({r['best_probe']}) | "
                     f"{_pct(r['two_pass_ceiling'])} | {r['rounds']} |")
    return lines + [""]


OP_TITLES = {"surgery": "Surgery (dot_norm + projection, 20 B/param)", "dot_norm": "dot_norm (statistics only, 8 B/param)",
             "gram": "gram (L sets, 4·L B/param)"}
MATCHED_NAME = {"surgery": "dot+axpy", "dot_norm": "dot probe", "gram": "dot probe"}


def op_section(kind: str, ops: List[dict]) -> List[str]:
    """The table of one op (surgery, dot_norm or gram): every variant at every size."""
    rows = [o for o in ops if o["kind"] == kind]
    if not rows:
        return []
    lead = "| size | params | L | variant |" if kind == "gram" else "| size | params | variant |"
    lines = [f"## {OP_TITLES[kind]}", "",
             lead + f" min ms | median ms | GB/s | % of bandwidth | % of {MATCHED_NAME[kind]} | speed-up vs naive | peak extra memory |",
             "|" + "---|" * (lead.count("|") - 1 + 7)]
    for r in rows:
        first = f"| {r['size']} | {_params(r['numel'])} |" + (f" {r['num_sets']} |" if kind == "gram" else "")
        frac = None if r["fraction_of_bandwidth"] is None else 100 * r["fraction_of_bandwidth"]
        mfrac = None if r.get("fraction_of_matched_bandwidth") is None else 100 * r["fraction_of_matched_bandwidth"]
        lines.append(f"{first} {r['variant']} | {_fmt_time(r['min_s'])} | {_fmt_time(r['median_s'])} | {r['gbps']:.2f} | "
                     f"{_fmt(frac, '.0f')}% | {_fmt(mfrac, '.0f')}% | {_fmt(r['speedup_vs_naive'], '.1f')}× | "
                     f"{_fmt_bytes(r['peak_extra_bytes'])} |")
    return lines + [""]


def train_step_section(steps: List[dict]) -> List[str]:
    if not steps:
        return []
    s0 = steps[0]
    lines = ["## Training step", "",
             f"{s0.get('model')}, {_params(s0['numel'])} parameters; batch {s0.get('batch')}×{s0.get('seq_len')} tokens, "
             f"oracle batch {s0.get('oracle_batch')} (K shots). Surgery steps always project. The surgery call is also "
             "timed alone inside the same steps; its share = its median time / the step's median time.", "",
             "| step | min ms | median ms | vs plain step (min) | surgery call, median ms | surgery's share of the step |",
             "|---|---|---|---|---|---|"]
    for s in steps:
        share = None if s["surgery_share"] is None else 100 * s["surgery_share"]
        surgery_ms = None if s.get("surgery_median_s") is None else _fmt_time(s["surgery_median_s"])
        lines.append(f"| {s['variant']} | {_fmt_time(s['min_s'])} | {_fmt_time(s['median_s'])} | "
                     f"{_fmt(s['vs_plain'], '.2f')}× | {surgery_ms or ''} | "
                     f"{_fmt(share, '.1f', none='')}{'%' if share is not None else ''} |")
    return lines + [""]


def memory_note(method: dict) -> List[str]:
    return [f"Peak extra memory: {method['memory']}.", ""] if method.get("memory") else []


def to_markdown(summary: dict, readme: str = "../README.md") -> str:
    """The report; ``readme``: the path to benchmarks/README.md from where the text will live ("" in it)."""
    method_link = (f"[Which bandwidth a surgery is measured against]({readme}#{README_METHOD_ANCHOR})"
                   + (" in benchmarks/README.md" if readme else ""))
    ops = summary.get("ops", [])
    sections = [
        ["# sgs-ext benchmark results", ""],
        machine_section(summary.get("machine", {})),
        method_section(method_link),
        targets_section(summary.get("targets", [])),
        bandwidth_section(summary.get("bandwidth", [])),
        paired_section(summary.get("paired", [])),
        *(op_section(kind, ops) for kind in ("surgery", "dot_norm", "gram")),
        train_step_section(summary.get("train_step", [])),
        memory_note(summary.get("method", {})),
    ]
    return "\n".join(line for section in sections for line in section)


# ---------------------------------------------------------------------------
# Writing (atomically: a temporary file in the same folder, then rename)


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)``, then ``tmp`` moved over ``path``: the harness's ``atomic_path``, so every
    file the project writes is written one way (permissions from the umask, as ``open()``)."""
    from experiments.transfer.results import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def _write_text(path: Path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    _atomic_write(path, write)


def write_json(summary: dict, path: Path) -> None:
    _write_text(path, json.dumps(summary, indent=1, sort_keys=False) + "\n")


def write_markdown(summary: dict, path: Path) -> None:
    readme = Path(os.path.relpath(README, Path(path).resolve().parent)).as_posix()
    _write_text(path, to_markdown(summary, readme))


def write_plot(summary: dict, path: Path) -> bool:
    """Time and GB/s against size, per variant, for surgery and dot_norm. False if nothing to plot."""
    kinds = [k for k in ("surgery", "dot_norm") if any(o["kind"] == k for o in summary.get("ops", []))]
    if not kinds:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(kinds), 2, figsize=(11, 4 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        ops = [o for o in summary["ops"] if o["kind"] == kind]
        ax_t, ax_bw = axes[row]
        for variant in sorted({o["variant"] for o in ops}):
            pts = sorted((o["numel"], o["min_s"], o["gbps"]) for o in ops if o["variant"] == variant)
            x = [p[0] for p in pts]
            ax_t.plot(x, [p[1] * 1e3 for p in pts], "o-", label=variant)
            ax_bw.plot(x, [p[2] for p in pts], "o-", label=variant)
        bw = sorted((r["numel"], r["best_gbps"]) for r in summary.get("bandwidth", []) if r["group"] == "surgery")
        if bw:
            ax_bw.plot([b[0] for b in bw], [b[1] for b in bw], "k--", label="measured bandwidth")
        ax_t.set(xscale="log", yscale="log", xlabel="parameters", ylabel="time per call (ms, fastest round)", title=kind)
        ax_bw.set(xscale="log", xlabel="parameters", ylabel="effective GB/s (minimum traffic)", title=f"{kind}: effective bandwidth")
        ax_bw.set_ylim(bottom=0)
        for ax in (ax_t, ax_bw):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()

    def write(tmp):
        fig.savefig(tmp, format="png", dpi=110)

    _atomic_write(path, write)
    plt.close(fig)
    return True


README_START = "<!-- results:start (written by benchmarks/run.py) -->"
README_END = "<!-- results:end -->"


def update_readme(readme: Path, summary: dict, results_link: str = "results/results.md") -> None:
    """Replace the text between README_START and README_END with the latest tables."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no '{README_START}' ... '{README_END}' section to write the results into")
    tables = to_markdown(summary, readme="").split("\n", 2)[2]  # without the "# sgs-ext benchmark results" title
    tables = tables.replace("\n## ", "\n### ")
    body = f"{README_START}\n(from [{results_link}]({results_link}); plot: [results/results.png](results/results.png))\n\n{tables.strip()}\n{README_END}"
    _write_text(readme, text[:start] + body + text[end + len(README_END):])


def write_all(summary: dict, out_dir: Path) -> List[Path]:
    out_dir = Path(out_dir)
    written = [out_dir / "results.json", out_dir / "results.md"]
    write_json(summary, written[0])
    write_markdown(summary, written[1])
    if write_plot(summary, out_dir / "results.png"):
        written.append(out_dir / "results.png")
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench_json", nargs="+", type=Path, help="pytest-benchmark --benchmark-json files")
    parser.add_argument("--memory", type=Path, help="JSON list of memory.py results")
    parser.add_argument("--machine", type=Path, help="JSON object describing the machine and run")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results", help="output folder")
    parser.add_argument("--update-readme", action="store_true", help="also rewrite the results section of benchmarks/README.md")
    args = parser.parse_args(argv)
    memory = json.loads(args.memory.read_text()) if args.memory else None
    machine = json.loads(args.machine.read_text()) if args.machine else None
    summary = summarize(load_cases(args.bench_json), memory, machine)
    for path in write_all(summary, args.out):
        print(f"wrote {path}")
    if args.update_readme:
        update_readme(README, summary)
        print(f"updated {README}")


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.append(str(Path(__file__).resolve().parents[1]))  # after site-packages: see conftest.py
    main()
