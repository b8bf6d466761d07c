"""The family API: families defined outside the library (two players with two optimizers; state beyond
parameters; fitted in closed form) get every engine guarantee, and the library's families declare what they
can do."""

import json
import types

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax import lax
from scipy import stats

import gen_jax.train as gt
from gen_jax.families import FAMILIES, build_family, register_family
from gen_jax.families.base import Family, LogProb, Trainer
from gen_jax.train.config import default_config, load_config_file
from gen_jax.train.state import create_train_state

from conftest import CONFIGS, perturb as perturbed


def _toy_config(family: str, **train):
    c = default_config(family)
    c.data.name = "ring8"
    c.data.toy_num_train, c.data.toy_num_eval = 256, 128
    c.train.update({**dict(steps=12, batch_size=32, num_devices=1, log_every=4, checkpoint_every=4,
                           sample_every=0, progress_bar=False), **train})
    return c


# ---------------------------------------------------------------- a two-player family with two optimizers


def _duel_build(config, data):
    """Player ``a`` fits the data's mean; player ``b`` chases ``a`` (a loss that reads the other player's
    parameters): two losses, two optax optimizers with their own learning rates, one step."""
    opts = {"a": optax.adam(config.optim.a.learning_rate), "b": optax.sgd(config.optim.b.learning_rate)}

    def init_state(rng, batch):
        ka, kb = jax.random.split(rng)
        params = {"a": jax.random.normal(ka, (2,)), "b": jax.random.normal(kb, (2,))}
        return gt.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                             opt_state={p: opts[p].init(params[p]) for p in opts})

    def make_step(axis_name):
        def step(state, batch, rng):
            del rng  # deterministic players: 4 devices must give exactly the 1-device update
            loss_a = lambda a: jnp.mean(jnp.sum((batch["x"] - a) ** 2, -1))
            loss_b = lambda b: jnp.sum((b - state.params["a"]) ** 2)
            grads = {"a": jax.grad(loss_a)(state.params["a"]), "b": jax.grad(loss_b)(state.params["b"])}
            metrics = {"loss_a": loss_a(state.params["a"]), "loss_b": loss_b(state.params["b"])}
            if axis_name is not None:
                grads, metrics = lax.pmean((grads, metrics), axis_name)
            params, opt_state = {}, {}
            for p, opt in opts.items():
                updates, opt_state[p] = opt.update(grads[p], state.opt_state[p], state.params[p])
                params[p] = optax.apply_updates(state.params[p], updates)
            return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

        # The loop must never retrace the step (under pmap its first call traces it twice here).
        return chex.assert_max_traces(step, n=1 if axis_name is None else 2)

    return Family("duel", None, Trainer(init_state, make_step))


def _duel_defaults():
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict({"family": "duel"})
    c.optim = ml_collections.ConfigDict({"a": {"name": "adam", "learning_rate": 0.05},
                                         "b": {"name": "sgd", "learning_rate": 0.1}})
    return c


# ---------------------------------------------------------------- a family with a replay buffer in aux

BUFFER = 48


def _replay_build(config, data):
    """Parameters fit the mean of data and replayed points; ``aux`` holds a ring buffer of past batches
    (jittered with the step's *shared* key and gathered over devices, so every device writes the same)."""
    opt = optax.adam(0.05)

    def init_state(rng, batch):
        aux = {"buffer": jnp.zeros((BUFFER, 2)), "position": jnp.zeros((), jnp.int32)}
        return create_train_state(jnp.zeros((2,)), opt, aux=aux)

    def make_step(axis_name):
        def step(state, batch, rng):
            shared = jax.random.fold_in(rng, state.step)  # the same on every device
            x = batch["x"] if axis_name is None else lax.all_gather(batch["x"], axis_name, tiled=True)
            new = x + 0.1 * jax.random.normal(shared, x.shape)
            idx = (state.aux["position"] + jnp.arange(x.shape[0])) % BUFFER
            buffer = state.aux["buffer"].at[idx].set(new)
            loss_fn = lambda w: jnp.mean((batch["x"] - w) ** 2) + 0.5 * jnp.mean((buffer - w) ** 2)
            loss, grads = jax.value_and_grad(loss_fn)(state.params)
            if axis_name is not None:
                loss, grads = lax.pmean((loss, grads), axis_name)
            updates, opt_state = opt.update(grads, state.opt_state, state.params)
            aux = {"buffer": buffer, "position": (state.aux["position"] + x.shape[0]) % BUFFER}
            return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                                 opt_state=opt_state, aux=aux), {"loss": loss}

        return step

    return Family("replay", None, Trainer(init_state, make_step))


