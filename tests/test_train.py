"""The training engine: determinism, resume, NaN guard, multi-device equivalence, config errors."""

import json
import os
import subprocess
import sys

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import gen_jax.train as gt
from gen_jax.train import parallel
from gen_jax.train.config import load_config_file
from gen_jax.train.evaluators import split_log_likelihood
from gen_jax.train.step import make_train_step

from conftest import CONFIGS, smoke

def load_config(name: str, variant: str = "smoke") -> ml_collections.ConfigDict:
    return load_config_file(CONFIGS / f"{name}.py", variant)


def final_params(workdir):
    _, _, state, _ = gt.restore_run(workdir)
    return state.params


def test_same_seed_gives_bit_identical_params_and_another_seed_differs(tmp_path):
    gt.run(smoke(), tmp_path / "a")
    gt.run(smoke(), tmp_path / "b")
    gt.run(_with_seed(1), tmp_path / "c")
    chex.assert_trees_all_equal(final_params(tmp_path / "a"), final_params(tmp_path / "b"))
    different = [not np.array_equal(x, y) for x, y in
                 zip(jax.tree.leaves(final_params(tmp_path / "a")), jax.tree.leaves(final_params(tmp_path / "c")))]
    assert all(different)


def _with_seed(seed):
    c = smoke()
    c.seed = seed
    return c


def test_interrupted_then_resumed_run_ends_with_the_uninterrupted_params(tmp_path):
    gt.run(smoke(), tmp_path / "straight")
    stopped = gt.run(smoke(), tmp_path / "resumed", stop_requested=lambda step: step == 13)
    assert stopped["interrupted_at_step"] == 13 and not (tmp_path / "resumed" / "eval.json").exists()
    gt.run(smoke(), tmp_path / "resumed")
    chex.assert_trees_all_equal(final_params(tmp_path / "straight"), final_params(tmp_path / "resumed"))
    steps = [r["step"] for r in gt.read_metrics(tmp_path / "resumed") if "loss" in r]
    assert steps == sorted(set(steps))  # the resumed history reads as one run


def test_resume_from_an_older_checkpoint_replays_the_same_batches_and_keys(tmp_path):
    """A hard kill loses the steps after the last checkpoint; the restart must replay them identically."""
    gt.run(smoke(), tmp_path / "straight")
    work = tmp_path / "killed"

    def crash_at_13(step):
        if step == 13:
            raise KeyboardInterrupt  # like a kill: no checkpoint at 13, the last one is at 10

    with pytest.raises(KeyboardInterrupt):
        gt.run(smoke(), work, stop_requested=crash_at_13)
    _, _, state, _ = gt.restore_run(work)
    assert int(state.step) == 10
    gt.run(smoke(), work)
    chex.assert_trees_all_equal(final_params(tmp_path / "straight"), final_params(work))


def test_resuming_under_other_settings(tmp_path, capsys):
    """A checkpoint is bound to its model, training data and seed: changing one on resume is an error that
    names it and writes nothing. Other settings (here more steps) may change; the old config is kept."""
    work = tmp_path / "w"
    gt.run(smoke(), work, stop_requested=lambda step: step == 10)
    files = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    latent, steps = smoke().model.latent_dim, smoke().train.steps
    with pytest.raises(ValueError, match=rf"other model.latent_dim \(model.latent_dim: {latent} -> {latent + 1}\)"):
        gt.run(smoke(model__latent_dim=latent + 1), work)
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == files
    capsys.readouterr()
    gt.run(smoke(train__steps=steps + 4), work)
    assert f"train.steps: {steps} -> {steps + 4}" in capsys.readouterr().out
    assert json.loads((work / "config.before_step_0000010.json").read_text())["train"]["steps"] == steps
    assert json.loads((work / "config.json").read_text())["train"]["steps"] == steps + 4
    _, _, state, _ = gt.restore_run(work)
    assert int(state.step) == steps + 4


def test_non_finite_loss_stops_with_the_step_named_and_keeps_the_last_good_checkpoint(tmp_path):
    work = tmp_path / "w"
    gt.run(smoke(), work, stop_requested=lambda step: step == 10)
    good = final_params(work)
    bad = smoke(optim__learning_rate=1e30)
    with pytest.raises(gt.NonFiniteError, match=r"became non-finite at step 1[1-4] \(non-finite .* at step 15\).* the last checkpoint, step 10, is kept"):
        gt.run(bad, work)
    _, _, state, _ = gt.restore_run(work)
    assert int(state.step) == 10
    chex.assert_trees_all_equal(good, state.params)


