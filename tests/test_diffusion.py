"""Diffusion paths, losses and samplers proven on closed forms: for Gaussian data every marginal, score and
denoiser is known, so each sampler fed the analytic denoiser must reproduce the data's mean and covariance,
and the PF-ODE log-likelihood must equal the Gaussian's exact log p."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from gen_jax.losses import (diffusion_variational_bound, exact_score_matching, make_diffusion_loss,
                            sliced_score_matching)
from gen_jax.losses.score_matching import _discretized_gaussian_log_mass
from gen_jax.models.diffusion import EDM, PATHS, PREDICTIONS, VE, VP, RectifiedFlow, ScoreMLP, make_path
from gen_jax.sampling import (annealed_langevin_sample, ddim_sample, ddim_solve, guided, inpaint, langevin_sample,
                              ode_sample, ode_solve, pf_ode_log_likelihood, reverse_sde_sample, time_grid)

M = jnp.asarray([1.0, -0.5])
S = jnp.asarray([[1.0, 0.6], [0.6, 0.8]])


def analytic_denoiser(path, mean=M, cov=S):
    """``E[x0 | x_t]`` and ``E[eps | x_t]`` for data ~ N(mean, cov) on the path."""

    def denoiser(x, t):
        a, s = path.alpha(t), path.sigma(t)
        marg = a * a * cov + s * s * jnp.eye(2)
        x0 = mean + (a * cov @ jnp.linalg.solve(marg, (x - a * mean).T)).T
        return x0, (x - a * x0) / s

    return denoiser


def per_example_times(denoiser):
    """The denoiser for a time per example, ``t`` of shape ``(B,)``."""
    return lambda x, t: jax.vmap(lambda xi, ti: tuple(v[0] for v in denoiser(xi[None], ti)))(x, t)


def assert_moments(samples, atol_mean=0.07, atol_cov=0.1):
    samples = np.asarray(samples, np.float64)
    assert np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples.mean(0), M, atol=atol_mean)
    np.testing.assert_allclose(np.cov(samples.T), S, atol=atol_cov)


@pytest.mark.parametrize("name", sorted(PATHS))
def test_forward_marginals_match_their_closed_form(name):
    path = make_path(name)
    x0 = jax.random.multivariate_normal(jax.random.key(0), M, S, (20000,))
    eps = jax.random.normal(jax.random.key(1), x0.shape)
    for t in (0.1 * path.t_max, 0.6 * path.t_max):
        xt = np.asarray(path.marginal(x0, eps, jnp.full((20000,), t)), np.float64)
        a, s = float(path.alpha(t)), float(path.sigma(t))
        scale = max(1.0, s)
        np.testing.assert_allclose(xt.mean(0) / scale, a * M / scale, atol=0.03)
        np.testing.assert_allclose(np.cov(xt.T) / scale ** 2, (a * a * S + s * s * np.eye(2)) / scale ** 2,
                                   atol=0.04)


@pytest.mark.parametrize("name,prediction", [(n, p) for n in sorted(PATHS) for p in PREDICTIONS
                                              if p != "edm" or n == "edm"])  # EDM's preconditioning: EDM only
def test_every_prediction_converts_back_to_the_clean_data_and_noise(name, prediction):
    path = make_path(name)
    x0 = jax.random.normal(jax.random.key(0), (5, 3))
    eps = jax.random.normal(jax.random.key(1), (5, 3))
    t = jnp.linspace(0.2, 0.8, 5) * path.t_max
    x = path.marginal(x0, eps, t)
    got_x0, got_eps = path.denoise(prediction, path.target(prediction, x0, eps, t), x, t)
    np.testing.assert_allclose(got_x0, x0, atol=2e-4)
    np.testing.assert_allclose(got_eps, eps, atol=2e-4)


def test_the_sde_has_the_paths_marginal_variance():
    """d Var/dt = 2 (alpha'/alpha) Var + g^2 along the forward SDE (Var of x_t given x0 = sigma^2)."""
    for path in (VP(), VE(), EDM(), RectifiedFlow()):
        t = 0.37 * path.t_max
        a, s, da, ds = (float(f(t)) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma))
        _, g = path.sde(jnp.zeros((1, 2)), t)
        assert 2 * s * ds == pytest.approx(2 * (da / a) * s * s + float(g) ** 2, rel=1e-4)
    c_skip, c_out, _, _ = EDM().preconditioning(1e-6)  # EDM's denoiser is the identity at zero noise
    assert float(c_skip) == pytest.approx(1.0) and float(c_out) == pytest.approx(0.0, abs=1e-5)


