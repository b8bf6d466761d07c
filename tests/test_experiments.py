"""The entry points as a user runs them: train, resume, sample, represent, evaluate; bad flags fail clearly."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def cli(script, *args, check=True):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli") / "vae"
    out = cli("train.py", "--config", "configs/vae_digits.py:smoke", "--workdir", work,
              "--config.train.num_devices=1", "--config.train.steps=30")
    assert f"workdir: {work}" in out.stdout and "eval/nll/elbo" in out.stdout
    return work


def test_train_writes_its_outputs_and_rerun_resumes(trained):
    assert json.loads((trained / "eval.json").read_text())["step"] == 30
    before = (trained / "metrics.jsonl").read_text()
    cli("train.py", "--config", "configs/vae_digits.py:smoke", "--workdir", trained,
        "--config.train.num_devices=1", "--config.train.steps=30")
    assert (trained / "metrics.jsonl").read_text().count('"loss"') == before.count('"loss"')  # nothing re-run


def test_sample_differs_by_seed(trained, tmp_path):
    a, b, a2 = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "a2.png"
    cli("sample.py", "--workdir", trained, "--seed", 1, "--out", a)
    cli("sample.py", "--workdir", trained, "--seed", 2, "--out", b)
    cli("sample.py", "--workdir", trained, "--seed", 1, "--out", a2)
    pa, pb, pa2 = (np.asarray(Image.open(p)) for p in (a, b, a2))
    assert np.array_equal(pa, pa2) and not np.array_equal(pa, pb)
    # options go to the family's sample (the VAE's decoder means instead of draws), named in the file
    cli("sample.py", "--workdir", trained, "--seed", 1, "--sample_option", "observation=mean")
    means = np.asarray(Image.open(trained / "samples_seed1_observationmean.png"))
    assert means.shape == pa.shape and not np.array_equal(means, pa)


def test_represent_and_evaluate(trained):
    out = cli("represent.py", "--workdir", trained).stdout
    for name in ("interpolation", "arithmetic", "latent_scatter", "reconstruction"):
        assert (trained / "latent" / f"{name}.png").exists(), out
    cli("evaluate.py", "--workdir", trained, "--num_samples", 20, "--chunk", 10)
    res = json.loads((trained / "eval_iwae20_test.json").read_text())
    assert res["num_examples"] == 360 and res["nll"] > 0
    cli("evaluate.py", "--workdir", trained, "--log_prob_option", "num_samples=3", "--chunk", 3,
        "--num_examples", 50)  # any log_prob option by name, read as JSON where it parses
    assert json.loads((trained / "eval_iwae3_test.json").read_text())["num_examples"] == 50


def test_unknown_override_key_is_an_error(tmp_path):
    proc = cli("train.py", "--config", "configs/vae_digits.py:smoke", "--workdir", tmp_path,
               "--config.train.stpes=3", check=False)
    assert proc.returncode != 0 and "stpes" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_sample_on_a_non_workdir_names_the_problem(tmp_path):
    proc = cli("sample.py", "--workdir", tmp_path, check=False)
    assert proc.returncode != 0 and "config.json" in proc.stderr and "gen_jax training workdir" in proc.stderr


def test_evaluate_metrics_on_a_workdir(trained):
    out = cli("evaluate_metrics.py", "--workdir", trained, "--num_samples", 200, "--feature_steps", 100,
              "--ood", "digits", "--num_examples", 100, "--detection_k", 4).stdout
    quality = json.loads((trained / "metrics_quality.json").read_text())
    for key in ("fd", "kid", "precision", "recall", "identity", "test_accuracy", "noise_floor"):
        assert key in quality, out
    assert quality["num_generated"] == 200 and quality["reference"] == "digits/test"
    assert quality["noise_floor"]["fd"] < quality["fd"]  # 30 smoke steps are far from the data
    assert (trained / "metrics_quality.png").exists()  # the images scored
    detection = json.loads((trained / "metrics_detection.json").read_text())
    assert 0.0 <= detection["digits"]["nll"]["auroc"] <= 1.0 and detection["digits"]["num_out"] == 100
    inpainting = json.loads((trained / "metrics_inpainting.json").read_text())
    assert set(inpainting) >= {"left_half", "center_square", "random_half"}
    assert all(inpainting[m]["mse"] > 0 for m in ("left_half", "center_square", "random_half"))
    proc = cli("evaluate_metrics.py", "--workdir", trained, "--metrics", "fid", check=False)
    assert proc.returncode != 0 and "unknown metrics" in proc.stderr
    proc = cli("evaluate_metrics.py", "--workdir", trained, "--metrics", "inpainting", "--impute_option",
               "resample=5", check=False)  # a diffusion option given to a family without it
    assert proc.returncode != 0 and "impute_option 'resample'" in proc.stderr, proc.stderr[-500:]


def test_diffusion_sampler_table_and_guidance_grid(tmp_path):
    work = tmp_path / "diffusion"
    cli("train.py", "--config", "configs/diffusion_digits.py:smoke", "--workdir", work,
        "--config.train.num_devices=1", "--config.train.sample_every=0")
    cli("diffusion_samplers.py", "--workdir", work, "--samplers", "heun:edm", "--nfe", "4",
        "--num_samples", 20, "--chunk", 10, "--guidance", "2", "--guidance_sampler", "ddpm:uniform:3",
        "--feature_steps", 100)
    res = json.loads((work / "samplers.json").read_text())
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in res["samplers"]] == [("heun", 1, 3)]  # nearest 4
    assert all(r["samples_per_sec"] > 0 and np.isfinite(r["fd"]) for r in res["samplers"])
    assert [g["guidance"] for g in res["guidance"]] == [2.0] and len(res["guidance"][0]["accuracy_per_class"]) == 10
    assert (res["guidance"][0]["sampler"], res["guidance"][0]["steps"]) == ("ddpm", 2)  # 2 steps: 3 NFE
    assert (work / "guidance_2.png").exists() and "| heun | edm | 1 | 3 |" in (work / "samplers.md").read_text()


def test_a_conditional_gan_workdir_gets_the_metrics_it_has(tmp_path):
    work = tmp_path / "gan"
    cli("train.py", "--config", "configs/gan_digits.py:smoke", "--workdir", work, "--config.train.num_devices=1",
        "--config.model.conditional=True")
    # the digits feature network of 100 steps: the one the other tests train (and cache)
    cli("evaluate_metrics.py", "--workdir", work, "--num_samples", 50, "--feature_steps", 100)
    assert not (work / "metrics_detection.json").exists()  # no likelihood: not attempted
    assert not (work / "metrics_inpainting.json").exists()  # a conditional GAN does not impute
    cond = json.loads((work / "metrics_conditional.json").read_text())
    assert cond["num_samples"] == 50 and len(cond["accuracy_per_class"]) == 10
    assert cond["classifier_accuracy"] == pytest.approx(np.mean(cond["accuracy_per_class"]))
    assert np.isfinite(json.loads((work / "metrics_quality.json").read_text())["fd"])
    assert (work / "conditional.png").exists()


def test_two_sample_metrics_on_a_flow_workdir(tmp_path):
    work = tmp_path / "flow"
    cli("train.py", "--config", "configs/flow_toy2d.py:smoke", "--workdir", work, "--config.data.name=ring8",
        "--config.train.num_devices=1")
    cli("evaluate_metrics.py", "--workdir", work, "--num_samples", 300)
    res = json.loads((work / "metrics_two_sample.json").read_text())
    assert res["num_samples"] == 300 and res["reference"] == "ring8/test"
    assert res["mode_coverage"]["num_modes"] == 8
    assert res["mmd"]["mmd2_sum"] > res["noise_floor"]["mmd"]["mmd2_sum"]  # 10 smoke steps: not the data yet
    # An exact-likelihood family: its log_prob takes no importance samples; on the smoke config's 200 test points.
    cli("evaluate.py", "--workdir", work, "--num_examples", 200)
    ev, at_end = (json.loads((work / name).read_text()) for name in ("eval_exact_test.json", "eval.json"))
    assert ev["log_prob_kind"] == "exact" and ev["estimator"] == "exact"
    # Same parameters and split, and restore_run builds the flow's standardisation from the training split as
    # the run did (it once used the evaluated split: 2e-4 relative off), so the two evaluations agree.
    assert ev["nll"] == pytest.approx(at_end["nll"], rel=1e-6) and ev["step"] == at_end["step"]


def test_patch_conv_benchmark_profiles_the_gradient_by_op_kind():
    proc = cli("benchmark_patch_conv.py", "--channels", "4", "--layers", "1", "--batch", "2", "--size", "6",
               "--repeats", "1", "--profile")
    timing = json.loads(proc.stdout.splitlines()[0])
    assert timing["patch_gradient_ms"] > 0 and timing["flax_gradient_ms"] > 0
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "ms per call by XLA op kind" in line)
    assert float(lines[at].split("(sum ")[1].split(" ms")[0]) > 0
    rows = [line.split() for line in lines[at + 1:]]  # "  <ms> ms  <share> %  <op kind>"
    assert rows and all(len(r) == 5 and r[1] == "ms" and r[3] == "%" and float(r[0]) >= 0 for r in rows)


def test_ebm_seeds_table_and_partition_check(tmp_path):
    """ebm_seeds.py trains each seed in its own workdir and tabulates them with the energy-gap plot;
    ebm_partition.py sets AIS beside the quadrature of exp(-E) on one of them."""
    out = tmp_path / "seeds"
    cli("ebm_seeds.py", "--config", "configs/ebm_toy2d.py:smoke", "--out", out, "--seeds", 2,
        "--config.train.num_devices=1")
    rows = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in rows] == [0, 1] and not any(r["diverged"] for r in rows)
    assert all(np.isfinite(r["nll"]) and np.isfinite(r["gap_nats_paired"]) for r in rows)
    assert rows[0]["nll"] != rows[1]["nll"] and (out / "energy_gap.png").exists()
    assert "2/2 seeds did not diverge" in (out / "seeds.md").read_text()
    res = json.loads(cli("ebm_partition.py", "--workdir", out / "seed0", "--ais", "20x64", "--seeds", 1,
                         "--grid", 300).stdout)
    assert np.isfinite(res["nll_quadrature"]) and np.isfinite(res["nll_ais20x64"]["mean"])
    assert "nce_log_normalizer" in res


def test_gan_pathologies_dirac_part(tmp_path):
    """The closed-form part of gan_pathologies.py: the Dirac-GAN's distance from the equilibrium grows under
    simultaneous steps and vanishes with R1."""
    cli("gan_pathologies.py", "--parts", "dirac", "--out", tmp_path)
    res = json.loads((tmp_path / "dirac.json").read_text())
    assert res["simultaneous"]["after_1000_steps"] > 1.5 * res["simultaneous"]["start"]
    r1 = [v for k, v in res.items() if "R1" in k]
    assert r1 and all(v["after_1000_steps"] < 1e-3 for v in r1)
    assert (tmp_path / "dirac.png").exists()


def test_missing_data_classification_and_topics_scripts(tmp_path):
    """missing_data_classification.py tabulates every classifier at every fraction and mask (the generative
    ones marginalising exactly); topics.py fits LDA and the matrix factorisations on the fortunes."""
    out = tmp_path / "missing"
    cli("missing_data_classification.py", "--workdir", out, "--datasets", "digits", "--fractions", "0,0.5",
        "--masks", "random", "--num_test", 100, "--feature_steps", 50)
    res = json.loads((out / "missing_data.json").read_text())["datasets"]["digits"]["accuracy"]
    assert len(res) == 7 and all(len(v["random"]) == 2 for v in res.values())
    full = res["full Gaussian per class"]["random"]
    assert full[0] > 0.85 and full[1] < full[0] + 0.05  # complete images first, then half the pixels
    assert (out / "missing_data.png").exists() and "| full Gaussian per class |" in (out / "missing_data.md").read_text()
    topics = tmp_path / "topics"
    cli("topics.py", "--workdir", topics, "--num_topics", "4", "--vocab_size", 200, "--em_iters", 4,
        "--e_step_iters", 5, "--ranks", "3", "--max_docs", 400)
    res = json.loads((topics / "topics.json").read_text())
    lda = res["lda"]["4"]
    assert len(lda["topics"]) == 4 and len(lda["bound_per_word"]) == 4
    assert np.isfinite(lda["test_perplexity"]) and np.all(np.diff(lda["bound_per_word"]) > -1e-3)
    assert len(res["mf"]) == 2 and all(m["PMF (ALS) rank 3"]["rmse"] > 0 for m in res["mf"].values())
    assert "word co-occurrence" in (topics / "topics.md").read_text()