def test_unknown_config_key_is_an_error(tmp_path):
    c = smoke()
    with c.unlocked():
        c.train.stesp = 5
    with pytest.raises(KeyError, match="unknown config key 'train.stesp'"):
        gt.run(c, tmp_path)


def test_unknown_family_and_dataset_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model.family 'energy'"):
        gt.run(smoke(model__family="energy"), tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        gt.run(smoke(data__name="svhn"), tmp_path)


def test_batch_not_divisible_by_device_count_is_an_error(tmp_path):
    c = smoke(train__num_devices=4, train__batch_size=30)
    with pytest.raises(ValueError, match="batch size 30 is not divisible by the device count 4"):
        gt.run(c, tmp_path)


@pytest.mark.parametrize("parallelism,ynn_fusion", [("pmap", True), ("sharded", True), ("pmap", False)])
def test_four_devices_equal_one_device_on_the_global_batch(parallelism, ynn_fusion):
    """... also with per-program compiler options (a pmap takes them at its first call's compilation)."""
    assert jax.local_device_count() >= 4, "conftest sets 4 host devices"
    options = parallel.cpu_compiler_options(ynn_fusion)
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(32, 5)).astype(np.float32), "y": rng.normal(size=(32, 2)).astype(np.float32)}

    def loss_fn(params, b, key):
        del key  # deterministic loss: both runs must see the same gradients
        pred = jnp.tanh(b["x"] @ params["w1"]) @ params["w2"]
        loss = jnp.mean((pred - b["y"]) ** 2)
        return loss, {"loss": loss}

    params = {"w1": jnp.asarray(rng.normal(size=(5, 8)), jnp.float32),
              "w2": jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)}
    opt = optax.adam(1e-2)
    single = parallel.compile_step(make_train_step(loss_fn, opt, ema_decay=0.9), 1, compiler_options=options)
    multi = parallel.compile_step(make_train_step(loss_fn, opt, ema_decay=0.9, axis_name=parallel.AXIS_NAME), 4,
                                  parallelism=parallelism, compiler_options=options)
    s1 = gt.create_train_state(params, opt, ema=True)
    s4 = parallel.replicate(gt.create_train_state(params, opt, ema=True), 4, parallelism)
    key = jax.random.key(0)
    for _ in range(3):
        s1, m1 = single(s1, batch, key)
        s4, m4 = multi(s4, {k: v.reshape(4, 8, -1) for k, v in batch.items()}, key)
    if parallelism == "sharded":  # one array replicated over the 4-device mesh, a copy on each device
        leaf = jax.tree.leaves(s4.params)[0]
        assert len(leaf.sharding.device_set) == 4 and leaf.sharding.is_fully_replicated
    parallel.check_replicas_agree(s4, 4, parallelism=parallelism)
    s4 = parallel.unreplicate(s4, 4, parallelism)
    m4 = parallel.unreplicate(m4, 4, parallelism)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s4)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(float(m1["loss"]), float(m4["loss"]), rtol=1e-5)


def test_cpu_ynn_fusion_off_reaches_the_compiled_program():
    """``train.cpu_ynn_fusion=False``'s option, as ``compile_step`` passes it, compiles a convolution's step
    without XLA:CPU's YNNPACK fusion (and the default with it): the option's name is still XLA's."""
    conv = nn.Conv(32, (3, 3))
    x = jnp.ones((32, 28, 28, 32))
    params = conv.init(jax.random.key(0), x)

    def step(p, batch, key):
        del key
        return jax.grad(lambda q: jnp.sum(nn.gelu(conv.apply(q, batch)) ** 2))(p)

    def compiled_text(ynn_fusion):
        fn = parallel.compile_step(step, 1, compiler_options=parallel.cpu_compiler_options(ynn_fusion))
        return fn.lower(params, x, jax.random.key(0)).compile().as_text()

    # the fused ops' names ("%ynn_fusion.1 = ..."), not the source names in the metadata
    assert "%ynn_fusion" in compiled_text(True) and "%ynn_fusion" not in compiled_text(False)


def _child_stdout(script: str, *args: str, env: dict) -> str:
    """What ``script`` prints, run in a fresh interpreter with ``env`` (fresh processes: gen_jax.host_memory's
    settings are process-wide)."""
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                          env=env).stdout


def _child_json(script: str, *args: str, env: dict) -> dict:
    """The JSON of the last line ``script`` prints (:func:`_child_stdout`)."""
    return json.loads(_child_stdout(script, *args, env=env).strip().splitlines()[-1])


