"""Flow invariants: exact inverses, log-determinants equal to autodiff Jacobians, densities that integrate to
one; MADE's autoregressive property."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.flows import FLOW_KINDS, MULTISCALE_FLOW_KINDS, build_flow, rational_quadratic_spline
from gen_jax.nn.masked import MADE

from conftest import perturb


def random_params(model, x, seed=0, scale=0.3):
    """Initialised parameters plus noise: a zero-initialised flow is the identity, which would test nothing."""
    params = jax.jit(model.init)(jax.random.key(seed), x)  # jitted: eager init compiles op by op
    return perturb(params, scale, seed=seed + 1)


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("dim", [3])
def test_inverse_and_log_det_equal_autodiff_jacobian(kind, dim):
    # float64: random Glow/MAF stacks can be ill-conditioned (condition numbers ~1e4), and float32 slogdet of
    # the autodiff Jacobian then differs from the exact log-det by ~1e-3 for reasons that are not the flow's.
    with jax.enable_x64(True):
        _check_inverse_and_log_det(kind, dim)


def _check_inverse_and_log_det(kind, dim):
    flow = build_flow(kind, dim, num_layers=4, hidden=(16,), data_shift=(0.3,) * dim, data_scale=(2.0,) * dim)
    x = jax.random.normal(jax.random.key(2), (6, dim), jnp.float64) * 1.5
    # Noisy splines get bins of slope ~1/min_derivative = 1e3; stacked, their inverse amplifies round-off by
    # up to 1e12, so the spline's parameters get milder noise.
    scale = 0.1 if kind == "spline" else 0.3
    params = jax.tree.map(lambda a: a.astype(jnp.float64), random_params(flow, x, scale=scale))
    forward = jax.jit(lambda v: flow.apply(params, v, method=flow.forward))
    z, ld = forward(x)
    x_back, ld_inv = jax.jit(lambda v: flow.apply(params, v, method=flow.inverse))(z)
    assert z.dtype == jnp.float64
    np.testing.assert_allclose(x_back, x, atol=1e-9)
    np.testing.assert_allclose(ld_inv, -ld, atol=1e-9)

    def f(v):
        return flow.apply(params, v[None], method=flow.forward)[0][0]

    jacobians = np.asarray(jax.jit(jax.vmap(jax.jacfwd(f)))(x))
    jac_ld = [np.linalg.slogdet(j)[1] for j in jacobians]
    np.testing.assert_allclose(ld, jac_ld, atol=1e-9)


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_density_integrates_to_one_on_a_grid(kind):
    flow = build_flow(kind, 2, num_layers=4, hidden=(16,))
    x = jax.random.normal(jax.random.key(0), (8, 2))
    params = random_params(flow, x, scale=0.1 if kind == "spline" else 0.2)  # see the Jacobian test
    # The window: where the flow's own samples fall, with a margin (exact maths must not depend on it).
    s = np.asarray(flow.apply(params, jax.random.key(5), 20000, (2,), method=flow.sample))
    lo, hi = s.min(0) - 0.5 * np.ptp(s, 0), s.max(0) + 0.5 * np.ptp(s, 0)
    n = 600
    tx, ty = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    grid = np.stack(np.meshgrid(tx, ty), -1).reshape(-1, 2)
    dens = np.exp(np.asarray(jax.jit(lambda p, v: flow.apply(p, v, method=flow.log_prob))(params, grid)))
    mass = dens.sum() * (tx[1] - tx[0]) * (ty[1] - ty[0])
    assert mass == pytest.approx(1.0, abs=0.01)


def test_flow_samples_follow_its_density():
    flow = build_flow("spline", 2, num_layers=2, hidden=(16,))
    params = random_params(flow, jnp.zeros((4, 2)), scale=0.2)
    s = flow.apply(params, jax.random.key(3), 20000, (2,), method=flow.sample)
    # The mean log-density of its own samples is its entropy; a Monte Carlo check against a grid estimate.
    lp = flow.apply(params, s, method=flow.log_prob)
    ticks = np.linspace(-9, 9, 400)
    grid = np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 2)
    lg = np.asarray(flow.apply(params, grid, method=flow.log_prob))
    entropy_grid = -np.sum(np.exp(lg) * lg) * (ticks[1] - ticks[0]) ** 2
    assert float(-lp.mean()) == pytest.approx(entropy_grid, abs=0.03)


def test_spline_is_monotone_identity_outside_and_exactly_invertible():
    rng = np.random.default_rng(0)
    k = 6
    w, h, d = (jnp.asarray(rng.standard_normal((1, k))), jnp.asarray(rng.standard_normal((1, k))),
               jnp.asarray(rng.standard_normal((1, k - 1))))
    x = jnp.linspace(-5, 5, 1001)[:, None]
    y, ld = rational_quadratic_spline(x[:, 0:1], w, h, d, bound=3.0)
    assert np.all(np.diff(np.asarray(y[:, 0])) > 0)
    outside = np.abs(np.asarray(x[:, 0])) > 3
    np.testing.assert_allclose(y[outside], x[outside])
    back, ld_inv = rational_quadratic_spline(y, w, h, d, bound=3.0, inverse=True)
    np.testing.assert_allclose(back, x, atol=1e-5)
    np.testing.assert_allclose(ld_inv, -ld, atol=1e-4)  # float32
    slope = jax.vmap(jax.grad(lambda v: rational_quadratic_spline(v[None, None], w, h, d, bound=3.0)[0][0, 0]))(
        x[:, 0])
    off_knot = np.abs(np.abs(np.asarray(x[:, 0])) - 3.0) > 1e-6  # clip's subgradient at the bound itself is 1/2
    np.testing.assert_allclose(np.exp(ld[off_knot, 0]), slope[off_knot], rtol=1e-4)


@pytest.mark.parametrize("order,seed", [(None, None), ((3, 1, 4, 2, 5), None), (None, 7)])
def test_made_output_depends_only_on_earlier_inputs(order, seed):
    dim = 5
    made = MADE(dim, (32, 32), num_outputs_per_input=2, order=order, mask_seed=seed)
    x = jax.random.normal(jax.random.key(0), (1, dim))
    params = made.init(jax.random.key(1), x)
    jac = np.asarray(jax.jacfwd(lambda v: made.apply(params, v[None])[0])(x[0]))  # (dim, 2, dim)
    from gen_jax.nn.masked import made_degrees
    degrees = made_degrees(dim, (32, 32), order=None if order is None else np.asarray(order), seed=seed)[0]
    for i in range(dim):
        for j in range(dim):
            if degrees[j] >= degrees[i]:  # j at or after i in the order
                assert np.all(jac[i, :, j] == 0.0), (i, j)
    # ...and it is not trivially zero: some earlier inputs do matter.
    assert np.abs(jac).sum() > 0


@pytest.mark.parametrize("kind", MULTISCALE_FLOW_KINDS)
def test_multiscale_flow_inverse_and_log_det_equal_autodiff_jacobian(kind, hw=(4, 4), num_scales=2):
    """Squeezes, splits, convolutional couplings (and for Glow actnorm + 1x1 convolutions): the flattened
    latent is an exact bijection of the flattened image, its log-det that of the full Jacobian."""
    d = hw[0] * hw[1]
    flow = build_flow(kind, d, num_layers=1, hidden=(8,), image_hw=hw, num_scales=num_scales,
                      data_shift=np.full(d, 0.4), data_scale=np.full(d, 0.3))
    x32 = jax.random.uniform(jax.random.key(2), (3, d))
    # Random parameters of the right shapes, without compiling the initialisers (~7-20 s on XLA:CPU). The
    # noise is milder than the vector flows': at 0.2, stacked noisy convolutional couplings map some pixels
    # to |z| ~ 1e5 and the round-trip error grows to 1e-5 for reasons not the flow's.
    rng = np.random.default_rng(0)
    shapes = jax.eval_shape(flow.init, jax.random.key(0), x32)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(0.1 * rng.standard_normal(a.shape)), shapes)
        x = jnp.asarray(x32, jnp.float64)
        def everything(v):  # one compilation for all the quantities checked
            def forward(u):
                return flow.apply(params, u, method=flow.forward)
            z, ld = forward(v)
            x_back, ld_inv = flow.apply(params, z, method=flow.inverse)
            jac = jax.vmap(jax.jacfwd(lambda u: forward(u[None])[0][0]))(v)
            return z, ld, x_back, ld_inv, jac, flow.apply(params, v, method=flow.log_prob)

        z, ld, x_back, ld_inv, jac, lp = jax.jit(everything)(x)
        assert z.shape == x.shape
        np.testing.assert_allclose(x_back, x, atol=1e-9)
        np.testing.assert_allclose(ld_inv, -ld, atol=1e-9)
        np.testing.assert_allclose(ld, [np.linalg.slogdet(j)[1] for j in np.asarray(jac)], atol=1e-8)
        # log p is the standard-normal density of the latent plus the log-det, and sampling inverts.
        np.testing.assert_allclose(lp, -0.5 * np.sum(np.asarray(z) ** 2, -1) - 0.5 * d * np.log(2 * np.pi) + ld,
                                   atol=1e-9)
        sample = jax.jit(lambda r: flow.apply(params, r, 5, (d,), method=flow.sample))
        assert sample(jax.random.key(0)).shape == (5, d)


def test_multiscale_flow_rejects_a_map_it_cannot_squeeze():
    flow = build_flow("multiscale_realnvp", 36, num_layers=1, hidden=(4,), image_hw=(6, 6), num_scales=3)
    with pytest.raises(ValueError, match="3x3 map cannot be squeezed"):
        flow.init(jax.random.key(0), jnp.zeros((2, 36)))
    with pytest.raises(ValueError, match="needs images"):
        build_flow("multiscale_glow", 4)
