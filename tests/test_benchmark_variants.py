"""The benchmarks' building blocks: every variant computes sgs_ext.reference's
surgery (so a wrong fast variant can never win a benchmark), the parameter
shapes are XLM-R's, the probes compute what they claim, memory is measured,
and the report writer turns a small fake result set into valid JSON,
Markdown and PNG, and the committed report is its output of the committed raw data.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for `benchmarks`; appended so the installed sgs_ext still wins
    sys.path.append(str(REPO))

from ops_testing import assert_lists_close, assert_stats_close, clone_list  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.bandwidth import PROBES  # noqa: E402
from benchmarks.gradients import make_pair, make_sets  # noqa: E402
from benchmarks.shapes import CONFIGS, EncoderConfig, encoder_shapes, model_shapes, num_params, parse_sizes  # noqa: E402
from benchmarks.variants import GRAM_VARIANTS, SURGERY_VARIANTS  # noqa: E402
from sgs_ext import reference  # noqa: E402

# An encoder small enough for a unit test, with every kind of tensor a real one has.
TINY = encoder_shapes(
    EncoderConfig(vocab_size=301, hidden_size=24, num_hidden_layers=2, intermediate_size=40, max_position_embeddings=17))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", list(SURGERY_VARIANTS))
def test_surgery_variant_matches_reference(variant, dtype):
    pair = make_pair(TINY, dtype=dtype, seed=3)
    want_train = clone_list(pair.train)
    want_stats = reference.surgery_(want_train, pair.oracle)
    assert float(want_stats[0]) < 0  # the pair conflicts, so the projection is exercised

    got_train = clone_list(pair.train)
    got_stats = SURGERY_VARIANTS[variant].surgery_(got_train, pair.oracle)
    assert_stats_close(got_stats, want_stats, dtype)
    assert_lists_close(got_train, want_train, dtype)
    assert got_stats.dtype == want_stats.dtype


@pytest.mark.parametrize("variant", list(SURGERY_VARIANTS))
def test_dot_norm_and_project_variants_match_reference(variant):
    pair = make_pair(TINY, seed=5)
    v = SURGERY_VARIANTS[variant]
    stats = v.dot_norm(pair.train, pair.oracle)
    assert_stats_close(stats, reference.dot_norm(pair.train, pair.oracle), torch.float32)

    want, got = clone_list(pair.train), clone_list(pair.train)
    reference.project_(want, pair.oracle, stats)
    v.project_(got, pair.oracle, stats)
    assert_lists_close(got, want, torch.float32)


@pytest.mark.parametrize("variant", list(SURGERY_VARIANTS))
def test_surgery_variant_writes_nothing_without_conflict(variant):
    pair = make_pair(TINY, seed=7)
    train = [-t for t in pair.train]  # now train . oracle > 0
    before = clone_list(train)
    stats = SURGERY_VARIANTS[variant].surgery_(train, pair.oracle)
    assert float(stats[0]) > 0
    for a, b in zip(train, before):
        assert torch.equal(a, b)


@pytest.mark.parametrize("num_sets", [1, 2, 3])
@pytest.mark.parametrize("variant", list(GRAM_VARIANTS))
def test_gram_variant_matches_reference(variant, num_sets):
    _, sets = make_sets(TINY, num_sets, seed=11)
    want = reference.gram(sets)
    got = GRAM_VARIANTS[variant](sets)
    assert got.shape == (num_sets, num_sets)
    scale = float(want.abs().max())
    assert float((got.double() - want.double()).abs().max()) <= 1e-5 * scale


def test_xlmr_shapes_are_transformers_shapes():
    transformers = pytest.importorskip("transformers")
    for size, heads in (("xlmr-base", 12), ("xlmr-large", 16)):
        cfg = CONFIGS[size]
        hf_cfg = transformers.XLMRobertaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=heads, intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings, type_vocab_size=cfg.type_vocab_size)
        with torch.device("meta"):
            model = transformers.XLMRobertaModel(hf_cfg)
        want = sorted((n, tuple(p.shape)) for n, p in model.named_parameters())
        assert sorted(model_shapes(size)) == want, size
    assert model_shapes("xlmr-base")[0] == ("embeddings.word_embeddings.weight", (250002, 768))
    assert 278e6 < num_params(model_shapes("xlmr-base")) < 279e6
    assert 559e6 < num_params(model_shapes("xlmr-large")) < 561e6


def test_sizes_are_named_after_their_parameter_counts():
    for size, lo, hi in (("1M", 0.9e6, 1.1e6), ("10M", 9.5e6, 10.5e6), ("100M", 95e6, 105e6)):
        assert lo <= num_params(model_shapes(size)) <= hi, size
    with pytest.raises(ValueError, match="unknown benchmark size 'huge'"):
        parse_sizes("10M,huge")


def test_gradient_pair_views_share_the_flat_buffers():
    pair = make_pair(TINY, seed=1)
    assert [tuple(t.shape) for t in pair.train] == [s for _, s in TINY]
    pair.train[0].zero_()
    assert float(pair.train_flat[: pair.train[0].numel()].abs().sum()) == 0.0
    assert pair.numel == num_params(TINY)


def test_bandwidth_probes_compute_what_they_claim():
    a = torch.randn(10001, generator=torch.Generator().manual_seed(0))
    b = torch.randn(10001, generator=torch.Generator().manual_seed(1))
    assert float(PROBES["dot"].run(a, b)) == pytest.approx(float(torch.dot(a.double(), b.double())), rel=1e-5)
    c = b.clone()
    PROBES["axpy"].run(a, c)
    assert torch.allclose(c, b + 1e-3 * a)
    PROBES["copy"].run(a, c)
    assert torch.equal(c, a)
    assert PROBES["axpy"].bytes_moved(a) == 3 * 4 * 10001


def _memory(variant):
    cmd = [sys.executable, str(REPO / "benchmarks" / "memory.py"), "--size", "10M", "--op", "surgery", "--variant", variant]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def test_memory_sees_the_naive_copies_and_not_the_fused_ones():
    list_bytes = num_params(model_shapes("10M")) * 4
    naive, fused = _memory("naive"), _memory("fused")
    # naive holds flat train, flat oracle and c * flat oracle at once
    assert naive["peak_extra_bytes"] >= 2.5 * list_bytes
    assert fused["peak_extra_bytes"] < 0.05 * list_bytes
    assert "VmHWM" in fused["method"]


# ---------------------------------------------------------------------------
# The report writer, on a fake pytest-benchmark result set


def _bench(name, seconds, **info):
    return {"name": name, "extra_info": info,
            "stats": {"min": seconds, "median": seconds * 1.1, "mean": seconds * 1.2, "stddev": 0.0, "rounds": 5}}


def _fake_results(tmp_path, paired=False):
    n = 100_000_000
    common = {"group": "surgery", "size": "100M", "numel": n, "dtype": "float32", "device": "cpu", "threads": 2}
    benches = [
        _bench("bw copy", 0.100, kind="bandwidth", variant="copy", bytes=8 * n, **common),  # 8 GB/s
        _bench("bw dot", 0.080, kind="bandwidth", variant="dot", bytes=8 * n, **common),  # 10 GB/s: the bandwidth
        _bench("bw axpy", 0.150, kind="bandwidth", variant="axpy", bytes=12 * n, **common),  # 8 GB/s
        _bench("naive", 2.400, kind="surgery", variant="naive", bytes=20 * n, **common),
        _bench("loop", 0.300, kind="surgery", variant="loop", bytes=20 * n, **common),
        _bench("foreach", 0.240, kind="surgery", variant="foreach", bytes=20 * n, **common),
        _bench("fused", 0.200, kind="surgery", variant="fused", bytes=20 * n, **common),  # 10 GB/s
        _bench("dn fused", 0.100, kind="dot_norm", variant="fused", bytes=8 * n, **common),
        _bench("gram", 0.500, kind="gram", variant="fused", num_sets=4, bytes=16 * n, **{**common, "group": "gram"}),
        _bench("plain", 0.100, kind="train_step", group="train_step", size="full", numel=5_000_000, variant="plain",
               model="tiny", batch=32, oracle_batch=5, seq_len=64),
        _bench("oracle", 0.130, kind="train_step", group="train_step", size="full", numel=5_000_000, variant="oracle_only",
               model="tiny", batch=32, oracle_batch=5, seq_len=64),
        _bench("fused step", 0.140, kind="train_step", group="train_step", size="full", numel=5_000_000,
               variant="surgery_fused", model="tiny", batch=32, oracle_batch=5, seq_len=64, surgery_median_s=0.0077),
    ]
    if paired:  # three rounds of the probes and the fused surgery, alternating
        rounds = [{"copy": 0.100, "dot": 0.064, "axpy": 0.150, "fused": 0.200},  # best probe dot 12.5 GB/s, fused 10
                  {"copy": 0.100, "dot": 0.050, "axpy": 0.150, "fused": 0.250},  # dot 16, fused 8
                  {"copy": 0.100, "dot": 0.080, "axpy": 0.150, "fused": 0.200}]  # dot 10, fused 10
        benches.append(_bench("paired", 0.200, kind="paired", variant="fused", bytes=20 * n, round_times_s=rounds,
                              probe_bytes={"copy": 8 * n, "dot": 8 * n, "axpy": 12 * n}, **common))
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    memory = [{"op": "surgery", "variant": "naive", "size": "100M", "num_sets": 2, "peak_extra_bytes": 3 * 4 * n,
               "method": "peak RSS"}]
    return path, memory


def test_report_summarizes_and_judges_the_targets(tmp_path):
    path, memory = _fake_results(tmp_path)
    summary = report.summarize(report.load_cases([path]), memory, {"cpu": "test cpu", "cores": 2})

    fused = next(o for o in summary["ops"] if o["kind"] == "surgery" and o["variant"] == "fused")
    assert fused["gbps"] == pytest.approx(10.0)
    assert fused["bandwidth_gbps"] == pytest.approx(10.0)  # best probe: dot
    assert fused["fraction_of_bandwidth"] == pytest.approx(1.0)
    # dot+axpy probes: 8n + 12n bytes in 0.08 + 0.15 s
    assert fused["matched_bandwidth_gbps"] == pytest.approx(20 * 0.1 / 0.23)
    assert fused["fraction_of_matched_bandwidth"] == pytest.approx(10.0 / (2.0 / 0.23))
    assert fused["speedup_vs_naive"] == pytest.approx(12.0)
    naive = next(o for o in summary["ops"] if o["kind"] == "surgery" and o["variant"] == "naive")
    assert naive["peak_extra_bytes"] == 3 * 4 * 100_000_000

    targets = {t["target"]: t for t in summary["targets"]}
    assert targets["fused vs naive torch.cat surgery"]["met"]
    best = targets["fused vs best pure-PyTorch surgery"]
    assert best["value"] == pytest.approx(1.2) and not best["met"] and "foreach" in best["detail"]
    assert targets["fused fraction of measured bandwidth"]["met"]

    step = next(s for s in summary["train_step"] if s["variant"] == "surgery_fused")
    assert step["surgery_share"] == pytest.approx(0.0077 / (0.14 * 1.1))  # surgery median / step median


def test_report_judges_the_bandwidth_target_on_the_paired_case(tmp_path):
    path, memory = _fake_results(tmp_path, paired=True)
    summary = report.summarize(report.load_cases([path]), memory, {"cpu": "test cpu", "cores": 2})
    (row,) = summary["paired"]
    assert row["rounds"] == 3 and row["min_s"] == pytest.approx(0.2) and row["gbps"] == pytest.approx(10.0)
    assert row["probe_gbps"] == pytest.approx({"copy": 8.0, "dot": 16.0, "axpy": 8.0})  # each one's fastest round
    assert row["best_probe"] == "dot" and row["fraction_of_fastest"] == pytest.approx(0.625)
    # Of the best probe, per round: 0.8, 0.5, 1.0; quartiles by statistics.quantiles' "inclusive"
    # method: of three sorted values, halfway between the first two and between the last two.
    assert row["fraction_of_bandwidth"] == pytest.approx(0.8)
    assert row["fraction_quartiles"] == pytest.approx([0.65, 0.9])
    # Of the dot+axpy probes (20n bytes in dot + axpy seconds), per round: 10 / (2 / 0.214), 8 / (2 / 0.2), 10 / (2 / 0.23).
    per_round = sorted([10 / (2 / 0.214), 8 / (2 / 0.2), 10 / (2 / 0.23)])
    assert row["fraction_of_matched_bandwidth"] == pytest.approx(per_round[1])
    assert row["matched_quartiles"] == pytest.approx([(per_round[0] + per_round[1]) / 2, (per_round[1] + per_round[2]) / 2])
    # dot+axpy over the best probe, per round: 9.35 / 12.5, 10 / 16, 8.70 / 10.
    assert row["two_pass_ceiling"] == pytest.approx(sorted([2 / 0.214 / 12.5, 2 / 0.2 / 16, 2 / 0.23 / 10])[1])
    assert row["surgery_mix_gbps"] == pytest.approx(2 / 0.2)  # the fastest dot and axpy rounds

    targets = {t["target"]: t for t in summary["targets"]}
    fraction = targets["fused fraction of measured bandwidth"]
    # The separate cases alone would give 10 / (2 / 0.23) = 1.15; the paired case is what counts.
    assert fraction["value"] == pytest.approx(1.07) and fraction["met"]
    assert "median over 3 rounds" in fraction["detail"] and "of the best probe (dot): 0.80" in fraction["detail"]
    md = report.to_markdown(summary)
    assert "## Fused surgery against the probes, round by round" in md
    assert "| 100M | 100.0M | 200.0 | 10.00 | 8.00 | 16.00 | 8.00 | 107% (94–111%) | 80% (65–90%) (dot) | 75% | 3 |" in md
    assert "(../README.md#which-bandwidth-a-surgery-is-measured-against)" in md  # dot+axpy is explained there only


def test_report_writes_valid_json_markdown_and_png(tmp_path):
    path, memory = _fake_results(tmp_path)
    summary = report.summarize(report.load_cases([path]), memory, {"cpu": "test cpu", "cores": 2})
    written = report.write_all(summary, tmp_path / "out")
    assert sorted(p.name for p in written) == ["results.json", "results.md", "results.png"]

    assert json.loads((tmp_path / "out" / "results.json").read_text())["targets"] == summary["targets"]
    md = (tmp_path / "out" / "results.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| 100M |")]
    assert len(rows) == 3 + 4 + 1 + 1  # targets, surgery variants, dot_norm, gram
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) == 6  # targets, bandwidth, surgery, dot_norm, gram, training step
    for table in tables:  # header, separator and rows all have the same number of columns
        assert len({line.count("|") for line in table}) == 1, table
    assert "**NO**" in md and "2 of 3 targets met" in md
    assert "in separate cases" in md  # no paired case in this run
    assert "1.12 GiB" in md  # naive's measured peak: 3 copies of 100M floats
    assert (tmp_path / "out" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temporaries


def test_report_rejects_foreign_json(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"benchmarks": [{"name": "x", "extra_info": {}, "stats": {}}]}))
    with pytest.raises(ValueError, match=r"other.json: benchmark 0 \(x\) has no extra_info\['kind'\]"):
        report.load_cases([bad])


def test_committed_report_is_what_report_py_makes_of_the_committed_raw_data(tmp_path):
    """results.md and the README's results section are what report.py makes of results/raw/ now: a
    change to the writer's output fails here until they are regenerated (and their numbers checked)."""
    bench = REPO / "benchmarks"
    raw = bench / "results" / "raw"
    paths = sorted(raw.glob("bench-*.json"))
    if not paths:
        pytest.skip("no committed raw benchmark data")
    memory, machine = (json.loads((raw / name).read_text()) for name in ("memory.json", "machine.json"))
    summary = report.summarize(report.load_cases(paths), memory, machine)
    assert report.to_markdown(summary) == (bench / "results" / "results.md").read_text()  # links from results/
    readme = tmp_path / "README.md"
    readme.write_text((bench / "README.md").read_text())
    report.update_readme(readme, summary)
    assert readme.read_text() == (bench / "README.md").read_text()


def test_update_readme_replaces_only_the_results_section(tmp_path):
    path, memory = _fake_results(tmp_path)
    summary = report.summarize(report.load_cases([path]), memory, {"cpu": "test cpu", "cores": 2})
    readme = tmp_path / "README.md"
    readme.write_text(f"# Intro\n\ntext before\n\n{report.README_START}\nold tables\n{report.README_END}\n\ntext after\n")
    report.update_readme(readme, summary)
    text = readme.read_text()
    assert text.startswith("# Intro\n\ntext before\n\n") and text.endswith("\n\ntext after\n")
    assert "old tables" not in text
    assert "### Targets (CPU, 2 threads, 100M parameters and above)" in text
    assert text.count(report.README_START) == 1 and text.count(report.README_END) == 1

    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="README.md: no '<!-- results:start"):
        report.update_readme(readme, summary)