MEDIAN_FAULTS = r"""
import json, resource, statistics

def median_faults(call, calls, skip=0):
    # the median of the minor page faults of call(i) over `calls` calls after `skip` unmeasured ones (the heap grows
    # to its peak in the first few; a one-off growth later is no per-call cost), and each count
    counts = []
    for i in range(skip + calls):
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        call(i)
        if i >= skip:
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
    return {"faults": statistics.median(counts), "counts": counts}
"""

FAULTS_SCRIPT = MEDIAN_FAULTS + r"""
import gen_jax  # before JAX: it tunes malloc (gen_jax.host_memory)
from gen_jax import host_memory
import jax, jax.numpy as jnp, numpy as np
from gen_jax.data.images import ImageDataset
from gen_jax.families import build_family
from gen_jax.train.config import load_config_file
import sys
c = load_config_file(sys.argv[1])  # the DCGAN step, batch 64, on random images
rng = np.random.default_rng(0)
data = ImageDataset("mnist", "train", rng.integers(0, 256, (64, 28, 28, 1)).astype(np.uint8), np.zeros(64, np.int32),
                    num_levels=256, num_classes=10)
trainer = build_family(c, data).trainer
state = trainer.init_state(jax.random.key(0), data.arrays())
step = jax.jit(trainer.make_step(None), donate_argnums=0)
batch = {"image": jnp.asarray(data.image)}

def train_step(i):
    global state
    state, _ = step(state, batch, jax.random.key(i))
    jax.block_until_ready(state)

print(json.dumps({"applied": host_memory.applied, **median_faults(train_step, 10, skip=10)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_import_gen_jax_stops_the_per_step_page_faults():
    """With glibc's defaults every DCGAN training step faults in ~14,000 fresh pages (its temporaries come as new
    ``mmap`` pages); after ``import gen_jax`` (gen_jax.host_memory) none, and ``GEN_JAX_MALLOC_DEFAULTS=1``
    keeps the defaults. Fresh processes: the setting is process-wide. The median step of steps 11-20: a late
    one-off growth of the heap (CI once saw 743 faults in five steps; here 0 or 1 per step after the first five,
    three runs) is not a per-step cost."""
    # a plain process: without the suite's XLA flags (4 host devices, fast compilation) and compilation cache
    plain = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("JAX_")}

    def faults(**env):
        return _child_json(FAULTS_SCRIPT, str(CONFIGS / "gan_mnist.py"), env={**plain, **env})

    tuned, default = faults(), faults(GEN_JAX_MALLOC_DEFAULTS="1")
    assert tuned["applied"] is True and default["applied"] is False
    assert default["faults"] > 5000, default  # 14,500 measured
    assert tuned["faults"] < 50, tuned


UNET_FAULTS_SCRIPT = MEDIAN_FAULTS + r"""
import gen_jax  # before JAX: gen_jax.host_memory
from gen_jax import host_memory
import jax, jax.numpy as jnp
from gen_jax.nn.unet import UNet
net = UNet(channels=(8, 16), conv="flax")  # the diffusion U-Net, small, at batch 128: temporaries over 64 MiB
x = jax.random.normal(jax.random.key(0), (128, 28, 28, 1))
params = net.init(jax.random.key(1), x, jnp.zeros((128,)))
grad = jax.jit(jax.grad(lambda p, t: jnp.mean((net.apply(p, x, t) - x) ** 2)))
call = lambda i: jax.block_until_ready(grad(params, jnp.full((128,), 0.1 * i)))  # the first (i = 0) compiles
print(json.dumps({"inline": host_memory.inline, **median_faults(call, 5, skip=1)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_import_gen_jax_runs_cpu_programs_inline_so_large_temporaries_reuse_memory():
    """A U-Net gradient at batch 128 has temporaries larger than a worker thread's malloc arena (64 MiB): run on
    JAX's dispatch thread it faults in ~58,000 fresh pages per call even with gen_jax's malloc settings; run
    inline (``import gen_jax``'s default) ~2,300. ``GEN_JAX_CPU_ASYNC_DISPATCH=1`` keeps JAX's dispatch."""
    # one host device (the single-device program is what runs inline); the suite's fast-compiling flags
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")} | {"XLA_FLAGS": flags}

    def faults(**extra):
        return _child_json(UNET_FAULTS_SCRIPT, env={**env, **extra})

    inline, dispatched = faults(), faults(GEN_JAX_CPU_ASYNC_DISPATCH="1")
    assert inline["inline"] is True and dispatched["inline"] is False
    assert dispatched["faults"] > 20_000, dispatched  # 57,900 measured
    assert inline["faults"] < 8_000, inline  # 2,300


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="with glibc's malloc settings only")
def test_cpu_programs_run_inline_only_when_gen_jax_comes_before_the_backend():
    """The setting is read when JAX makes its CPU client: imported after a computation, gen_jax leaves JAX's
    dispatch as it is (and says so); imported first, it turns the asynchronous dispatch off."""
    script = ("import jax, jax.numpy as jnp\n{first}\nimport gen_jax\nfrom gen_jax import host_memory\n"
              "print(host_memory.inline, jax.config.read('jax_cpu_enable_async_dispatch'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "GEN_JAX_MALLOC", "GEN_JAX_CPU"))}

    def run(first):
        return _child_stdout(script.format(first=first), env=env).split()[-2:]

    assert run("") == ["True", "False"]
    assert run("jnp.zeros(3).block_until_ready()") == ["False", "True"]


def test_an_unknown_parallelism_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="train.parallelism must be one of"):
        gt.run(smoke(train__num_devices=4, train__parallelism="pjit"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_full_loop_on_four_devices(tmp_path):
    results = gt.run(smoke(train__num_devices=4), tmp_path)
    assert np.isfinite(results["eval"]["nll"]) and results["step"] == 20
    assert (tmp_path / "samples.png").stat().st_size > 0


def test_run_writes_metrics_tensorboard_samples_and_eval(tmp_path):
    results = gt.run(smoke(), tmp_path)
    records = gt.read_metrics(tmp_path)
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20]
    first, last = records[0]["loss"], [r for r in records if "loss" in r][-1]["loss"]
    assert last < first  # it learns
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_0000010.png", "step_0000020.png"]
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["nll/iwae10"] <= ev["nll/elbo"] + 0.5 and results["eval"]["bits_per_dim/iwae10"] > 0
    # the headline numbers are the tightest bound's, and say what they are
    assert ev["nll"] == ev["nll/iwae10"] and ev["nll_estimator"] == "iwae10" and ev["log_prob_kind"] == "lower_bound"


# smoke variants that another test already trains and evaluates in full through the CLI (the suite's time)
SMOKE_TRAINED_ELSEWHERE = {
    "diffusion_digits": "test_experiments.py::test_diffusion_sampler_table_and_guidance_grid",
    "flow_toy2d": "test_experiments.py::test_two_sample_metrics_on_a_flow_workdir",
}


def test_configs_trained_elsewhere_exist():
    assert set(SMOKE_TRAINED_ELSEWHERE) <= {p.stem for p in CONFIGS.glob("*.py")}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.py") if p.stem not in SMOKE_TRAINED_ELSEWHERE))
def test_every_config_has_a_smoke_variant_that_trains(tmp_path, name):
    c = load_config(name)
    c.train.num_devices = 1
    results = gt.run(c, tmp_path)
    train = {k: v for k, v in results["train"].items() if k != "steps_per_sec"}
    assert train and all(np.isfinite(v) for v in train.values())  # loss, or both players' losses
    if c.model.family == "gan":  # no likelihood: samples, and the toys' two-sample evaluation
        assert (tmp_path / "samples.png").exists()
        if c.data.name == "pacgan_grid25":
            assert results["eval"]["num_modes"] == 25 and 0 <= results["eval"]["modes_hit"] <= 25
        return
    assert np.isfinite(results["eval"]["nll"]) and np.isfinite(results["eval"]["bits_per_dim"])


def test_flow_on_a_toy_learns_reports_against_the_entropy_and_restores_as_trained(tmp_path):
    c = load_config("flow_toy2d")
    c.data.name = "ring8"
    c.train.steps, c.train.num_devices = 200, 2  # the loop's pmap path with vector data
    c.train.checkpoint_every, c.train.sample_every = 100, 0  # the final picture only (each: 90,000 densities)
    c.train.log_every = 10
    c.train.batch_size = 128
    c.model.hidden, c.model.num_layers = (32, 32), 4
    c.data.toy_num_train, c.data.toy_num_eval = 10_000, 2_000
    results = gt.run(c, tmp_path)["eval"]
    first = gt.read_metrics(tmp_path)[0]["loss"]
    assert results["nll"] < first - 1.0  # it learns
    assert results["nll"] > results["true_entropy"] - 0.1  # no test NLL far below the entropy (a bug would be)
    assert results["num_modes"] == 8 and results["modes_hit"] >= 4
    assert (tmp_path / "samples.png").exists()
    # A flow standardises its input with the training split's mean and std: restored for the test split it
    # must still take them from the training split (it once took the test split's: 2e-4 relative off).
    config, family, state, test = gt.restore_run(tmp_path, "test")
    nll = split_log_likelihood(family, state.eval_params, test.take(config.eval.num_examples), jax.random.key(0),
                               batch_size=500)["nll"]
    assert nll == pytest.approx(results["nll"], rel=1e-6)


def test_ema_params_are_kept_and_used(tmp_path):
    c = smoke(train__ema_decay=0.99)
    gt.run(c, tmp_path)
    _, _, state, _ = gt.restore_run(tmp_path)
    assert state.ema_params is not None
    assert not np.array_equal(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])


def test_model_selection_keeps_the_best_params_and_patience_stops_early(tmp_path, monkeypatch):
    from gen_jax.train import loop
    from gen_jax.train.checkpoint import CheckpointStore

    scripted = {5: 3.0, 10: 1.0, 15: 2.0, 20: 2.5, 25: 0.5}  # best at 10, then two worse: stop at 20
    seen = []

    def score(family, params, split, rng, **kwargs):
        seen.append(len(seen) * 5 + 5)
        return {"nll": scripted[seen[-1]]}

    monkeypatch.setattr(loop, "split_log_likelihood", score)
    c = smoke(train__steps=40, train__checkpoint_every=5, train__max_checkpoints=10, eval__select_every=5,
              eval__select_split="test", eval__select_patience=2)
    results = gt.run(c, tmp_path)
    assert seen == [5, 10, 15, 20] and results["eval"]["selected_step"] == 10 and results["step"] == 10
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["selected_step"] == 10 and ev["select_score"] == 1.0
    _, _, best, _ = gt.restore_run(tmp_path, checkpoint="best")
    store = CheckpointStore(tmp_path / "checkpoints")
    assert store.latest_step() == 20
    at_10, _ = store.restore(best, step=10)
    store.close()
    chex.assert_trees_all_equal(best.params, at_10.params)
    # A restart after the early stop does not train on.
    n_loss = (tmp_path / "metrics.jsonl").read_text().count('"loss"')
    gt.run(c, tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text().count('"loss"') == n_loss and seen == [5, 10, 15, 20]


def test_iwae_objective_and_selection_errors(tmp_path):
    with pytest.raises(ValueError, match="no beta"):
        gt.run(smoke(loss__num_importance_samples=4, loss__beta=2.0), tmp_path / "a")
    with pytest.raises(ValueError, match="has no split 'valid'"):
        gt.run(smoke(eval__select_every=5), tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no model selection"):
        gt.run(smoke(train__steps=2), tmp_path / "c")
        gt.restore_run(tmp_path / "c", checkpoint="best")


def test_a_warm_up_without_a_warm_up_schedule_is_an_error(tmp_path):
    c = smoke(optim__warmup_steps=100)  # with the default cosine schedule it would be silently ignored
    with pytest.raises(ValueError, match="needs optim.schedule='warmup_cosine'"):
        gt.run(c, tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # refused before anything was written
    c.optim.schedule = "warmup_cosine"
    schedule = gt.make_schedule(c.optim, 1000)
    assert float(schedule(0)) == 0.0 and float(schedule(100)) == pytest.approx(c.optim.learning_rate)


def test_after_its_first_round_the_loop_compiles_nothing(tmp_path):
    """Every jitted function the loop calls (the step, sampling, the selection bound, checkpoint and metric
    fetches) compiles once: between the first round (step 5) and the final evaluation no XLA compilation
    happens. The VAE's selection bound once compiled again at every selection."""
    from jax._src.dispatch import BACKEND_COMPILE_EVENT

    compiles, at = [], {"step": 0}

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            compiles.append(at["step"])

    def mark(step):
        at["step"] = step
        return False

    jax.monitoring.register_event_duration_secs_listener(listener)
    cache = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)  # a cache hit would hide a recompilation
    try:
        c = smoke(train__steps=20, train__sample_every=5, train__checkpoint_every=5, train__log_every=5,
                  eval__select_every=5, eval__select_split="test", eval__select_num_examples=50,
                  eval__select_importance_samples=4)
        gt.run(c, tmp_path, stop_requested=mark)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        jax.config.update("jax_enable_compilation_cache", cache)
    assert compiles and not [s for s in compiles if 5 < s < 20], compiles
