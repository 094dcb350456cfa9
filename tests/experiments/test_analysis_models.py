"""The analyses that load models: ``analyze.py heatmap`` (gradient cosine similarity
between languages, per checkpoint) and ``analyze.py interpolate`` (models between checkpoints).

A tiny run is built here: made-up POS languages (harness_helpers), a randomly initialised
tiny XLM-R saved with save_pretrained as the base model, the run's run_config.json and shot
manifest written by the harness's own functions, and two checkpoints: one in the harness
format (trained_state.safetensors) at the run-dir place of the naive-mix-train model, one
saved with save_pretrained. The cosines the command writes are checked against gradients
computed naively (one flat torch.cat vector per language); the interpolation's end points
against evaluating the endpoint models themselves.
"""
import csv
import json
import sys
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import harness_helpers as H  # noqa: E402

import analyze  # noqa: E402
from transfer import config as C  # noqa: E402
from transfer.analysis import gradient_similarity as G  # noqa: E402
from transfer.analysis.checkpoints import load_model, make_setup  # noqa: E402
from transfer.analysis.common import RunDir  # noqa: E402
from transfer.results import check_run_config, write_jsonl  # noqa: E402
from transfer.run_dir import cell_model_dir, source_model_dir  # noqa: E402

TARGETS = ("xx", "yy", "hh")
K, SEED = 2, 1


def perturbed_state(model, seed, scale=0.05):
    """Trainable parameters of ``model`` plus seeded noise (stands in for training)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: (p.detach() + scale * torch.randn(p.shape, generator=gen)).contiguous()
            for n, p in model.named_parameters() if p.requires_grad}


def write_state_checkpoint(folder, model, seed):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(perturbed_state(model, seed), str(folder / "trained_state.safetensors"))
    return folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from transfer.shots import draw_shots, update_manifest
    from transfer.tasks import get_task

    root = tmp_path_factory.mktemp("analysis_run")
    data = H.write_pos_data(root / "data")
    base = H.write_tiny_model(root / "model")
    out = root / "out"
    config = C.resolve_config(types.SimpleNamespace(
        task="pos", targets=",".join(TARGETS), data_dir=str(data), output_dir=str(out), model=str(base),
        batch_size=8, freeze_embeddings=False))
    check_run_config(out, {**config.result_settings(), "targets": list(TARGETS)})
    task = get_task("pos")
    update_manifest(out / "shots" / "manifest.json", [draw_shots(task, lang, K, SEED, data)[0] for lang in TARGETS])
    # results of the two one-step methods, so the command can infer K and the seed
    records = [{"task": "pos", "method": m, "k": K, "seed": SEED, "job": "all", "language": lang, "metric": "f1",
                "value": 50.0} for m in ("naive-mix-train", "gradient-mix-train") for lang in TARGETS]
    write_jsonl(out / "results.jsonl", records)

    torch.manual_seed(0)
    template = task.build_model(str(base))
    naive = write_state_checkpoint(cell_model_dir(out, "pos", "naive-mix-train", K, SEED), template, seed=11)
    write_state_checkpoint(cell_model_dir(out, "pos", "gradient-mix-train", K, SEED), template, seed=12)
    write_state_checkpoint(source_model_dir(out, "pos", SEED), template, seed=13)
    pretrained = root / "hf_checkpoint"
    hf_model = task.build_model(str(base))
    hf_model.load_state_dict(perturbed_state(hf_model, seed=14), strict=False)
    hf_model.save_pretrained(pretrained)
    return types.SimpleNamespace(root=root, data=data, base=base, out=out, task=task, naive=naive,
                                 pretrained=pretrained)


def naive_gradient(model, batches, skip=()):
    """One flat gradient vector: the mean of the batches' gradients, every trainable parameter."""
    model.zero_grad(set_to_none=True)
    for batch in batches:
        (model(**batch).loss / len(batches)).backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().double()
                      for n, p in model.named_parameters() if p.requires_grad and n not in skip])


def naive_cosines(model, batches_by_lang, skip=()):
    vectors = [naive_gradient(model, batches_by_lang[lang], skip) for lang in batches_by_lang]
    flat = torch.stack(vectors)
    dots = flat @ flat.T
    norms = flat.norm(dim=1)
    return dots / torch.outer(norms, norms), dots