SAMPLERS = {
    "ddpm_ancestral": lambda p, d, x, r: ddim_sample(d, p, x, time_grid(p, 200), r, eta=1.0),
    "ddim": lambda p, d, x, r: ddim_sample(d, p, x, time_grid(p, 50), r, eta=0.0),
    "reverse_sde_pc": lambda p, d, x, r: reverse_sde_sample(d, p, x, time_grid(p, 300), r, corrector_steps=1),
    "ode_heun": lambda p, d, x, r: ode_sample(d, p, x, time_grid(p, 40), method="heun"),
}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_each_sampler_fed_the_analytic_denoiser_reproduces_the_data(sampler):
    path = VP()
    x = path.prior_sample(jax.random.key(0), (6000, 2))
    out = jax.jit(lambda x, r: SAMPLERS[sampler](path, analytic_denoiser(path), x, r))(x, jax.random.key(1))
    assert_moments(out)


def test_edm_heun_and_flow_matching_euler_reproduce_the_data():
    edm = EDM()
    x = edm.prior_sample(jax.random.key(0), (6000, 2))
    assert_moments(jax.jit(lambda x: ode_sample(analytic_denoiser(edm), edm, x, time_grid(edm, 30, "edm")))(x))
    rf = RectifiedFlow()
    x = rf.prior_sample(jax.random.key(1), (6000, 2))
    assert_moments(jax.jit(lambda x: ode_sample(analytic_denoiser(rf), rf, x, time_grid(rf, 100),
                                                method="euler"))(x))


def test_annealed_langevin_with_the_analytic_score_reproduces_the_data():
    ve = VE(sigma_min=0.01, sigma_max=5.0)
    sigmas = jnp.geomspace(5.0, 0.01, 10)

    def score(x, sigma):
        cov = S + sigma ** 2 * jnp.eye(2)
        return -jnp.linalg.solve(cov, (x - M).T).T

    x = ve.prior_sample(jax.random.key(0), (6000, 2))
    out = jax.jit(lambda x: annealed_langevin_sample(score, sigmas, x, jax.random.key(1), steps_per_level=100,
                                                     step_size=2e-5))(x)
    assert_moments(out)


def test_langevin_reaches_a_standard_normal_in_ten_dimensions():
    x = jnp.full((4000, 10), 5.0)
    out = np.asarray(jax.jit(lambda x: langevin_sample(lambda v: -v, x, jax.random.key(0),
                                                       jnp.full((800,), 0.05)))(x))
    np.testing.assert_allclose(out.mean(0), 0.0, atol=0.08)
    np.testing.assert_allclose(out.var(0), 1.0, atol=0.1)


def test_pf_ode_log_likelihood_of_the_analytic_model_is_the_gaussians():
    """Zero-mean data, so the model's x_T is the prior up to alpha(t_max)^2 ~ 4e-5 of variance (with a mean m the
    prior misses alpha(t_max) m and log p is off by up to 0.02 here); compared with the exact log-density of
    x at t_min, where the ODE starts."""
    path = VP()
    den = analytic_denoiser(path, mean=jnp.zeros(2))
    x = jax.random.multivariate_normal(jax.random.key(0), jnp.zeros(2), S, (64,))
    a, s = float(path.alpha(path.t_min)), float(path.sigma(path.t_min))
    exact = stats.multivariate_normal(np.zeros(2), np.asarray(a * a * S + s * s * np.eye(2))).logpdf(np.asarray(x))
    got = jax.jit(lambda v: pf_ode_log_likelihood(den, path, v, num_steps=100))(x)
    np.testing.assert_allclose(got, exact, atol=2e-3)
    probes = jax.vmap(lambda k: pf_ode_log_likelihood(den, path, x, num_steps=50, rng=k, exact_divergence=False)
                      )(jax.random.split(jax.random.key(1), 64))
    np.testing.assert_allclose(np.asarray(probes).mean(), exact.mean(), atol=3e-2)  # unbiased


