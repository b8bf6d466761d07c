"""Likelihood terms, KL and bounds against closed forms and scipy."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import stats

from gen_jax import losses
from gen_jax.models import VAE
from gen_jax.models.vae import log_normal_diag_mixture


class LikelihoodTest(parameterized.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_bernoulli_matches_scipy(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(0, 3, (4, 5)).astype(np.float32)
        x = rng.integers(0, 2, (4, 5))
        got = self.variant(losses.bernoulli_log_likelihood)(logits, x)
        want = stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits.astype(np.float64)))).sum(1)
        np.testing.assert_allclose(got, want, rtol=1e-5)

    def test_bernoulli_stable_at_extreme_logits(self):
        got = losses.bernoulli_log_likelihood(jnp.array([[200.0, -200.0]]), jnp.array([[0, 1]]))
        np.testing.assert_allclose(got, [-400.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gaussian_matches_scipy(self):
        rng = np.random.default_rng(1)
        x, m, ls = (rng.normal(size=(3, 7)).astype(np.float32) for _ in range(3))
        got = self.variant(losses.gaussian_log_likelihood)(x, m, ls)
        np.testing.assert_allclose(got, stats.norm.logpdf(x, m, np.exp(ls)).sum(1), rtol=1e-5)

    @parameterized.parameters(2, 17, 256)
    def test_discretized_logistic_is_a_distribution_over_levels(self, k):
        levels = jnp.arange(k).reshape(k, 1)
        for mean, log_scale in [(0.3, -2.0), (-0.9, -5.0), (0.0, 1.0), (5.0, -7.0)]:
            lp = losses.discretized_logistic_log_likelihood(
                levels, jnp.full((k, 1), mean), jnp.full((k, 1), log_scale), num_levels=k)
            assert np.all(np.isfinite(lp))
            np.testing.assert_allclose(jax.nn.logsumexp(lp), 0.0, atol=2e-5)

    def test_discretized_logistic_matches_scipy_cdf(self):
        k, mean, scale = 17, 0.1, 0.2
        levels = np.arange(k)
        lp = losses.discretized_logistic_log_likelihood(
            jnp.asarray(levels)[:, None], jnp.full((k, 1), mean), jnp.full((k, 1), math.log(scale)), num_levels=k)
        c = 2 * levels / (k - 1) - 1
        hi = np.where(levels == k - 1, np.inf, c + 1 / (k - 1))
        lo = np.where(levels == 0, -np.inf, c - 1 / (k - 1))
        want = np.log(stats.logistic.cdf(hi, mean, scale) - stats.logistic.cdf(lo, mean, scale))
        np.testing.assert_allclose(lp, want, rtol=1e-4, atol=1e-5)

    def test_discretized_logistic_gradients_finite_at_extremes(self):
        def f(mean, log_scale):
            levels = jnp.array([[0, 8, 16, 3]])
            return losses.discretized_logistic_log_likelihood(levels, mean, log_scale, num_levels=17).sum()

        for m, s in [(30.0, -7.0), (-30.0, -7.0), (0.0, 7.0), (0.5, -7.0)]:
            g = jax.grad(f, argnums=(0, 1))(jnp.full((1, 4), m), jnp.full((1, 4), s))
            assert all(np.all(np.isfinite(v)) for v in g), (m, s, g)


def test_gaussian_kl_closed_form_against_numerical_integration():
    mean, log_var = np.array([0.7, -1.2]), np.array([-0.5, 0.8])
    grid = np.linspace(-15, 15, 200_001)
    kl_num = 0.0
    for m, lv in zip(mean, log_var):
        q = stats.norm.pdf(grid, m, np.exp(0.5 * lv))
        kl_num += np.trapezoid(q * (stats.norm.logpdf(grid, m, np.exp(0.5 * lv)) - stats.norm.logpdf(grid)), grid)
    got = losses.gaussian_kl(jnp.asarray(mean[None], jnp.float32), jnp.asarray(log_var[None], jnp.float32))
    np.testing.assert_allclose(got, [kl_num], rtol=1e-5)


def test_log_normal_diag_matches_scipy():
    z, m, lv = np.array([[0.3, -2.0]]), np.array([[1.0, 0.5]]), np.array([[0.2, -1.0]])
    want = stats.norm.logpdf(z, m, np.exp(0.5 * lv)).sum(1)
    np.testing.assert_allclose(losses.log_normal_diag(jnp.asarray(z), jnp.asarray(m), jnp.asarray(lv)), want,
                               rtol=1e-6)


def test_elbo_beta_weights_only_the_kl():
    np.testing.assert_allclose(losses.elbo(jnp.array([-10.0]), jnp.array([2.0]), beta=4.0), [-18.0])


@pytest.fixture(scope="module")
def tiny_vae():
    model = VAE(image_shape=(4, 4, 1), latent_dim=3, decoder_params_per_dim=1, hidden=(16,))
    x = (np.random.default_rng(0).random((64, 4, 4, 1)) > 0.5).astype(np.uint8)
    params = model.init(jax.random.key(0), jnp.asarray(x, jnp.float32), jax.random.key(1))
    # Scale the encoder's log-variance so q is visibly not the posterior: the bounds then separate.
    return model, params, {"image": x, "label": np.zeros(64, np.int32)}


def test_iwae_bound_is_above_elbo_and_increases_with_k(tiny_vae):
    model, params, batch = tiny_vae
    means = {}
    for k in (1, 10, 100, 1000):
        bound = jax.jit(losses.make_importance_weighted_bound(model, likelihood="bernoulli", num_levels=2,
                                                              num_samples=k, chunk_size=min(k, 100)))
        # Average over many independent draws: the *expected* bound is monotone in k (Burda et al., Thm 1).
        vals = np.stack([np.asarray(bound(params, batch, jax.random.key(s))) for s in range(20)])
        means[k] = vals.mean()
    assert means[1] < means[10] < means[100] < means[1000], means


def _nelbo_and_k1_bound(model, params, batch, keys):
    """Mean negative ELBO (the training loss's metric) over the first half of ``keys`` and mean negative k = 1
    importance-weighted bound over the second half: independent estimates of the same number."""
    loss_fn = losses.make_vae_loss(model, likelihood="bernoulli", num_levels=2)
    bound = losses.make_importance_weighted_bound(model, likelihood="bernoulli", num_levels=2, num_samples=1)
    half = len(keys) // 2
    nelbo = jax.jit(jax.vmap(lambda k: loss_fn(params, batch, k)[1]["nelbo"]))(keys[:half]).mean()
    iw1 = jax.jit(jax.vmap(lambda k: -bound(params, batch, k).mean()))(keys[half:]).mean()
    return nelbo, iw1


def test_iwae_with_k1_is_the_elbo_in_expectation(tiny_vae):
    nelbo, iw1 = _nelbo_and_k1_bound(*tiny_vae, jax.random.split(jax.random.key(7), 400))
    np.testing.assert_allclose(iw1, nelbo, rtol=2e-3)


def test_iwae_rejects_a_k_that_is_not_a_multiple_of_the_chunk(tiny_vae):
    with pytest.raises(ValueError, match="multiple of chunk_size"):
        losses.make_importance_weighted_bound(tiny_vae[0], likelihood="bernoulli", num_levels=2,
                                              num_samples=150, chunk_size=100)


def test_unknown_likelihood_is_an_error():
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        losses.params_per_dim("poisson")


def _vampprior_vae(latent_dim, num_pseudo_inputs=5):
    model = VAE(image_shape=(4, 4, 1), latent_dim=latent_dim, hidden=(16,), prior="vampprior",
                num_pseudo_inputs=num_pseudo_inputs)
    params = model.init(jax.random.key(3), jnp.zeros((2, 4, 4, 1)), jax.random.key(4))
    return model, params


def test_mixture_log_density_matches_the_sum_over_components_by_scipy():
    rng = np.random.default_rng(0)
    z, means, log_vars = rng.normal(size=(7, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    dens = [stats.multivariate_normal(means[k], np.diag(np.exp(log_vars[k]))).pdf(z) for k in range(4)]
    want = np.log(np.mean(dens, axis=0))
    got = log_normal_diag_mixture(
        jnp.asarray(z[None], jnp.float32), jnp.asarray(means, jnp.float32), jnp.asarray(log_vars, jnp.float32))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_vampprior_is_a_density_and_its_samples_follow_it():
    model, params = _vampprior_vae(latent_dim=1)
    grid = np.linspace(-30.0, 30.0, 60001)
    dens = np.exp(np.asarray(model.apply(params, jnp.asarray(grid[:, None], jnp.float32), method=model.log_prior)))
    np.testing.assert_allclose(np.trapezoid(dens, grid), 1.0, atol=1e-4)
    z = np.asarray(model.apply(params, jax.random.key(5), 400_000, method=model.sample_prior))[:, 0]
    hist, edges = np.histogram(z, bins=40, range=(-4, 4))
    centres = (edges[:-1] + edges[1:]) / 2
    expected = 400_000 * np.interp(centres, grid, dens) * (edges[1] - edges[0])
    assert np.abs(hist - expected).max() < 5 * np.sqrt(expected.max()), (hist, expected)


def test_vampprior_bounds_agree_and_its_pseudo_inputs_learn():
    model, params = _vampprior_vae(latent_dim=2)
    x = (np.random.default_rng(1).random((32, 4, 4, 1)) > 0.5).astype(np.uint8)
    batch = {"image": x, "label": np.zeros(32, np.int32)}
    keys = jax.random.split(jax.random.key(8), 800)
    # The sampled-KL ELBO and the k = 1 bound estimate the same number with independent draws.
    nelbo, iw1 = _nelbo_and_k1_bound(model, params, batch, keys)
    np.testing.assert_allclose(iw1, nelbo, rtol=2e-3)
    loss_fn = losses.make_vae_loss(model, likelihood="bernoulli", num_levels=2)
    grads = jax.grad(lambda p: loss_fn(p, batch, keys[0])[0])(params)
    assert np.abs(np.asarray(grads["params"]["pseudo_inputs"])).max() > 0


def test_vampprior_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown VAE prior 'flat'"):
        VAE(image_shape=(4, 4, 1), prior="flat").init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), jax.random.key(1))
    with pytest.raises(ValueError, match="needs an unconditional VAE"):
        VAE(image_shape=(4, 4, 1), prior="vampprior", num_classes=3).init(
            jax.random.key(0), jnp.zeros((1, 4, 4, 1)), jax.random.key(1), jnp.zeros(1, jnp.int32))