# ---------------------------------------------------------------- a family fitted in closed form


def _gaussian_build(config, data):
    """Maximum-likelihood Gaussian: fitted once (no steps), exact log p."""

    def init_state(rng, batch):
        d = batch["x"].shape[1]
        return create_train_state({"mean": jnp.zeros(d), "cov": jnp.eye(d)}, optax.identity())

    def fit(state, arrays, rng):
        x = jnp.asarray(arrays["x"], jnp.float32)
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / len(x)
        return state.replace(params={"mean": mean, "cov": cov}), {"train_nll": -jnp.mean(log_p(
            {"mean": mean, "cov": cov}, {"x": x}, None))}

    def log_p(params, batch, rng):
        return jax.scipy.stats.multivariate_normal.logpdf(batch["x"], params["mean"], params["cov"])

    return Family("gaussian", None, Trainer(init_state, fit=fit), log_prob=LogProb(log_p, "exact"))


def _module(name, build, defaults=None):
    def config_defaults():
        if defaults is not None:
            return defaults()
        c = ml_collections.ConfigDict()
        c.model = ml_collections.ConfigDict({"family": name})
        return c

    return types.SimpleNamespace(NAME=name, config_defaults=config_defaults, build=build)


@pytest.fixture(autouse=True, scope="module")
def _toy_families():
    for m in (_module("duel", _duel_build, _duel_defaults), _module("replay", _replay_build),
              _module("gaussian", _gaussian_build)):
        register_family(m)
    yield
    for name in ("duel", "replay", "gaussian"):
        FAMILIES.pop(name)


def _state(workdir):
    return gt.restore_run(workdir)[2]


def _run(config, workdir, **kwargs):
    chex.clear_trace_counter()  # each run builds its own step: at most one trace per run
    return gt.run(config, workdir, **kwargs)


@pytest.mark.parametrize("family", ["duel", "replay"])
def test_toy_family_is_reproducible_resumes_exactly_and_runs_on_four_devices(tmp_path, family, monkeypatch):
    _run(_toy_config(family), tmp_path / "a")
    _run(_toy_config(family), tmp_path / "b")
    a = _state(tmp_path / "a")
    chex.assert_trees_all_equal(a, _state(tmp_path / "b"))  # params, both optimizer states, aux
    other = _toy_config(family)
    other.seed = 1
    _run(other, tmp_path / "c")
    assert not np.array_equal(np.asarray(jax.tree.leaves(a.params)[0]),
                              np.asarray(jax.tree.leaves(_state(tmp_path / "c").params)[0]))
    # interrupted between checkpoints (a kill after step 6: the checkpoint at 4 is the last), then resumed
    def crash(step):
        if step == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _run(_toy_config(family), tmp_path / "r", stop_requested=crash)
    _run(_toy_config(family), tmp_path / "r")
    chex.assert_trees_all_equal(a, _state(tmp_path / "r"))
    # 4 devices, the same global batch: the same update (aux bit-identical by the replication rule); these two
    # runs compile with XLA:CPU's fusion emitters, as real runs do (conftest turns them off for compile speed,
    # and under that flag XLA fuses the pmap and sharded programs differently: 1 ulp apart)
    import gen_jax.train.loop as loop
    options = loop.cpu_compiler_options
    monkeypatch.setattr(loop, "cpu_compiler_options",
                        lambda ynn: {**(options(ynn) or {}), "xla_cpu_use_fusion_emitters": True})
    _run(_toy_config(family, num_devices=4), tmp_path / "p")
    p = _state(tmp_path / "p")
    chex.assert_trees_all_close(a.params, p.params, rtol=1e-5, atol=1e-6)
    if family == "replay":
        chex.assert_trees_all_equal(a.aux, p.aux)
        assert int(a.aux["position"]) == (12 * 32) % BUFFER
    # the mesh-sharded path (jit + shard_map, the state one replicated array) runs the same per-device step
    _run(_toy_config(family, num_devices=4, parallelism="sharded"), tmp_path / "s")
    chex.assert_trees_all_equal(p, _state(tmp_path / "s"))