def test_deterministic_ddim_and_the_pf_ode_encode_and_decode_back():
    """DDIM inversion is first order (0.045 off at 200 steps, 0.009 at 1000); Heun's ODE is 2e-6 off at 200."""
    path = VP()
    den = analytic_denoiser(path)
    x = jax.random.multivariate_normal(jax.random.key(0), M, S, (32,))
    for solve, steps, atol in ((lambda v, ts: ddim_solve(den, path, v, ts), 1000, 2e-2),
                               (lambda v, ts: ode_solve(den, path, v, ts), 200, 1e-4)):
        up = time_grid(path, steps)[::-1]
        z = jax.jit(solve)(x, up)
        back = jax.jit(solve)(z, up[::-1])
        np.testing.assert_allclose(back, x, atol=atol)
        assert float(jnp.std(z)) > 0.5  # it did go to noise


def test_guidance_scale_zero_is_the_unconditional_model_and_one_the_conditional():
    path = VP()
    cond, uncond = analytic_denoiser(path, mean=M + 2.0), analytic_denoiser(path)
    x, t = jax.random.normal(jax.random.key(0), (8, 2)), jnp.asarray(0.4)
    for scale, want in ((0.0, uncond), (1.0, cond)):
        got = guided(cond, uncond, path, scale)(x, t)
        for a, b in zip(got, want(x, t)):
            np.testing.assert_allclose(a, b, atol=1e-5)
    calls = []  # scale 0 evaluates the unconditional model alone; any other scale both
    counting = lambda x, t: calls.append(1) or cond(x, t)
    guided(counting, uncond, path, 0.0)(x, t)
    assert not calls
    guided(counting, uncond, path, 0.5)(x, t)
    assert len(calls) == 1


def test_sliced_score_matching_agrees_with_exact_score_matching_in_expectation():
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.normal(size=(3, 3)), jnp.float32)
    score = lambda x: jnp.tanh(x @ A) + 0.3 * x
    x = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    exact = exact_score_matching(score, x)
    sliced = sliced_score_matching(score, x, jax.random.key(0), num_projections=4000)
    np.testing.assert_allclose(sliced, exact, atol=0.1)


@pytest.mark.parametrize("path", [VP(t_min=1e-5), VP(), EDM(), VE(sigma_max=30.0)], ids=lambda p: type(p).__name__)
def test_the_variational_bound_of_the_analytic_model_is_the_gaussians_nll(path):
    """With the exact denoiser the continuous-time bound is tight up to the prior's and the decoder's mismatch
    (~0.01 nats here): its mean over data and noise is the exact NLL, within 4 standard errors of the paired
    difference; a denoiser that ignores the covariance pays for it."""
    x = jax.random.multivariate_normal(jax.random.key(0), M, S, (4000,))
    exact = -stats.multivariate_normal(np.asarray(M), np.asarray(S)).logpdf(np.asarray(x))
    bound = jax.jit(lambda v: diffusion_variational_bound(per_example_times(analytic_denoiser(path)), path, v,
                                                          jax.random.key(1), num_samples=16))
    diff = np.asarray(bound(x), np.float64) - exact
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff)) + 0.012, (diff.mean(), diff.std())
    wrong = per_example_times(analytic_denoiser(path, cov=jnp.eye(2)))
    worse = diffusion_variational_bound(wrong, path, x, jax.random.key(1), num_samples=16)
    assert float(jnp.mean(worse)) > exact.mean() + 0.1


def test_the_discretized_decoder_is_a_distribution_over_the_levels():
    k = 17
    centres = (2 * jnp.arange(k) + 1.0) / k - 1
    for mean, std in ((0.13, 0.05), (-0.97, 0.3), (0.99, 1e-3), (3.0, 0.2)):
        log_mass = _discretized_gaussian_log_mass(centres, mean, std, k)
        assert np.all(np.isfinite(np.asarray(log_mass)))
        assert float(jnp.sum(jnp.exp(log_mass))) == pytest.approx(1.0, abs=1e-5)
        edges = np.concatenate([[-np.inf], np.asarray(centres[:-1]) + 1.0 / k, [np.inf]])
        want = np.diff(stats.norm.cdf((edges - mean) / std))
        np.testing.assert_allclose(np.exp(np.asarray(log_mass)), want, atol=1e-6)


