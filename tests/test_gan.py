"""GANs: the adversarial losses by hand, the penalties on critics with known gradients, the Dirac-GAN's known
convergence results, and the two-player family under the engine's guarantees."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gen_jax.train as gt
from gen_jax.data.conventions import to_bin_centres
from gen_jax.families import build_family
from gen_jax.families import gan as gan_family
from gen_jax.losses.adversarial import (ADVERSARIAL_LOSSES, dirac_gan_trajectory, discriminator_loss,
                                        generator_loss, gradient_norm_squared, gradient_penalty)
from gen_jax.models import gan as gan_models
from gen_jax.train.config import load_config_file
from gen_jax.train.loop import load_data

from conftest import CONFIGS, check_engine_guarantees

R = np.array([2.0, -1.0, 0.0])  # real logits
F = np.array([0.5, -3.0, 4.0])  # fake logits


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


HAND = {  # (discriminator per pair, generator per fake), written from the papers' formulas
    "minimax": (-np.log(_sig(R)) - np.log(1 - _sig(F)), np.log(1 - _sig(F))),
    "non_saturating": (-np.log(_sig(R)) - np.log(1 - _sig(F)), -np.log(_sig(F))),
    "least_squares": (0.5 * (R - 1) ** 2 + 0.5 * F ** 2, 0.5 * (F - 1) ** 2),
    "hinge": (np.maximum(0, 1 - R) + np.maximum(0, 1 + F), -F),
    "wasserstein": (F - R, -F),
}


@pytest.mark.parametrize("kind", ADVERSARIAL_LOSSES)
def test_adversarial_losses_by_hand_and_finite_at_extreme_logits(kind):
    d_want, g_want = HAND[kind]
    np.testing.assert_allclose(discriminator_loss(jnp.asarray(R), jnp.asarray(F), kind=kind), d_want, rtol=1e-5)
    np.testing.assert_allclose(generator_loss(jnp.asarray(F), kind=kind), g_want, rtol=1e-5)
    big = jnp.array([300.0, -300.0])  # sigmoid saturates in float32: the log-space forms stay finite
    for fn in (lambda v: discriminator_loss(v, -v, kind=kind), lambda v: generator_loss(v, kind=kind)):
        value, grad = fn(big), jax.grad(lambda v: jnp.sum(fn(v)))(big)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        generator_loss(jnp.asarray(F), kind="wgan")


def test_the_saturating_generator_loss_vanishes_where_the_non_saturating_one_does_not():
    confident = jnp.array([-8.0])  # D is sure the fake is fake: D(G(z)) = sigmoid(-8)
    g_sat = jax.grad(lambda f: generator_loss(f, kind="minimax")[0])(confident)
    g_ns = jax.grad(lambda f: generator_loss(f, kind="non_saturating")[0])(confident)
    np.testing.assert_allclose(g_sat, -_sig(-8.0), rtol=1e-5)  # d/dl log(1 - sigmoid(l)) = -sigmoid(l)
    np.testing.assert_allclose(g_ns, -_sig(8.0), rtol=1e-5)
    assert abs(float(g_ns[0])) > 1000 * abs(float(g_sat[0]))


def test_penalties_on_critics_with_known_input_gradients():
    w = jnp.array([3.0, -4.0])  # linear critic: grad = w everywhere, |w| = 5
    linear = lambda x: x @ w
    real = jax.random.normal(jax.random.key(0), (6, 2))
    fake = jax.random.normal(jax.random.key(1), (6, 2))
    u = jax.random.uniform(jax.random.key(2), (6,))
    np.testing.assert_allclose(gradient_penalty(linear, real, fake, u), np.full(6, 16.0), rtol=1e-5)
    np.testing.assert_allclose(gradient_norm_squared(linear, real), np.full(6, 25.0), rtol=1e-5)
    # quadratic critic 0.5 |x|^2: grad = x_hat, so the penalty is (|x_hat| - 1)^2 at the interpolates
    quad = lambda x: 0.5 * jnp.sum(x ** 2, -1)
    x_hat = np.asarray(u[:, None] * real + (1 - u[:, None]) * fake)
    np.testing.assert_allclose(gradient_penalty(quad, real, fake, u), (np.linalg.norm(x_hat, axis=1) - 1) ** 2,
                               rtol=1e-5)


def test_dirac_gan_known_results():
    """Mescheder et al. 2018: at the equilibrium the unregularised game's Jacobian has imaginary eigenvalues,
    so simultaneous gradient steps spiral out (|x| grows every step) and alternating ones circle without
    converging; R1 (gamma > 0) makes the equilibrium attractive. WGAN-GP is not locally convergent there either
    (its critic keeps |psi| = 1, so theta drifts)."""
    radius = lambda p: np.linalg.norm(np.asarray(p), axis=1)
    r = radius(dirac_gan_trajectory(0.1, 0.1, loss="minimax", update="simultaneous", steps=1000))
    assert np.all(np.diff(r) > 0) and r[-1] > 2 * r[0]
    r = radius(dirac_gan_trajectory(0.1, 0.1, loss="minimax", update="alternating", steps=2000))
    assert r.min() > 0.5 * r[0] and r.max() < 2 * r[0]  # bounded, and no convergence
    for update in ("simultaneous", "alternating"):
        r = radius(dirac_gan_trajectory(1.0, 1.0, loss="non_saturating", update=update, r1_gamma=1.0, steps=1000))
        assert r[-1] < 1e-6
    theta = np.asarray(dirac_gan_trajectory(1.0, 1.0, loss="wasserstein", gradient_penalty=10.0, steps=500))[:, 0]
    assert abs(theta[-1]) > 5.0


# ---------------------------------------------------------------- the family


def _toy(**model):
    c = load_config_file(CONFIGS / "gan_toy2d.py", "smoke")
    c.train.update(steps=8, checkpoint_every=4, log_every=4, sample_every=0, num_devices=1)
    c.evals = {}
    c.model.update(model)
    return c


def test_two_players_are_reproducible_resume_exactly_and_agree_on_four_devices(tmp_path):
    """Batch norm in the generator (its running statistics beside its weights), two optimizers with their own learning rates,
    two critic steps per generator step, R1 and the EMA: every piece of the state is in the checkpoint."""
    base = _toy(n_critic=2, r1_gamma=1.0, r1_every=2, g_batch_norm=True)
    base.discriminator_optim.learning_rate = 3e-4
    base.train.ema_decay = 0.9
    a, p = check_engine_guarantees(base, tmp_path)
    assert set(a.params) == set(a.opt_state) == {"generator", "discriminator"}
    assert jax.tree.leaves(a.params["generator"]["batch_stats"])
    assert not np.allclose(jax.tree.leaves(a.ema_params["generator"]["params"])[0],
                           jax.tree.leaves(a.params["generator"])[0])
    # batch norm over the global batch: weights and running statistics agree
    chex.assert_trees_all_close(a.params, p.params, rtol=1e-5, atol=1e-6)


def test_every_critic_step_and_the_generator_step_draw_their_own_noise(monkeypatch):
    """The classic bug: one key for every critic step. Record the codes each update draws."""
    drawn = []
    real_normal = jax.random.normal

    def recording_normal(key, shape, *args, **kwargs):
        z = real_normal(key, shape, *args, **kwargs)
        if len(shape) == 2 and shape[1] == 2:  # the 2-D codes of this config
            drawn.append(np.asarray(z))
        return z

    c = _toy(n_critic=2)
    data = load_data(c, "train")
    family = build_family(c, data)
    batch = {"x": jnp.asarray(data.x[:32])}
    state = family.trainer.init_state(jax.random.key(0), batch)
    monkeypatch.setattr(gan_family.jax.random, "normal", recording_normal)
    with jax.disable_jit():
        family.trainer.make_step(None)(state, batch, jax.random.key(1))
    assert len(drawn) == 3  # two critic updates, one generator update
    for i in range(3):
        for j in range(i):
            assert not np.allclose(drawn[i], drawn[j])


def test_a_non_finite_loss_stops_the_run_and_bad_settings_are_errors(tmp_path):
    c = _toy()
    c.optim.name = c.discriminator_optim.name = "sgd"
    c.optim.learning_rate = c.discriminator_optim.learning_rate = 1e30
    with pytest.raises(FloatingPointError, match="non-finite"):
        gt.run(c, tmp_path / "nan")
    with pytest.raises(ValueError, match="batch norm in the discriminator"):
        gt.run(_toy(d_norm="batch", gradient_penalty=10.0), tmp_path / "gp")
    with pytest.raises(ValueError, match="unknown model.loss"):
        gt.run(_toy(loss="wgan"), tmp_path / "loss")
    with pytest.raises(ValueError, match=r"model.mapping_layers=-1: .* >= 0"):  # acted as 0 before
        gt.run(_toy(mapping_layers=-1), tmp_path / "mapping")
    assert not (tmp_path / "mapping" / "checkpoints").exists()


def test_image_gan_samples_levels_inverts_its_generator_and_imputes():
    c = load_config_file(CONFIGS / "gan_digits.py", "smoke")
    data = load_data(c, "train")
    family = build_family(c, data)
    assert family.capabilities == ("sample", "encode", "decode", "impute")
    state = family.trainer.init_state(jax.random.key(0), data.take(8).arrays())
    params = state.eval_params
    a, b = (np.asarray(family.sample(params, jax.random.key(s), 6)) for s in (0, 1))
    assert a.dtype == np.int32 and a.shape == (6, *data.image_shape) and a.min() >= 0 and a.max() < family.num_levels
    assert not np.array_equal(a, b)
    # inversion: the code found for a generated image regenerates it
    k = family.num_levels
    z = jax.random.normal(jax.random.key(2), (4, c.model.latent_dim))
    target = np.asarray(family.decode(params, z))  # in [0, 1]: level l sits at (2 l + 1) / (2 K)
    found = family.encode(params, {"image": target * k - 0.5}, jax.random.key(3))
    err = np.abs(np.asarray(family.decode(params, found)) - target).mean()
    start = np.abs(np.asarray(family.decode(params, jax.random.normal(jax.random.key(3), z.shape))) - target)
    assert err < 0.1 * start.mean()
    levels = np.round(target * (k - 1)).astype(np.int32)
    mask = np.zeros((4, *data.image_shape), np.float32)
    mask[:, :4] = 1.0
    filled = family.impute(params, levels / (k - 1), mask, jax.random.key(4))
    np.testing.assert_allclose(filled[:, :4], (levels / (k - 1))[:, :4])  # observed pixels kept
    assert 0.0 <= filled.min() and filled.max() <= 1.0


def test_progressive_growing_schedule_blend_and_real_images():
    """The level schedule by hand; the generator at the top level is the plain DCGAN's (same shared weights),
    at level 0 its lowest image repeated up, half-way between two levels their average; real images are blurred
    the same way."""
    steps = jnp.array([0, 9, 10, 12, 15, 19, 20, 25, 30, 1000])
    np.testing.assert_allclose(gan_family.progressive_level(steps, 10, 3), [0, 0, 0, 0.4, 1, 1, 1, 2, 2, 2],
                               atol=1e-6)
    np.testing.assert_allclose(gan_models.resolution_weights(0.25, 3), [0.75, 0.25, 0.0])
    grown = gan_models.DCGANGenerator(image_shape=(8, 8, 1), channels=(4, 2), batch_norm=False, progressive=True)
    plain = gan_models.DCGANGenerator(image_shape=(8, 8, 1), channels=(4, 2), batch_norm=False)
    z = jax.random.normal(jax.random.key(0), (3, 5))
    params = jax.jit(grown.init)(jax.random.key(1), z)
    assert {"to_image_0", "to_image_1"} <= set(params["params"])
    at_level = jax.jit(lambda lv: grown.apply(params, z, level=lv))  # one program for every level
    at = lambda lv: np.asarray(at_level(jnp.float32(lv)))
    shared = {"params": {k: v for k, v in params["params"].items() if not k.startswith("to_image")}}
    top = at(2.0)
    np.testing.assert_allclose(top, jax.jit(plain.apply)(shared, z), atol=1e-6)
    np.testing.assert_allclose(jax.jit(grown.apply)(params, z), top, atol=1e-6)  # no level: the top one
    low = at(0.0)  # 2x2 image repeated over 4x4 blocks
    np.testing.assert_allclose(low, np.repeat(np.repeat(low[:, ::4, ::4], 4, axis=1), 4, axis=2))
    assert not np.allclose(low, at(1.0))
    np.testing.assert_allclose(at(0.5), 0.5 * (at(0.0) + at(1.0)), atol=1e-6)
    x = jax.random.uniform(jax.random.key(2), (2, 8, 8, 1))
    blur = jax.jit(lambda lv: gan_models.blur_to_level(x, lv, 3))
    np.testing.assert_allclose(blur(2.0), x)
    blocks = np.asarray(x).reshape(2, 2, 4, 2, 4, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(blur(0.0), np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2), atol=1e-6)


def test_conditional_gan_samples_the_labels_it_is_given():
    c = load_config_file(CONFIGS / "gan_digits.py", "smoke")
    c.model.conditional = True
    data = load_data(c, "train")
    family = build_family(c, data)
    assert family.capabilities == ("sample",)
    params = family.trainer.init_state(jax.random.key(0), data.take(8).arrays()).eval_params
    x = family.sample(params, jax.random.key(0), 4, labels=jnp.array([1, 1, 7, 7]))
    assert x.shape == (4, *data.image_shape)
    with pytest.raises(ValueError, match="labels must have shape"):
        family.sample(params, jax.random.key(0), 4, labels=jnp.array([1, 2]))


def test_style_generator_noise_truncation_running_mean_and_mixing():
    from gen_jax.models.gan import StyleGenerator, style_mixing_grid

    g = StyleGenerator(image_shape=(8, 8, 1), channels=(8, 4), w_dim=6, mapping_layers=2)
    z = jax.random.normal(jax.random.key(0), (5, 3))
    v = g.init(jax.random.key(1), z)
    assert g.num_ws == 4 and v["batch_stats"]["w_avg"].shape == (6,)
    # noise strengths start at zero (StyleGAN); make them matter, and w_avg a generic point
    v = {"params": jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.5 if "noise_strength" in jax.tree_util.keystr(p) else x, v["params"]),
         "batch_stats": {"w_avg": jnp.linspace(-1.0, 1.0, 6)}}
    x = g.apply(v, z)
    assert x.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(g.apply(v, z), x)  # no key: no noise, deterministic
    xa, xb = g.apply(v, z, rng=jax.random.key(2)), g.apply(v, z, rng=jax.random.key(3))
    assert not np.allclose(xa, xb) and not np.allclose(xa, x)

    w = g.apply(v, z, method=StyleGenerator.styles)
    w_avg = v["batch_stats"]["w_avg"]
    synth = lambda ws: g.apply(v, ws, method=StyleGenerator.synthesize)
    # truncation: 0 gives every code the average style's image, 1 changes nothing, 0.5 is halfway in w
    np.testing.assert_allclose(g.apply(v, z, truncation=0.0), synth(jnp.broadcast_to(w_avg, w.shape)), atol=1e-5)
    np.testing.assert_allclose(g.apply(v, z, truncation=1.0), x)
    np.testing.assert_allclose(g.apply(v, z, truncation=0.5), synth(w_avg + 0.5 * (w - w_avg)), atol=1e-5)
    # psi > 1 extrapolates away from the average style: the styles spread by psi
    np.testing.assert_allclose(g.apply(v, z, truncation=1.5), synth(w_avg + 1.5 * (w - w_avg)), atol=1e-5)
    # the running mean of w moves towards the batch's mean in training
    _, upd = g.apply(v, z, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(upd["batch_stats"]["w_avg"], w_avg + 0.005 * (w.mean(0) - w_avg), atol=1e-6)

    # the mixing grid: crossover 0 is the row's image, num_ws the column's, between them both matter
    rows, cols = z[:2], z[2:]
    np.testing.assert_allclose(style_mixing_grid(g, v, rows, cols, 0), jnp.broadcast_to(x[:2, None], (2, 3, 8, 8, 1)),
                               atol=1e-5)
    np.testing.assert_allclose(style_mixing_grid(g, v, rows, cols, 4), jnp.broadcast_to(x[None, 2:], (2, 3, 8, 8, 1)),
                               atol=1e-5)
    mid = style_mixing_grid(g, v, rows, cols, 2)
    assert not np.allclose(mid[0, 0], x[0]) and not np.allclose(mid[0, 0], x[2])
    # a conditional generator's grid: each code's style is mapped with its own label
    gc = g.clone(num_classes=3)
    vc = gc.init(jax.random.key(1), z, jnp.zeros(5, jnp.int32))
    lr, lc = jnp.array([0, 2]), jnp.array([1, 1, 2])
    xr, xc = gc.apply(vc, rows, lr), gc.apply(vc, cols, lc)
    np.testing.assert_allclose(style_mixing_grid(gc, vc, rows, cols, 0, labels_rows=lr, labels_cols=lc),
                               jnp.broadcast_to(xr[:, None], (2, 3, 8, 8, 1)), atol=1e-5)
    np.testing.assert_allclose(style_mixing_grid(gc, vc, rows, cols, 4, labels_rows=lr, labels_cols=lc),
                               jnp.broadcast_to(xc[None], (2, 3, 8, 8, 1)), atol=1e-5)
    assert not np.allclose(xr[0], gc.apply(vc, rows[:1], lr[1:]))  # the label matters
    # mixing in training: with probability 1 every example takes another code's styles from some layer on
    key = jax.random.key(4)
    plain = g.apply(v, z, train=True, rng=key, mutable=["batch_stats"])[0]
    mixed, upd = g.apply(v, z, train=True, rng=key, mixing_prob=1.0, mutable=["batch_stats"])
    assert all(not np.allclose(mixed[i], plain[i]) for i in range(5))
    # on 4 devices (a quarter of the batch each) the noise, the mixing and w_avg's update are the global batch's
    z8 = jax.random.normal(jax.random.key(5), (8, 3))
    one = g.apply(v, z8, train=True, rng=key, mixing_prob=0.5, mutable=["batch_stats"])
    four = jax.pmap(lambda zz: g.clone(axis_name="batch").apply(v, zz, train=True, rng=key, mixing_prob=0.5,
                                                                mutable=["batch_stats"]),
                    axis_name="batch")(z8.reshape(4, 2, 3))
    np.testing.assert_allclose(four[0].reshape(one[0].shape), one[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(four[1]["batch_stats"]["w_avg"][0], one[1]["batch_stats"]["w_avg"], atol=1e-6)


def test_style_gan_family_trains_samples_truncated_and_inverts_in_w():
    c = load_config_file(CONFIGS / "gan_digits.py", "style,smoke")
    c.model.update(invert_space="w", invert_steps=150, invert_restarts=2, r1_gamma=0.0)  # R1: tested elsewhere
    data = load_data(c, "train")
    family = build_family(c, data)
    batch = data.take(16).arrays()
    state = family.trainer.init_state(jax.random.key(0), batch)
    one, metrics = jax.jit(family.trainer.make_step(None))(state, batch, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert not np.allclose(one.params["generator"]["batch_stats"]["w_avg"], 0.0)  # tracked in training

    params = one.eval_params
    a, b = (np.asarray(family.sample(params, jax.random.key(s), 6)) for s in (0, 1))
    assert a.shape == (6, *data.image_shape) and a.dtype == np.int32 and not np.array_equal(a, b)
    t0 = np.asarray(family.sample(params, jax.random.key(0), 6, truncation=0.0))
    assert np.abs(t0 - t0[:1]).mean() < np.abs(a - a[:1]).mean()  # the average style: little variety left
    # inversion in w: the code found for a generated image regenerates it
    d = 0.3 * jax.random.normal(jax.random.key(2), (3, c.model.w_dim))
    target = np.asarray(family.decode(params, d))
    k = family.num_levels
    found = family.encode(params, {"image": target * k - 0.5}, jax.random.key(3))
    assert found.shape == (3, c.model.w_dim)
    err = np.abs(np.asarray(family.decode(params, found)) - target).mean()
    start = np.abs(np.asarray(family.decode(params, jnp.zeros_like(d))) - target).mean()
    assert err < 0.2 * start


def _digits_gan(**model):
    """The smoke digits GAN (``model`` overrides its config's model section) at initialisation:
    ``(config, data, family, eval params)``."""
    c = load_config_file(CONFIGS / "gan_digits.py", "smoke")
    c.model.update(model)
    data = load_data(c, "train")
    family = build_family(c, data)
    return c, data, family, family.trainer.init_state(jax.random.key(0), data.take(16).arrays()).eval_params


def test_dcgan_truncation_scales_the_code_towards_zero():
    c, data, family, params = _digits_gan()
    key = jax.random.key(5)
    full = np.asarray(family.sample(params, key, 6))
    np.testing.assert_array_equal(np.asarray(family.sample(params, key, 6, truncation=1.0)), full)
    t0 = np.asarray(family.sample(params, key, 6, truncation=0.0))
    assert (t0 == t0[:1]).all() and not (full == full[:1]).all()  # every code at 0: one image
    # psi = 0.5 draws the generator's image of 0.5 z for the same z (levels: within one of the decoded values)
    z = jax.random.normal(jax.random.split(key)[0], (6, c.model.latent_dim))
    half = np.asarray(family.sample(params, key, 6, truncation=0.5))
    decoded = np.asarray(family.decode(params, 0.5 * z)) * family.num_levels
    assert np.abs(half - decoded).max() <= 1.0 and not np.array_equal(half, full)
    # psi > 1 widens the code (1.5 z), a negative psi is refused
    wide = np.asarray(family.sample(params, key, 6, truncation=1.5))
    assert np.abs(wide - np.asarray(family.decode(params, 1.5 * z)) * family.num_levels).max() <= 1.0
    with pytest.raises(ValueError, match="truncation must be >= 0"):
        family.sample(params, key, 2, truncation=-0.5)


def test_discriminator_rejection_sampling_draws_the_target_from_its_density_ratio():
    from gen_jax.sampling import acceptance_probability, discriminator_rejection_sample

    # proposals N(0, 1), target N(0, 0.5^2): the optimal discriminator's logit is log 2 - 1.5 x^2 (largest at 0)
    def propose(key, m):
        x = np.asarray(jax.random.normal(key, (m,)), np.float64)
        return x, np.log(2.0) - 1.5 * x ** 2

    x, acc = discriminator_rejection_sample(propose, jax.random.key(0), 20000, chunk=5000)
    assert x.shape == (20000,)
    assert abs(x.std() - 0.5) < 0.01 and abs(x.mean()) < 0.01  # the proposals' std is 1
    assert abs(acc - 0.5) < 0.01  # E[exp(-1.5 x^2)] = 1 / sqrt(1 + 3) under N(0, 1)
    again, _ = discriminator_rejection_sample(propose, jax.random.key(0), 20000, chunk=5000)
    np.testing.assert_array_equal(x, again)
    # gamma < 0 accepts more, and its draws lie between the proposals' and the target's
    y, acc_y = discriminator_rejection_sample(propose, jax.random.key(0), 20000, chunk=5000, gamma=-2.0)
    assert acc_y > acc + 0.1 and 0.55 < y.std() < 0.95

    # Azadi et al.'s F(x) = D - M - log(1 - exp(D - M)) - gamma, accepted with probability sigmoid(F)
    d, big_m = np.array([-3.0, -0.5, -1e-3]), 0.0
    for gamma in (0.0, -1.0, 2.0):
        f = d - big_m - np.log(1 - np.exp(d - big_m)) - gamma
        np.testing.assert_allclose(acceptance_probability(d, big_m, gamma), 1 / (1 + np.exp(-f)), rtol=1e-10)
    np.testing.assert_allclose(acceptance_probability(d, big_m), np.exp(d))
    assert acceptance_probability(np.array([0.0, 5.0]), 0.0).tolist() == [1.0, 1.0]  # at or above M: kept

    calls = []

    def hopeless(key, m):  # the burn-in's logit far above every later one: nothing is ever accepted
        calls.append(m)
        return np.zeros(m), np.full(m, 100.0 if len(calls) == 1 else 0.0)

    with pytest.raises(RuntimeError, match="accepted 0 of 40 proposals in 4 rounds"):
        discriminator_rejection_sample(hopeless, jax.random.key(1), 5, chunk=10, max_rounds=4)


def test_gan_rejection_sampling_keeps_the_draws_its_discriminator_rates_highest():
    _, data, family, params = _digits_gan()
    key = jax.random.key(3)
    kept = np.asarray(family.sample(params, key, 256, rejection=0.0))
    assert kept.shape == (256, *data.image_shape) and kept.dtype == np.int32
    np.testing.assert_array_equal(kept, np.asarray(family.sample(params, key, 256, rejection=0.0)))
    judge = jax.jit(lambda x: family.model["discriminator"].apply(
        params["discriminator"], x, None, update_stats=False, mutable=["batch_stats"])[0])
    to_model = lambda v: jnp.asarray(to_bin_centres(v, num_levels=family.num_levels), jnp.float32)
    plain = np.asarray(family.sample(params, key, 1000))
    # the kept draws score higher on average than plain ones (levels at bin centres, as the data)
    assert float(judge(to_model(kept)).mean()) > float(judge(to_model(plain)).mean())
    _, _, cfam, cparams = _digits_gan(conditional=True)
    with pytest.raises(ValueError, match="rejection sampling needs an unconditional GAN"):
        cfam.sample(cparams, key, 4, rejection=0.0)


def test_equalized_dense_starts_he_initialised_and_steps_at_its_learning_rate_multiplier():
    import optax

    from gen_jax.models.gan import EqualizedDense

    x = jax.random.normal(jax.random.key(0), (4096, 64))
    layer = EqualizedDense(32, lr_multiplier=0.01)
    v = layer.init(jax.random.key(1), x)
    assert abs(float(layer.apply(v, x).std()) - 2 ** 0.5) < 0.1  # He: output variance gain^2 = 2
    he = 2 ** 0.5 / 8  # gain / sqrt(fan_in)
    effective = lambda v: v["params"]["kernel"] * 0.01 * he
    opt = optax.adam(1e-3)
    grads = jax.grad(lambda v: jnp.sum(jnp.sin(layer.apply(v, x))))(v)
    moved = optax.apply_updates(v, opt.update(grads, opt.init(v))[0])
    # Adam's first step is lr per stored weight: lr * lr_multiplier per effective weight, in He units
    # (within float32 rounding of stored weights of size ~1 / lr_multiplier)
    np.testing.assert_allclose(np.abs(effective(moved) - effective(v)) / he, 1e-3 * 0.01, rtol=0.05)


def test_a_gan_on_cluster_labels_samples_p_x_by_the_clusters_shares(tmp_path, monkeypatch):
    """data.clusters: k-means clusters of the training images are the labels of a conditional GAN; unlabelled
    draws take their cluster from its share of the training split, so that they come from p(x)."""
    monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path))
    c = load_config_file(CONFIGS / "gan_digits.py", "smoke")
    c.data.clusters = 10
    data = load_data(c, "train")
    with pytest.raises(ValueError, match="data.clusters=10 labels the images by cluster.*model.conditional=True"):
        build_family(c, data)
    c.model.conditional = True
    family = build_family(c, data)
    params = family.trainer.init_state(jax.random.key(0), data.take(16).arrays()).eval_params
    n, key = 4000, jax.random.key(3)
    k_x, k_y = jax.random.split(key)
    shares = np.bincount(data.label, minlength=10) / len(data)
    labels = np.asarray(jax.random.choice(k_y, 10, (n,), p=jnp.asarray(shares, jnp.float32)))
    np.testing.assert_array_equal(np.asarray(family.sample(params, key, n)),
                                  np.asarray(family.sample(params, k_x, n, labels=labels)))
    np.testing.assert_allclose(np.bincount(labels, minlength=10) / n, shares, atol=0.025)
    assert shares.max() > 1.5 * shares.min()  # uneven clusters: not the one-column-per-class default
    balanced = np.asarray(family.sample(params, k_x, n, labels=np.arange(n) % 10))
    assert not np.array_equal(balanced, np.asarray(family.sample(params, key, n)))