def test_aux_that_diverges_across_devices_is_an_error(tmp_path, monkeypatch):
    def diverging_build(config, data):
        family = _replay_build(config, data)
        make_step = family.trainer.make_step

        def make(axis_name):
            inner = make_step(axis_name)

            def step(state, batch, rng):
                state, metrics = inner(state, batch, rng)
                own = state.aux["buffer"] + lax.axis_index(axis_name)  # breaks the rule
                return state.replace(aux={**state.aux, "buffer": own}), metrics
            return step
        return Family("replay", None, Trainer(family.trainer.init_state, make))

    monkeypatch.setattr(FAMILIES["replay"], "build", diverging_build)
    for parallelism in ("pmap", "sharded"):
        with pytest.raises(RuntimeError, match=r"state.aux\['buffer'\] differs between devices"):
            gt.run(_toy_config("replay", num_devices=4, parallelism=parallelism), tmp_path / parallelism)


def test_a_fitted_family_trains_once_and_evaluates_exactly(tmp_path):
    c = _toy_config("gaussian")
    c.evals.nll = dict(type="log_likelihood")
    res = gt.run(c, tmp_path)
    from gen_jax.train.loop import load_data

    x, test = load_data(c, "train").x.astype(np.float64), load_data(c, "test").take(200).x
    mean, cov = x.mean(0), np.cov(x.T, bias=True)
    expected = -stats.multivariate_normal(mean, cov).logpdf(test).mean()
    assert res["step"] == 1 and res["eval"]["nll"] == pytest.approx(expected, rel=1e-4)
    assert res["eval"]["log_prob_kind"] == "exact"
    assert gt.run(c, tmp_path)["eval"]["nll"] == res["eval"]["nll"]  # a re-run restores, does not refit


def test_selection_compiles_the_vae_bound_once(tmp_path, monkeypatch):
    """The issue measured 2 compilations per selection on vae_digits: each call rebuilt its bound."""
    from gen_jax.families import vae

    traces = []
    real = vae.make_importance_weighted_bound

    def counting(*args, **kwargs):
        bound = real(*args, **kwargs)

        def traced(params, batch, rng):
            traces.append(kwargs["num_samples"])  # runs once per trace, not per call
            return bound(params, batch, rng)
        return traced

    monkeypatch.setattr(vae, "make_importance_weighted_bound", counting)
    c = load_config_file(CONFIGS / "vae_digits.py", "smoke")
    c.train.num_devices, c.train.steps = 1, 12
    c.eval.select_every, c.eval.select_split, c.eval.select_num_examples = 3, "test", 50
    c.eval.select_importance_samples = 4
    gt.run(c, tmp_path)
    assert traces.count(c.eval.select_importance_samples) == 1  # 4 selections, one trace


# ---------------------------------------------------------------- capabilities of the library's families


def _built(name, **model):
    from gen_jax.train.loop import init_state, load_data

    c = load_config_file(CONFIGS / f"{name}.py", "smoke")
    c.model.update(model)
    data = load_data(c, "train")
    family = build_family(c, data)
    return c, family, init_state(c, family, data), data