def read_outputs(out_dir, stem):
    data = json.loads((out_dir / f"{stem}.json").read_text())
    with open(out_dir / f"{stem}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    png = (out_dir / f"{stem}.png").read_bytes()
    return data, rows, png


def test_heatmap_from_run_dir_matches_naive_gradients(tiny_run, capsys):
    assert analyze.main(["heatmap", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                         "--source-batches", "3", "--batch-size", "4"]) == 0
    out_dir = tiny_run.out / "analysis"
    stem = f"gradient_similarity_pos_k{K}_seed{SEED}"
    assert str(out_dir / f"{stem}.png") in capsys.readouterr().out
    data, rows, png = read_outputs(out_dir, stem)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # the source first, then by family (the made-up languages are unknown: alphabetical)
    assert data["languages"] == ["en", "hh", "xx", "yy"]
    assert list(data["panels"]) == ["naive-mix-train", "gradient-mix-train"]
    assert (data["k"], data["seeds"], data["source_batches"], data["batch_size"]) == (K, [SEED], 3, 4)

    setup = make_setup(RunDir(tiny_run.out), data_dir=str(tiny_run.data))
    batches = G.language_batches(setup, data["languages"], k=K, seed=SEED, n_source_batches=3, batch_size=4)
    # the batches are what the docs say: 3 English batches of 4, one batch of each target's K shots
    assert [len(b["input_ids"]) for b in batches["en"]] == [4, 4, 4]
    from transfer.shots import read_manifest

    manifest = read_manifest(tiny_run.out / "shots" / "manifest.json")
    for lang in TARGETS:
        (batch,) = batches[lang]
        shots = [ex for ex in tiny_run.task.shot_pool(lang, tiny_run.data)[1]
                 if ex.uid in set(manifest[("pos", lang, K, SEED)].uids)]
        expected = tiny_run.task.encode(shots, setup.tokenizer, 128)
        assert torch.equal(batch["input_ids"], expected.collate([expected[i] for i in range(len(expected))])["input_ids"])

    for method in ("naive-mix-train", "gradient-mix-train"):
        model = load_model(cell_model_dir(tiny_run.out, "pos", method, K, SEED), tiny_run.task,
                           base_model=str(tiny_run.base)).eval()
        cos, dots = naive_cosines(model, batches)
        panel = data["panels"][method]
        assert torch.allclose(torch.tensor(panel["cosine"], dtype=torch.float64), cos, atol=1e-5)
        assert torch.allclose(torch.tensor(panel["dot"], dtype=torch.float64), dots, rtol=1e-4, atol=1e-9)
        negatives = {tuple(p) for p in panel["negative_pairs"]}
        langs = data["languages"]
        assert negatives == {(langs[i], langs[j]) for i in range(4) for j in range(i + 1, 4) if cos[i, j] < 0}
        for row in rows:
            if row["checkpoint"] == method:
                i, j = langs.index(row["language_a"]), langs.index(row["language_b"])
                assert float(row["cosine"]) == pytest.approx(float(cos[i, j]), abs=1e-5)
    assert len(rows) == 2 * 4 * 4
    # the two checkpoints really differ
    assert data["panels"]["naive-mix-train"]["cosine"] != data["panels"]["gradient-mix-train"]["cosine"]


def test_heatmap_with_explicit_checkpoints_and_frozen_embedding(tiny_run, tmp_path):
    out_dir = tmp_path / "figs"
    assert analyze.main(["heatmap", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                         "--checkpoint", f"hf={tiny_run.pretrained}", "--checkpoint", f"state={tiny_run.naive}",
                         "--languages", "xx,yy", "--source-batches", "2", "--batch-size", "3",
                         "--freeze-embeddings", "--output-dir", str(out_dir)]) == 0
    data, rows, _ = read_outputs(out_dir, f"gradient_similarity_pos_k{K}_seed{SEED}")
    assert data["languages"] == ["en", "xx", "yy"] and list(data["panels"]) == ["hf", "state"]

    setup = make_setup(RunDir(tiny_run.out), data_dir=str(tiny_run.data), targets=("xx", "yy"))
    batches = G.language_batches(setup, ["en", "xx", "yy"], k=K, seed=SEED, n_source_batches=2, batch_size=3)
    embedding = "roberta.embeddings.word_embeddings.weight"
    for name, path, base in (("hf", tiny_run.pretrained, None), ("state", tiny_run.naive, str(tiny_run.base))):
        model = load_model(path, tiny_run.task, base_model=base).eval()
        assert embedding in dict(model.named_parameters())
        cos, _ = naive_cosines(model, batches, skip={embedding})
        assert torch.allclose(torch.tensor(data["panels"][name]["cosine"], dtype=torch.float64), cos, atol=1e-5)
        with_embedding, _ = naive_cosines(model, batches)
        assert not torch.allclose(with_embedding, cos, atol=1e-4)  # freezing changed what was measured


def add_seed(tiny_run, run_dir, seed):
    """A copy's second seed: its shots in the manifest, its results, its two models."""
    from transfer.shots import draw_shots, update_manifest

    update_manifest(run_dir / "shots" / "manifest.json",
                    [draw_shots(tiny_run.task, lang, K, seed, tiny_run.data)[0] for lang in TARGETS])
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    write_jsonl(run_dir / "results.jsonl", records + [{**r, "seed": seed} for r in records if r["seed"] == SEED])
    torch.manual_seed(0)
    template = tiny_run.task.build_model(str(tiny_run.base))
    for offset, method in enumerate(("naive-mix-train", "gradient-mix-train")):
        write_state_checkpoint(cell_model_dir(run_dir, "pos", method, K, seed), template, seed=20 + 10 * seed + offset)


def test_heatmap_averages_over_every_seed_of_the_run(tiny_run, tmp_path):
    """Without --seed the run dir's two seeds are both measured, each with its own batches
    (source sample and K shots), and each panel is the mean of the per-seed cosine matrices."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.out, run_dir)
    add_seed(tiny_run, run_dir, 2)
    out_dir = tmp_path / "figs"
    assert analyze.main(["heatmap", "--run-dir", str(run_dir), "--data-dir", str(tiny_run.data),
                         "--source-batches", "2", "--batch-size", "4", "--output-dir", str(out_dir)]) == 0
    data, rows, png = read_outputs(out_dir, f"gradient_similarity_pos_k{K}_seeds1-2")
    assert png.startswith(b"\x89PNG") and data["seeds"] == [1, 2]
    assert "mean over 2 seeds (1, 2)" in data["title"]

    setup = make_setup(RunDir(run_dir), data_dir=str(tiny_run.data))
    langs = data["languages"]
    for method in ("naive-mix-train", "gradient-mix-train"):
        per_seed = {}
        for seed in (1, 2):
            batches = G.language_batches(setup, langs, k=K, seed=seed, n_source_batches=2, batch_size=4)
            model = load_model(cell_model_dir(run_dir, "pos", method, K, seed), tiny_run.task,
                               base_model=str(tiny_run.base)).eval()
            per_seed[seed], _ = naive_cosines(model, batches)
            stored = torch.tensor(data["panels"][method]["per_seed"][str(seed)]["cosine"], dtype=torch.float64)
            assert torch.allclose(stored, per_seed[seed], atol=1e-5)
        assert not torch.allclose(per_seed[1], per_seed[2], atol=1e-3)  # the seeds really differ
        mean = (per_seed[1] + per_seed[2]) / 2
        assert torch.allclose(torch.tensor(data["panels"][method]["cosine"], dtype=torch.float64), mean, atol=1e-5)
        for row in rows:
            if row["checkpoint"] == method:
                i, j = langs.index(row["language_a"]), langs.index(row["language_b"])
                assert float(row["cosine"]) == pytest.approx(float(mean[i, j]), abs=1e-5)
                assert float(row["cosine_seed2"]) == pytest.approx(float(per_seed[2][i, j]), abs=1e-5)

    # --seed: that seed alone, the same matrix as its part of the mean
    assert analyze.main(["heatmap", "--run-dir", str(run_dir), "--data-dir", str(tiny_run.data), "--seed", "2",
                         "--source-batches", "2", "--batch-size", "4", "--output-dir", str(out_dir)]) == 0
    one, _, _ = read_outputs(out_dir, f"gradient_similarity_pos_k{K}_seed2")
    assert one["seeds"] == [2] and "seed 2" in one["title"]
    assert torch.allclose(torch.tensor(one["panels"]["naive-mix-train"]["cosine"]),
                          torch.tensor(data["panels"]["naive-mix-train"]["per_seed"]["2"]["cosine"]), atol=1e-6)


def test_mean_over_seeds_is_the_mean_of_the_matrices():
    a = {"cosine": torch.tensor([[1.0, -0.5], [-0.5, 1.0]]), "gram": torch.tensor([[4.0, -1.0], [-1.0, 1.0]]),
         "norm": torch.tensor([2.0, 1.0])}
    b = {"cosine": torch.tensor([[1.0, 0.25], [0.25, 1.0]]), "gram": torch.tensor([[1.0, 0.5], [0.5, 4.0]]),
         "norm": torch.tensor([1.0, 2.0])}
    mean = G.mean_over_seeds({1: {"x": a}, 2: {"x": b}})["x"]
    assert torch.equal(mean["cosine"], torch.tensor([[1.0, -0.125], [-0.125, 1.0]]))
    assert torch.equal(mean["gram"], (a["gram"] + b["gram"]) / 2) and torch.equal(mean["norm"], torch.tensor([1.5, 1.5]))
    assert mean["per_seed"] == {1: a, 2: b}


def test_the_source_batches_flag_reaches_the_gradients_and_the_title(tiny_run, tmp_path, monkeypatch):
    seen, titles = [], []
    real_batches, real_plot = G.source_batches, G.plot_heatmaps

    def spy_batches(setup, *, n_batches, batch_size, seed):
        out = real_batches(setup, n_batches=n_batches, batch_size=batch_size, seed=seed)
        seen.append((n_batches, len(out)))
        return out

    def spy_plot(panels, languages, path, title):
        titles.append(title)
        return real_plot(panels, languages, path, title)

    monkeypatch.setattr(G, "source_batches", spy_batches)
    monkeypatch.setattr(G, "plot_heatmaps", spy_plot)
    assert analyze.build_parser().parse_args(["heatmap"]).source_batches == 8
    assert analyze.main(["heatmap", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                         "--source-batches", "5", "--batch-size", "4", "--output-dir", str(tmp_path)]) == 0
    assert seen == [(5, 5)]  # one seed in this run: the English gradient is the mean of 5 batches
    data, _, _ = read_outputs(tmp_path, f"gradient_similarity_pos_k{K}_seed{SEED}")
    assert (data["source_batches"], data["source_batches_requested"]) == (5, 5)
    assert titles == [data["title"]] and "en: mean of 5 batches of 4 per seed" in titles[0]
    assert f"seed {SEED}" in titles[0]
    with pytest.raises(SystemExit):
        analyze.main(["heatmap", "--run-dir", str(tiny_run.out), "--source-batches", "0"])


def test_cosine_from_gram_handles_a_zero_gradient():
    gram = torch.tensor([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    cos = G.cosine_from_gram(gram)
    assert cos[0, 1] == pytest.approx(1.0) and cos[0, 0] == pytest.approx(1.0)
    assert torch.isnan(cos[2]).all() and torch.isnan(cos[:, 2]).all()


def test_heatmap_errors_name_what_is_missing(tiny_run, tmp_path, capsys):
    empty = tmp_path / "run"
    empty.mkdir()
    (empty / "run_config.json").write_text((tiny_run.out / "run_config.json").read_text())
    with pytest.raises(SystemExit) as err:
        analyze.main(["heatmap", "--run-dir", str(empty), "--data-dir", str(tiny_run.data), "--k", "2", "--seed", "1"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "no naive-mix-train checkpoint at" in message and "models/<task>/<method>/k<K>/seed<S>/<job>/" in message

    with pytest.raises(SystemExit):
        analyze.main(["heatmap", "--run-dir", str(tiny_run.out), "--checkpoint", "no-equals-sign"])
    assert "expected NAME=DIR" in capsys.readouterr().err

    not_a_checkpoint = tmp_path / "nothing"
    not_a_checkpoint.mkdir()
    with pytest.raises(SystemExit):
        analyze.main(["heatmap", "--run-dir", str(tiny_run.out), "--checkpoint", f"x={not_a_checkpoint}"])
    assert "is not a checkpoint" in capsys.readouterr().err


def test_the_run_s_own_data_dir_is_the_default_and_a_changed_file_is_named(tiny_run, tmp_path, monkeypatch,
                                                                           capsys):
    """The analyses read the data the run recorded (data_files.json), not $SGS_DATA_DIR or the
    default; an explicit --data-dir must hold the same content for the files they read."""
    import shutil

    from transfer.results import check_data_files

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.out, run_dir)
    check_data_files(run_dir, tiny_run.data, [f for lang in ("en", *TARGETS)
                                              for f in tiny_run.task.data_files(lang, tiny_run.data)])
    elsewhere = H.write_pos_data(tmp_path / "elsewhere", {lang: {"train": 30, "dev": 10, "test": 10}
                                                          for lang in ("en", *TARGETS)})
    monkeypatch.setenv("SGS_DATA_DIR", str(elsewhere))
    setup = make_setup(RunDir(run_dir), model=str(tiny_run.base))
    assert setup.data_dir == tiny_run.data
    same = shutil.copytree(tiny_run.data, tmp_path / "copy")  # the same content anywhere: accepted
    assert make_setup(RunDir(run_dir), model=str(tiny_run.base), data_dir=str(same)).data_dir == same
    with pytest.raises(SystemExit) as err:
        analyze.main(["heatmap", "--run-dir", str(run_dir), "--data-dir", str(elsewhere), "--source-batches", "1"])
    assert err.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"data dir {elsewhere}: not the data the run in {run_dir} read (recorded from {tiny_run.data})" in message
    assert "udpos/xx/train.tsv: was" in message and "udpos/en/train.tsv: was" in message


# ----------------------------------------------------------------------------- interpolation


def reference_scores(model, task, tokenizer, examples):
    """The task's scores and the loss of one batch holding every example (what the command
    computes when --eval-batch-size exceeds the set)."""
    scores = task.evaluate(model, examples, tokenizer, max_seq_length=128, batch_size=1000, device="cpu")
    encoded = task.encode(examples, tokenizer, 128)
    with torch.no_grad():
        loss = model.eval()(**encoded.collate([encoded[i] for i in range(len(encoded))])).loss.item()
    return {**scores, "loss": loss}


def dev_sets(tiny_run, tokenizer, langs):
    from transfer.shots import read_manifest

    manifest = read_manifest(tiny_run.out / "shots" / "manifest.json")
    sets = {("source", "en"): tiny_run.task.source_dev("en", tiny_run.data)}
    for lang in langs:
        shots = set(manifest[("pos", lang, K, SEED)].uids)
        sets[("target", lang)] = tiny_run.task.target_dev(lang, tiny_run.data, exclude=shots)
    return sets


def points_at(points, **where):
    return {(p["set"], p["language"]): p for p in points if all(p[k] == v for k, v in where.items())}


def test_interpolation_end_points_are_the_two_models(tiny_run, tmp_path):
    out_dir = tmp_path / "interp"
    assert analyze.main(["interpolate", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                         "--bilingual-method", "naive-mix-train", "--languages", "xx,hh", "--points", "3",
                         "--max-eval-examples", "0", "--eval-batch-size", "1000", "--output-dir", str(out_dir)]) == 0
    stem = f"interpolation_pos_k{K}_seed{SEED}"
    data = json.loads((out_dir / f"{stem}.json").read_text())
    assert (out_dir / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
    with open(out_dir / f"{stem}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(data["points"]) == 3 * 3  # 3 values of a x (source + 2 targets)
    assert sorted({p["a"] for p in data["points"]}) == [0.0, 0.5, 1.0]

    setup = make_setup(RunDir(tiny_run.out), data_dir=str(tiny_run.data))
    sets = dev_sets(tiny_run, setup.tokenizer, ["xx", "hh"])
    # hh has no train split: its shots come from dev and must not be evaluated on
    assert data["n_examples"]["target:hh"] == len(sets[("target", "hh")]) < len(
        tiny_run.task.target_dev("hh", tiny_run.data))
    bilingual_dir = cell_model_dir(tiny_run.out, "pos", "naive-mix-train", K, SEED)
    source_dir = source_model_dir(tiny_run.out, "pos", SEED)
    for a, folder in ((0.0, source_dir), (1.0, bilingual_dir)):
        model = load_model(folder, tiny_run.task, base_model=str(tiny_run.base))
        got = points_at(data["points"], a=a)
        for key, examples in sets.items():
            expected = reference_scores(model, tiny_run.task, setup.tokenizer, examples)
            for metric in ("f1", "accuracy"):
                assert got[key][metric] == pytest.approx(expected[metric], abs=1e-9)
            assert got[key]["loss"] == pytest.approx(expected["loss"], rel=1e-6)

    # the midpoint is the average model, not either end
    bi = load_model(bilingual_dir, tiny_run.task, base_model=str(tiny_run.base))
    src = load_model(source_dir, tiny_run.task, base_model=str(tiny_run.base))
    src_state = src.state_dict()
    bi.load_state_dict({n: (0.5 * t + 0.5 * src_state[n]) if t.is_floating_point() else t
                        for n, t in bi.state_dict().items()})
    mid = points_at(data["points"], a=0.5)
    for key, examples in sets.items():
        expected = reference_scores(bi, tiny_run.task, setup.tokenizer, examples)
        assert mid[key]["loss"] == pytest.approx(expected["loss"], rel=1e-5)
        ends = [points_at(data["points"], a=a)[key]["loss"] for a in (0.0, 1.0)]
        assert all(abs(mid[key]["loss"] - end) > 1e-4 for end in ends)

    # --no-loss: the same scores, no loss column
    assert analyze.main(["interpolate", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                         "--bilingual-method", "naive-mix-train", "--languages", "xx,hh", "--points", "2",
                         "--max-eval-examples", "0", "--no-loss", "--output-dir", str(tmp_path / "no_loss")]) == 0
    with open(tmp_path / "no_loss" / f"{stem}.csv", newline="") as handle:
        quick = list(csv.DictReader(handle))
    assert list(quick[0]) == ["a", "set", "language", "f1", "accuracy"]
    full = {(r["a"], r["set"], r["language"]): r for r in rows}
    for r in quick:
        assert r["f1"] == full[(r["a"], r["set"], r["language"])]["f1"]


def flat_delta(state, origin):
    """Every floating tensor of ``state`` minus ``origin``'s, flattened into one float64 vector."""
    return torch.cat([(state[n].double() - origin[n].double()).flatten() for n in origin
                      if origin[n].is_floating_point()])