@pytest.mark.parametrize("name", ["vp", "rectified_flow", "ve"])
def test_the_edm_time_grid_gives_edms_noise_levels_on_any_path(name):
    path = make_path(name)
    ts = time_grid(path, 12, "edm")
    level = np.asarray(path.sigma(ts) / path.alpha(ts), np.float64)
    lo, hi = level[-1], level[0]
    want = (hi ** (1 / 7) + np.linspace(0, 1, 13) * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7
    np.testing.assert_allclose(level, want, rtol=2e-3, atol=1e-6)
    assert float(ts[0]) == pytest.approx(path.t_max, rel=1e-5) and float(ts[-1]) == pytest.approx(path.t_min, abs=1e-6)


def test_inpainting_keeps_what_is_known_and_repaint_moves_towards_the_conditional():
    """Observed x_0 = 2 of the Gaussian: x_1 | x_0 has mean 0.1 and variance 0.44. Replacement is biased (its
    mean is -0.12 here); RePaint's resampling brings it closer (0.035 with 5 rounds)."""
    path = VP()
    n = 4000
    known = jnp.tile(jnp.asarray([[2.0, 0.0]]), (n, 1))
    mask = jnp.tile(jnp.asarray([[1.0, 0.0]]), (n, 1))
    cond_mean = float(M[1] + S[1, 0] / S[0, 0] * (2.0 - M[0]))
    run = jax.jit(lambda r, resample: inpaint(analytic_denoiser(path), path, known, mask, time_grid(path, 100), r,
                                              resample=resample), static_argnums=1)
    errors = []
    for resample in (1, 5):
        out = np.asarray(run(jax.random.key(0), resample))
        np.testing.assert_array_equal(out[:, 0], 2.0)
        assert 0.25 < out[:, 1].var() < 0.6
        errors.append(abs(out[:, 1].mean() - cond_mean))
    assert errors[0] < 0.3 and errors[1] < 0.6 * errors[0], errors


def test_a_dsm_trained_mlp_learns_the_gaussians_score():
    path = VP()
    net = ScoreMLP(dim=2, hidden=(64, 64), time_dim=16)
    apply = lambda p, x, t, y, r: net.apply(p, x, t)
    loss_fn = make_diffusion_loss(apply, path, "eps")
    params = net.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros((1,)))
    opt = optax.adam(3e-3)

    @jax.jit
    def step(carry, key):
        params, state = carry
        k_data, k_loss = jax.random.split(key)
        batch = {"x": jax.random.multivariate_normal(k_data, M, S, (256,))}
        grads, _ = jax.grad(loss_fn, has_aux=True)(params, batch, k_loss)
        updates, state = opt.update(grads, state)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(jax.random.key(1), 3000))
    t = 0.3
    x = path.marginal(jax.random.multivariate_normal(jax.random.key(2), M, S, (500,)),
                      jax.random.normal(jax.random.key(3), (500, 2)), jnp.full((500,), t))
    _, eps_true = analytic_denoiser(path)(x, jnp.asarray(t))
    eps = net.apply(params, x, jnp.full((500,), t))
    rel = float(jnp.linalg.norm(eps - eps_true) / jnp.linalg.norm(eps_true))
    assert rel < 0.15, rel
    # its variational bound is above its PF-ODE NLL (the bound holds for the SDE model; the invariant)
    den = lambda x, t: path.denoise("eps", net.apply(params, x, jnp.broadcast_to(t, (x.shape[0],))), x, t)
    data = jax.random.multivariate_normal(jax.random.key(4), M, S, (2000,))
    vlb = float(jnp.mean(jax.jit(lambda v: diffusion_variational_bound(den, path, v, jax.random.key(5),
                                                                       num_samples=32))(data)))
    ode = -float(jnp.mean(jax.jit(lambda v: pf_ode_log_likelihood(den, path, v, num_steps=100))(data)))
    exact = -stats.multivariate_normal(np.asarray(M), np.asarray(S)).logpdf(np.asarray(data)).mean()
    assert vlb > ode > exact - 0.05, (vlb, ode, exact)