def test_a_family_module_imports_first_in_a_fresh_interpreter():
    """The families import the engine's state and optimizers, the engine the registry: importing a family
    module before anything else once failed with a circular ImportError."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "import gen_jax.families.diffusion, gen_jax.families; "
                    "assert 'diffusion' in gen_jax.families.FAMILIES"], check=True)


def test_a_workdir_from_before_a_familys_new_keys_restores_and_resumes(tmp_path):
    """config.json of a diffusion run made before the image keys existed (model.t_min, time_grid, channels, ...)
    and before the engine's train.parallelism and train.cpu_ynn_fusion."""
    c = load_config_file(CONFIGS / "diffusion_toy2d.py", "smoke")
    c.train.num_devices, c.train.steps, c.train.sample_every = 1, 2, 0
    gt.run(c, tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    for key in ("t_min", "time_grid", "channels", "conditional", "likelihood_samples", "impute_resample"):
        del stored["model"][key]
    for key in ("parallelism", "cpu_ynn_fusion"):
        del stored["train"][key]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    config, family, state, _ = gt.restore_run(tmp_path, "test")
    assert config.model.time_grid == "" and int(state.step) == 2
    assert config.train.parallelism == "pmap" and config.train.cpu_ynn_fusion is True
    assert gt.run(c, tmp_path)["step"] == 2  # the same run: resumed, nothing to redo, no refusal


def test_declared_capabilities_and_log_prob_kinds():
    expected = {"vae_digits": ({"sample", "log_prob", "encode", "decode", "impute", "anomaly_score"}, "lower_bound"),
                "flow_toy2d": ({"sample", "log_prob", "encode", "decode", "anomaly_score"}, "exact"),
                "flow_digits": ({"sample", "log_prob", "anomaly_score"}, "lower_bound"),
                "made_digits": ({"sample", "log_prob", "anomaly_score"}, "exact"),
                "pixelcnn_digits": ({"sample", "log_prob", "impute", "anomaly_score"}, "exact"),
                "diffusion_toy2d": ({"sample", "log_prob", "encode", "decode", "anomaly_score"}, "exact"),
                "diffusion_digits": ({"sample", "log_prob", "encode", "decode", "impute", "anomaly_score"},
                                     "lower_bound")}
    for name, (caps, kind) in expected.items():
        _, family, state, data = _built(name)
        assert set(family.capabilities) == caps and family.log_prob.kind == kind, name
        batch = {k: v[:4] for k, v in data.arrays().items()}
        np.testing.assert_allclose(family.anomaly_score(state.params, batch, jax.random.key(0)),
                                   -np.asarray(family.log_prob(state.params, batch, jax.random.key(0))), rtol=1e-6)
    with pytest.raises(ValueError, match="family 'made' has no impute"):
        _built("made_digits")[1].require("impute")
    with pytest.raises(ValueError, match=r"takes no option \['num_samples'\]"):
        _built("made_digits")[1].log_prob.function(num_samples=5)


def test_samples_are_draws_in_the_data_format_and_differ_by_seed():
    _, family, state, data = _built("vae_digits")
    a = np.asarray(family.sample(state.params, jax.random.key(0), 16))
    b = np.asarray(family.sample(state.params, jax.random.key(1), 16))
    assert a.dtype == np.int32 and a.shape == (16, *data.image_shape) and 0 <= a.min() and a.max() <= 16
    assert not np.array_equal(a, b)
    mean = np.asarray(family.sample(state.params, jax.random.key(0), 16, observation="mean"))
    assert mean.dtype == np.float32 and not np.array_equal(np.round(mean), mean)  # the named, separate choice
    _, cvae, cstate, _ = _built("cvae_digits")
    y = np.asarray([3] * 4)
    assert cvae.sample(cstate.params, jax.random.key(0), 4, labels=y).shape == (4, 8, 8, 1)
    _, flow, fstate, fdata = _built("flow_toy2d")
    z = flow.encode(fstate.params, {"x": fdata.x[:8]})
    np.testing.assert_allclose(flow.decode(fstate.params, z), fdata.x[:8], atol=1e-4)


def test_image_diffusion_samples_levels_guides_imputes_and_names_its_estimators():
    from gen_jax.families.diffusion import sampler_evaluations

    _, family, state, data = _built("diffusion_digits")
    params = perturbed(state.params, 0.3)
    y = jnp.asarray([3, 3, 7, 7])
    draws = {g: np.asarray(family.sample(params, jax.random.key(0), 4, labels=y, guidance=g)) for g in (0.0, 3.0)}
    assert all(d.dtype == np.int32 and d.shape == (4, 8, 8, 1) and 0 <= d.min() and d.max() <= 16
               for d in draws.values())
    assert not np.array_equal(draws[0.0], draws[3.0])  # guidance changes the samples, the seed alone fixed
    assert not np.array_equal(draws[3.0], np.asarray(family.sample(params, jax.random.key(1), 4, labels=y,
                                                                   guidance=3.0)))
    unclipped = np.asarray(family.sample(params, jax.random.key(0), 4, labels=y, guidance=3.0, clip=False))
    assert unclipped.shape == draws[3.0].shape and not np.array_equal(unclipped, draws[3.0])  # x0_hat clipped
    with pytest.raises(ValueError, match="unknown sampler 'rk45'"):
        family.sample(params, jax.random.key(0), 4, sampler="rk45")
    assert [sampler_evaluations(s, 10) for s in ("ddpm", "ddim", "euler", "heun")] == [11, 11, 11, 21]
    x = data.image[:6].astype(np.float32) / 16
    mask = np.zeros_like(x)
    mask[:, :, :4] = 1
    filled = family.impute(params, x, mask, jax.random.key(2))
    np.testing.assert_allclose(filled[:, :, :4], x[:, :, :4], atol=1e-6)  # what is known stays
    assert not np.allclose(filled[:, :, 4:], x[:, :, 4:])
    repainted = family.impute(params, x, mask, jax.random.key(2), resample=2, steps=3)  # RePaint, as an option
    np.testing.assert_allclose(repainted[:, :, :4], x[:, :, :4], atol=1e-6)
    assert not np.allclose(repainted, filled)
    with pytest.raises(ValueError, match="resample >= 1"):
        family.impute(params, x, mask, jax.random.key(2), resample=0)
    batch = {k: v[:4] for k, v in data.arrays().items()}
    assert family.log_prob.name() == "vlb2" and family.log_prob.name(estimator="pf_ode", num_steps=7) == "pf_ode7"
    pf = family.log_prob(params, batch, jax.random.key(3), estimator="pf_ode", num_steps=4)
    assert np.all(np.isfinite(np.asarray(pf)))
    z = family.encode(params, batch)
    assert z.shape == (4, 64) and family.decode(params, z).shape == (4, 8, 8, 1)


def test_pixelcnn_sample_frequencies_match_its_probabilities():
    """Ancestral sampling draws each of the 16 binary 2x2 images as often as exp(log p) says."""
    from gen_jax.models.autoregressive import PixelCNN

    model = PixelCNN(num_levels=2, channels=4, num_layers=2)
    grid = jnp.asarray(np.array([[(i >> k) & 1 for k in range(4)] for i in range(16)]).reshape(16, 2, 2, 1))
    params = perturbed(model.init(jax.random.key(0), grid), 1.0)
    p = np.exp(np.asarray(jax.jit(lambda v: model.apply(params, v, method=model.log_prob))(grid), np.float64))
    assert p.sum() == pytest.approx(1.0, abs=1e-5) and p.max() > 2 * p.min()  # a normalised, uneven target
    n = 20000
    draws = np.asarray(jax.jit(lambda r: model.apply(params, r, n, (2, 2), method=model.sample))(jax.random.key(1)))
    codes = (draws.reshape(n, 4) * (1 << np.arange(4))).sum(1)
    freq = np.bincount(codes, minlength=16) / n
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / n).max())