def runner_start(tiny_run, tmp_path, seed):
    """``Runner.pretrained_model(seed)``'s state: the start every model of the seed trains from."""
    from transfer.runner import Runner

    config = C.resolve_config(types.SimpleNamespace(
        task="pos", targets=",".join(TARGETS), data_dir=str(tiny_run.data), output_dir=str(tmp_path / "runner"),
        model=str(tiny_run.base), batch_size=8, freeze_embeddings=False, max_seq_length=64))
    return Runner(config, model_path=str(tiny_run.base)).pretrained_model(seed).state_dict()


def test_interpolation_plane_is_wu_et_al_s(tiny_run, tmp_path):
    """theta_0 (the runner's pretrained start of the seed) at (0, 0), the source model at (1, 0), the
    target model at (0, 1); the bilingual model located by least squares (a float64 oracle)."""
    out_dir = tmp_path / "plane"
    bilingual_dir = cell_model_dir(tiny_run.out, "pos", "gradient-mix-train", K, SEED)
    source_dir = source_model_dir(tiny_run.out, "pos", SEED)
    assert analyze.main(["interpolate", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                         "--bilingual", str(bilingual_dir), "--source-model", str(source_dir),
                         "--target-model", str(tiny_run.pretrained), "--target-language", "yy",
                         "--k", str(K), "--seed", str(SEED), "--languages", "yy", "--points", "2",
                         "--grid", "0,1,2", "--max-eval-examples", "0", "--eval-batch-size", "1000",
                         "--output-dir", str(out_dir)]) == 0
    stem = f"interpolation2d_pos_k{K}_seed{SEED}_yy"
    data = json.loads((out_dir / f"{stem}.json").read_text())
    assert (out_dir / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
    assert (out_dir / f"interpolation_pos_k{K}_seed{SEED}.json").is_file()  # the line as well
    assert len(data["points"]) == 2 * 2 * 2  # 2 x 2 grid x (source, yy)
    assert data["formula"] == "theta(a1, a2) = theta_0 + a1 * (source - theta_0) + a2 * (target - theta_0)"

    setup = make_setup(RunDir(tiny_run.out), data_dir=str(tiny_run.data))
    start = runner_start(tiny_run, tmp_path, SEED)
    origin = setup.pretrained(SEED)
    assert all(torch.equal(origin.state_dict()[n], start[n]) for n in start)  # exactly the runner's start
    assert not torch.equal(setup.pretrained(SEED + 1).state_dict()["classifier.weight"], start["classifier.weight"])
    sets = dev_sets(tiny_run, setup.tokenizer, ["yy"])
    corners = {(0.0, 0.0): origin,
               (1.0, 0.0): load_model(source_dir, tiny_run.task, base_model=str(tiny_run.base)),
               (0.0, 1.0): load_model(tiny_run.pretrained, tiny_run.task)}
    for (a1, a2), model in corners.items():
        got = points_at(data["points"], a1=a1, a2=a2)
        for key, examples in sets.items():
            expected = reference_scores(model, tiny_run.task, setup.tokenizer, examples)
            assert got[key]["loss"] == pytest.approx(expected["loss"], rel=1e-5)
            assert got[key]["f1"] == pytest.approx(expected["f1"], abs=1e-9)

    # the geometry against a float64 oracle: one flat vector per model, lstsq for the bilingual point
    theta_0 = {n: t for n, t in start.items()}
    u = flat_delta(corners[(1.0, 0.0)].state_dict(), theta_0)
    v = flat_delta(corners[(0.0, 1.0)].state_dict(), theta_0)
    w = flat_delta(load_model(bilingual_dir, tiny_run.task, base_model=str(tiny_run.base)).state_dict(), theta_0)
    cosine = float(u @ v / (u.norm() * v.norm()))
    assert data["axes_cosine"] == pytest.approx(cosine, abs=1e-12) and abs(cosine) < 0.95
    basis = torch.stack([u, v], dim=1)
    solution = torch.linalg.lstsq(basis, w.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    located = data["bilingual"]
    assert located["coordinates"] == pytest.approx(solution.tolist(), abs=1e-9)
    distance = float((w - basis @ solution).norm())
    assert located["distance"] == pytest.approx(distance, rel=1e-9)
    assert located["relative_distance"] == pytest.approx(distance / float(w.norm()), rel=1e-9)
    assert located["path"] == str(bilingual_dir)


def test_plane_geometry_locates_points_of_the_plane_and_checks_axes():
    from transfer.analysis.interpolation import check_axes, plane_geometry, plane_state

    gen = torch.Generator().manual_seed(3)
    origin = {"w": torch.randn(4, 5, generator=gen), "b": torch.randn(5, generator=gen), "ids": torch.arange(3),
              "frozen": torch.ones(2)}
    source = {**origin, "w": origin["w"] + torch.randn(4, 5, generator=gen), "b": origin["b"] + 1.0}
    target = {**origin, "w": origin["w"] + torch.randn(4, 5, generator=gen), "b": origin["b"] - 0.5}
    # the corners, exactly
    for (a1, a2), state in (((0, 0), origin), ((1, 0), source), ((0, 1), target)):
        corner = plane_state(origin, source, target, float(a1), float(a2))
        assert all(torch.equal(corner[n], state[n]) for n in state)
    # a point of the plane is found at its coordinates, at distance ~0; the corners at (1, 0) and (0, 1)
    inside = {**origin, "w": origin["w"] + 0.3 * (source["w"] - origin["w"]) - 0.7 * (target["w"] - origin["w"]),
              "b": origin["b"] + 0.3 * 1.0 - 0.7 * -0.5}
    for state, coordinates in ((inside, [0.3, -0.7]), (source, [1.0, 0.0]), (target, [0.0, 1.0])):
        located = plane_geometry(origin, source, target, state)["bilingual"]
        assert located["coordinates"] == pytest.approx(coordinates, abs=1e-6)
        assert located["relative_distance"] < 1e-6
    # off the plane: the float64 oracle
    off = {**origin, "w": origin["w"] + torch.randn(4, 5, generator=gen), "b": origin["b"] + 2.0}
    geometry = plane_geometry(origin, source, target, off)
    u, v, w = (flat_delta(s, origin) for s in (source, target, off))
    basis = torch.stack([u, v], dim=1)
    solution = torch.linalg.lstsq(basis, w.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    assert geometry["bilingual"]["coordinates"] == pytest.approx(solution.tolist(), abs=1e-12)
    assert geometry["bilingual"]["distance"] == pytest.approx(float((w - basis @ solution).norm()), rel=1e-12)
    assert geometry["axes_cosine"] == pytest.approx(float(u @ v / (u.norm() * v.norm())), abs=1e-12)
    check_axes(geometry, "src", "tgt")  # random axes: fine

    # orthogonal axes: cosine 0, fine; nearly collinear: refused, naming both models and the cosine
    flat = {"w": torch.zeros(4)}
    orthogonal = plane_geometry(flat, {"w": torch.tensor([1.0, 0, 0, 0])}, {"w": torch.tensor([0, 2.0, 0, 0])})
    assert orthogonal["axes_cosine"] == 0.0
    check_axes(orthogonal, "src", "tgt")
    collinear = plane_geometry(flat, {"w": torch.tensor([1.0, 0, 0, 0])}, {"w": torch.tensor([1.0, 0.1, 0, 0])})
    tenth = torch.tensor(0.1).item()  # float32's 0.1, computed with in float64
    assert collinear["axes_cosine"] == pytest.approx(1 / (1 + tenth ** 2) ** 0.5, abs=1e-15)  # 0.995
    with pytest.raises(ValueError, match=r"nearly collinear: cos\(source - theta_0, target - theta_0\) = 0\.9950 "
                                         r"\(\|cos\| > 0\.95\) for the source model src/m and the target model tgt/m"):
        check_axes(collinear, "src/m", "tgt/m")
    opposite = plane_geometry(flat, {"w": torch.tensor([1.0, 0, 0, 0])}, {"w": torch.tensor([-1.0, 0.1, 0, 0])})
    with pytest.raises(ValueError, match=r"= -0\.9950"):
        check_axes(opposite, "src", "tgt")
    with pytest.raises(ValueError, match="equals the plane's origin"):
        check_axes(plane_geometry(flat, {"w": torch.tensor([1.0, 0, 0, 0])}, flat), "src", "tgt")


def test_interpolate_refuses_a_plane_of_nearly_collinear_models(tiny_run, tmp_path, capsys):
    """A target model that is the source model plus a few small steps (ord-FS) spans no plane:
    the command stops before evaluating anything, naming both models and the cosine."""
    from safetensors.torch import save_file

    source_dir = source_model_dir(tiny_run.out, "pos", SEED)
    source = load_model(source_dir, tiny_run.task, base_model=str(tiny_run.base))
    near = tmp_path / "ord-fs-like"
    near.mkdir()
    gen = torch.Generator().manual_seed(5)
    save_file({n: (p.detach() + 1e-3 * torch.randn(p.shape, generator=gen)).contiguous()
               for n, p in source.named_parameters()}, str(near / "trained_state.safetensors"))
    out_dir = tmp_path / "refused"
    with pytest.raises(SystemExit) as err:
        analyze.main(["interpolate", "--run-dir", str(tiny_run.out), "--data-dir", str(tiny_run.data),
                      "--bilingual-method", "naive-mix-train", "--target-model", str(near), "--target-language", "yy",
                      "--languages", "yy", "--grid", "0,1,2", "--output-dir", str(out_dir)])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "nearly collinear" in message and str(source_dir) in message and str(near) in message
    assert "cos(source - theta_0, target - theta_0) = 0.9" in message
    assert not out_dir.exists() or not list(out_dir.iterdir())  # nothing evaluated, nothing written


def test_interpolate_finds_the_bilingual_single_and_target_only_models(tiny_run, tmp_path, monkeypatch):
    """--bilingual-method naive-mix-train --language-set single: the run's naive-single model of
    --target-language; --target-method target-only-full: its K=0 model (it trains on no shots)."""
    import shutil

    from transfer.analysis import interpolation

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.out, run_dir)
    torch.manual_seed(0)
    template = tiny_run.task.build_model(str(tiny_run.base))
    bilingual = write_state_checkpoint(cell_model_dir(run_dir, "pos", "naive-single", K, SEED, "yy"), template, 31)
    target = write_state_checkpoint(cell_model_dir(run_dir, "pos", "target-only-full", 0, SEED, "yy"), template, 32)
    seen = {}

    def spy_plane(setup, **kw):
        seen.update(kw)
        return {}

    monkeypatch.setattr(interpolation, "run_plane", spy_plane)
    monkeypatch.setattr(interpolation, "run_line", lambda setup, **kw: seen.setdefault("line", kw) and {})
    assert analyze.main(["interpolate", "--run-dir", str(run_dir), "--data-dir", str(tiny_run.data),
                         "--bilingual-method", "naive-mix-train", "--language-set", "single",
                         "--target-method", "target-only-full", "--target-language", "yy",
                         "--k", str(K), "--seed", str(SEED)]) == 0
    assert (seen["bilingual"], seen["target"], seen["seed"]) == (bilingual, target, SEED)
    assert seen["source"] == source_model_dir(run_dir, "pos", SEED) and seen["label"] == "naive-single"
    assert seen["line"]["bilingual"] == bilingual
    with pytest.raises(SystemExit):  # a -single method without a target language: which model?
        analyze.main(["interpolate", "--run-dir", str(run_dir), "--data-dir", str(tiny_run.data),
                      "--bilingual-method", "naive-single", "--k", str(K), "--seed", str(SEED)])


def test_combine_is_exact_at_the_corners_and_checks_tensors():
    from transfer.analysis.interpolation import combine, line_state, plane_state

    frozen = torch.randn(5) * 1e3
    a = {"w": torch.randn(3, 4), "ids": torch.arange(4), "frozen": frozen.clone()}
    b = {"w": torch.randn(3, 4), "ids": torch.arange(4), "frozen": frozen.clone()}
    c = {"w": torch.randn(3, 4), "ids": torch.arange(4), "frozen": frozen.clone()}
    assert torch.equal(line_state(a, b, 0.3)["frozen"], frozen)  # equal everywhere: kept exactly
    assert torch.equal(plane_state(a, b, c, 0.3, 0.45)["frozen"], frozen)
    assert torch.equal(line_state(a, b, 0.0)["w"], b["w"]) and torch.equal(line_state(a, b, 1.0)["w"], a["w"])
    assert torch.equal(plane_state(a, b, c, 1.0, 0.0)["w"], b["w"]) and torch.equal(plane_state(a, b, c, 0, 1)["w"], c["w"])
    assert torch.allclose(line_state(a, b, 0.25)["w"], 0.25 * a["w"] + 0.75 * b["w"])
    with pytest.raises(ValueError, match="non-floating tensor differs"):
        combine([(0.5, a), (0.5, {**b, "ids": torch.arange(1, 5)})])
    with pytest.raises(ValueError, match="different tensors"):
        combine([(0.5, a), (0.5, {"w": b["w"]})])
    with pytest.raises(ValueError, match="shapes differ"):
        combine([(0.5, a), (0.5, {**b, "w": torch.zeros(2, 2)})])