def test_composable_flow_standardises_like_the_trainer_and_knows_its_shape():
    from gen_jax.models.flows import build_flow

    x = np.random.default_rng(0).normal([100.0, -50.0], [30.0, 0.5], size=(512, 2)).astype(np.float32)
    flow = build_flow("spline", 2, num_layers=2, hidden=(8,), data=x)
    params = flow.init(jax.random.key(0), x)
    z, _ = flow.apply(params, x, method=flow.forward)
    np.testing.assert_allclose(np.asarray(z).mean(0), 0.0, atol=0.2)  # near-identity layers on unit-scale data
    assert flow.apply(params, jax.random.key(1), 7, method=flow.sample).shape == (7, 2)
    capped = build_flow("realnvp", 2, num_layers=1, hidden=(4,), max_log_scale=0.5)
    assert capped.layers[0].max_log_scale == 0.5
    opt = gt.make_optimizer(name="sgd", b1=0.0, schedule="constant", learning_rate=0.1, grad_clip_norm=1.0)
    state = opt.init({"w": jnp.zeros(3)})
    updates, _ = opt.update({"w": jnp.full(3, 100.0)}, state)
    assert float(jnp.linalg.norm(updates["w"])) == pytest.approx(0.1, rel=1e-5)  # clipped to norm 1, times lr
    with pytest.raises(TypeError, match="unknown optimizer settings"):
        gt.make_optimizer(learnin_rate=0.1)




@pytest.mark.parametrize("name", ["cvae_digits", "classic_digits"])
def test_conditional_families_on_cluster_labels_draw_them_from_their_shares(name, tmp_path, monkeypatch):
    """data.clusters: unlabelled draws of a conditional model take their label from the clusters' training
    shares (a key split off the sampling key), labelled draws are as before; an unconditional model refuses."""
    from gen_jax.train.loop import init_state, load_data

    monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path))
    c = load_config_file(CONFIGS / f"{name}.py", "smoke")
    c.data.clusters, c.model.conditional = 6, True
    data = load_data(c, "train")
    family = build_family(c, data)
    params = init_state(c, family, data).eval_params
    shares = np.bincount(data.label, minlength=6) / len(data)
    key, n = jax.random.key(4), 12
    k_x, k_y = jax.random.split(key)
    labels = jax.random.choice(k_y, 6, (n,), p=jnp.asarray(shares, jnp.float32))
    np.testing.assert_array_equal(np.asarray(family.sample(params, key, n)),
                                  np.asarray(family.sample(params, k_x, n, labels=labels)))
    c.model.conditional = False
    with pytest.raises(ValueError, match=f"data.clusters=6 labels the images by cluster.*'{c.model.family}'"):
        build_family(c, data)
