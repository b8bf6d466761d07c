"""Normalizing flows: an invertible ``f`` from data ``x`` to a standard-normal ``z``, with
``log p(x) = log N(f(x); 0, I) + log |det df/dx|`` (exact, trained by NLL).

Directions: every layer's ``forward(x) -> (z, log|det dz/dx|)`` maps *data towards noise* (the density
direction) and ``inverse(z) -> (x, log|det dx/dz|)`` maps *noise towards data* (the sampling direction).

Layers act on the last axis, so the same layer serves vectors ``(B, D)`` and images ``(B, H, W, C)`` (on images
an "invertible linear" over the last axis is Glow's invertible 1x1 convolution and ActNorm is per channel;
their log-determinants count every pixel).

* RealNVP (Dinh et al. 2017): :class:`AffineCoupling` with alternating masks.
* Glow (Kingma & Dhariwal 2018): :class:`ActNorm`, :class:`InvertibleLinearLU`, :class:`AffineCoupling`.
* MAF (Papamakarios et al. 2017): :class:`MaskedAutoregressiveAffine` (a MADE conditioner).
* Neural spline flows (Durkan et al. 2019): :class:`SplineCoupling` with rational-quadratic splines.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.nn.conv import PatchConv
from gen_jax.nn.masked import MADE
from gen_jax.nn.mlp import MLP


def _positions(x: jax.Array) -> int:
    """Number of positions sharing a last-axis transform (1 for vectors, H*W for images)."""
    return int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1


def _sum_except_batch(v: jax.Array) -> jax.Array:
    return v.reshape(v.shape[0], -1).sum(-1)


def alternating_mask(dim: int, parity: int) -> np.ndarray:
    """1 where a coupling layer passes the feature through unchanged (and conditions on it)."""
    return ((np.arange(dim) + parity) % 2 == 0).astype(np.float32)


class _Conditioner(nn.Module):
    """MLP from the masked input to ``num_params`` values per feature, zero-initialised at the output so every
    coupling layer starts as the identity."""

    dim: int
    hidden: Sequence[int]
    num_params: int

    @nn.compact
    def __call__(self, x):
        h = MLP(tuple(self.hidden), activate_final=True)(x)
        out = nn.Dense(self.dim * self.num_params, kernel_init=nn.initializers.zeros)(h)
        return out.reshape(*x.shape[:-1], self.dim, self.num_params)


class Bijector(nn.Module):
    """A flow layer: ``__call__(x, inverse)`` returns ``(output, log|det|)`` of the direction asked."""

    def forward(self, x):
        return self(x, inverse=False)

    def inverse(self, z):
        return self(z, inverse=True)


def _masked_affine(x, m, shift_raw, scale_raw, max_log_scale: float, inverse: bool):
    """The affine coupling transform: where ``m`` is 1, ``x`` passes through; elsewhere
    ``x * exp(s) + t`` with ``s = max_log_scale * tanh(scale_raw / max_log_scale)``. Returns ``(y, log|det|)``."""
    shift = shift_raw * (1 - m)
    log_scale = max_log_scale * jnp.tanh(scale_raw / max_log_scale) * (1 - m)
    if inverse:
        return (x - shift) * jnp.exp(-log_scale), -_sum_except_batch(log_scale)
    return x * jnp.exp(log_scale) + shift, _sum_except_batch(log_scale)


def _standardise(x, shift, scale, inverse: bool):
    """The fixed map ``(x - shift) / scale`` (or its inverse) and its log-determinant; ``shift`` and ``scale``
    broadcast against one example (a scalar, or one value per last-axis feature)."""
    ld = -jnp.sum(jnp.broadcast_to(jnp.log(scale), x.shape[1:]))
    if inverse:
        return x * scale + shift, jnp.full((x.shape[0],), -ld)
    return (x - shift) / scale, jnp.full((x.shape[0],), ld)


class AffineCoupling(Bijector):
    """``z = m * x + (1 - m) * (x * exp(s(m x)) + t(m x))`` with ``s = scale * tanh(raw / scale)`` bounded for
    stability (RealNVP's affine coupling)."""

    mask: tuple[float, ...]
    hidden: Sequence[int] = (64, 64)
    max_log_scale: float = 3.0

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        m = jnp.asarray(self.mask, x.dtype)
        p = _Conditioner(len(self.mask), self.hidden, 2, name="conditioner")(x * m)  # m x is unchanged
        return _masked_affine(x, m, p[..., 0], p[..., 1], self.max_log_scale, inverse)


class ActNorm(Bijector):
    """Per-feature ``z = (x + b) * exp(s)``, initialised from the batch given to ``init`` so ``z`` has zero mean
    and unit variance per feature (Glow); later batches use the learned parameters. Initialise with a real
    batch of data (hundreds of examples), not a dummy one."""

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        axes = tuple(range(x.ndim - 1))
        bias = self.param("bias", lambda _: -jnp.mean(x, axes))
        # The floor keeps a feature that is (nearly) constant in the init batch from starting at a huge scale.
        log_scale = self.param("log_scale", lambda _: -jnp.log(jnp.maximum(jnp.std(x, axes), 1e-2)))
        ld = jnp.sum(log_scale) * _positions(x)
        if inverse:
            return x * jnp.exp(-log_scale) - bias, jnp.full((x.shape[0],), -ld)
        return (x + bias) * jnp.exp(log_scale), jnp.full((x.shape[0],), ld)


class InvertibleLinearLU(Bijector):
    """``z = x W`` over the last axis with ``W = P L (U + diag(sign(s) exp(log|s|)))`` (Glow's LU-parameterised
    invertible 1x1 convolution): ``log|det W| = sum log|s|`` in O(C), and ``W`` stays invertible."""

    dim: int
    seed: int = 0

    def setup(self):
        rng = np.random.default_rng(self.seed)
        w0 = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))[0]  # a random rotation
        import scipy.linalg
        p, lower, upper = scipy.linalg.lu(w0)
        s = np.diag(upper)
        self.perm = jnp.asarray(p, jnp.float32)
        self.sign_s = jnp.asarray(np.sign(s), jnp.float32)
        self.lower = self.param("lower", lambda _: jnp.asarray(np.tril(lower, -1), jnp.float32))
        self.upper = self.param("upper", lambda _: jnp.asarray(np.triu(upper, 1), jnp.float32))
        self.log_s = self.param("log_abs_s", lambda _: jnp.asarray(np.log(np.abs(s)), jnp.float32))

    def _matrix(self):
        eye = jnp.eye(self.dim)
        lower = jnp.tril(self.lower, -1) + eye
        upper = jnp.triu(self.upper, 1) + jnp.diag(self.sign_s * jnp.exp(self.log_s))
        return self.perm @ lower @ upper

    def __call__(self, x, inverse: bool = False):
        ld = jnp.sum(self.log_s) * _positions(x)
        if inverse:
            return x @ jnp.linalg.inv(self._matrix()), jnp.full((x.shape[0],), -ld)
        return x @ self._matrix(), jnp.full((x.shape[0],), ld)


class Reverse(Bijector):
    """Reverses the feature order (a permutation: log-det 0)."""

    def __call__(self, x, inverse: bool = False):
        return x[..., ::-1], jnp.zeros(x.shape[0])


class MaskedAutoregressiveAffine(Bijector):
    """MAF layer: ``z_d = (x_d - mu_d(x_<d)) * exp(-alpha_d(x_<d))`` with a MADE conditioner. The density
    direction is one pass; sampling inverts dimension by dimension (D passes)."""

    dim: int
    hidden: Sequence[int] = (64, 64)
    max_log_scale: float = 3.0

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        made = MADE(self.dim, tuple(self.hidden), num_outputs_per_input=2, zero_init_output=True, name="made")

        def mu_alpha(v):
            p = made(v)
            return p[..., 0], self.max_log_scale * jnp.tanh(p[..., 1] / self.max_log_scale)

        if not inverse:
            mu, alpha = mu_alpha(x)
            return (x - mu) * jnp.exp(-alpha), -alpha.sum(-1)
        z, out = x, jnp.zeros_like(x)
        for _ in range(self.dim):  # after pass d, dimensions 1..d are exact
            mu, alpha = mu_alpha(out)
            out = z * jnp.exp(alpha) + mu
        mu, alpha = mu_alpha(out)
        return out, alpha.sum(-1)


# ------------------------------------------------------------------------------ rational-quadratic splines


def rational_quadratic_spline(x, widths, heights, derivatives, *, bound: float, inverse: bool = False,
                              min_bin: float = 1e-3, min_derivative: float = 1e-3):
    """Monotone rational-quadratic spline on ``[-bound, bound]``, identity outside (linear tails), per element.

    Args:
      x: ``(...)`` inputs.
      widths, heights: ``(..., K)`` unnormalised bin sizes (softmax-normalised here).
      derivatives: ``(..., K - 1)`` unconstrained inner-knot derivatives (softplus here; the two boundary
        derivatives are 1 so the spline joins the identity tails smoothly).
      inverse: evaluate the inverse map instead.
    Returns:
      ``(y, log|dy/dx|)`` elementwise (for ``inverse``, ``log|dx/dy|``).

    Durkan et al. 2019, "Neural Spline Flows", eqs. 4-8 and appendix A.
    """
    k = widths.shape[-1]
    widths = jnp.broadcast_to(widths, (*x.shape, k))
    heights = jnp.broadcast_to(heights, (*x.shape, k))
    derivatives = jnp.broadcast_to(derivatives, (*x.shape, k - 1))
    w = min_bin + (1 - min_bin * k) * jax.nn.softmax(widths, -1)
    h = min_bin + (1 - min_bin * k) * jax.nn.softmax(heights, -1)
    d = min_derivative + jax.nn.softplus(derivatives + math.log(math.expm1(1 - min_derivative)))
    ones = jnp.ones((*d.shape[:-1], 1), d.dtype)
    d = jnp.concatenate([ones, d, ones], -1)  # (..., K + 1)

    def knots(sizes):
        c = jnp.cumsum(sizes, -1)
        c = jnp.concatenate([jnp.zeros((*c.shape[:-1], 1), c.dtype), c], -1)
        return 2 * bound * c - bound  # (..., K + 1), from -bound to bound

    xk, yk = knots(w), knots(h)
    xk = xk.at[..., -1].set(bound)
    yk = yk.at[..., -1].set(bound)
    inside = (x >= -bound) & (x <= bound)
    xc = jnp.clip(x, -bound, bound)
    ref = yk if inverse else xk
    idx = jnp.clip(jnp.sum(xc[..., None] >= ref[..., :-1], -1) - 1, 0, k - 1)[..., None]

    def pick(a):
        return jnp.take_along_axis(a, idx, -1)[..., 0]

    x0, x1, y0, y1 = pick(xk[..., :-1]), pick(xk[..., 1:]), pick(yk[..., :-1]), pick(yk[..., 1:])
    d0, d1 = pick(d[..., :-1]), pick(d[..., 1:])
    bw, bh = x1 - x0, y1 - y0
    s = bh / bw
    if not inverse:
        xi = (xc - x0) / bw
        t = xi * (1 - xi)
        denom = s + (d1 + d0 - 2 * s) * t
        y = y0 + bh * (s * xi**2 + d0 * t) / denom
        dydx = s**2 * (d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2) / denom**2
        return jnp.where(inside, y, x), jnp.where(inside, jnp.log(dydx), 0.0)
    dy = xc - y0
    a = bh * (s - d0) + dy * (d1 + d0 - 2 * s)
    b = bh * d0 - dy * (d1 + d0 - 2 * s)
    c = -s * dy
    disc = jnp.maximum(b**2 - 4 * a * c, 0.0)
    xi = (2 * c) / (-b - jnp.sqrt(disc))
    out = x0 + xi * bw
    t = xi * (1 - xi)
    denom = s + (d1 + d0 - 2 * s) * t
    dydx = s**2 * (d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2) / denom**2
    return jnp.where(inside, out, x), jnp.where(inside, -jnp.log(dydx), 0.0)


class SplineCoupling(Bijector):
    """Coupling layer whose transformed half goes through a rational-quadratic spline conditioned on the other
    half (Durkan et al. 2019)."""

    mask: tuple[float, ...]
    hidden: Sequence[int] = (64, 64)
    num_bins: int = 8
    bound: float = 4.0

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        m = jnp.asarray(self.mask, x.dtype)
        k = self.num_bins
        p = _Conditioner(len(self.mask), self.hidden, 3 * k - 1, name="conditioner")(x * m)
        y, ld = rational_quadratic_spline(x, p[..., :k], p[..., k:2 * k], p[..., 2 * k:], bound=self.bound,
                                          inverse=inverse)
        return m * x + (1 - m) * y, _sum_except_batch(ld * (1 - m))


# ------------------------------------------------------------------------------ the flow


class _StandardNormalBase(nn.Module):
    """``log_prob`` and ``sample`` of a flow with a standard-normal base, from its ``forward``/``inverse``."""

    def log_prob(self, x):
        z, ld = self.forward(x)
        return -0.5 * _sum_except_batch(z**2) - 0.5 * math.log(2 * math.pi) * (z.size // z.shape[0]) + ld

    def __call__(self, x):
        return self.log_prob(x)

    def sample(self, rng, num: int, shape: tuple[int, ...] | None = None):
        """``num`` draws; ``shape`` defaults to the flow's own event shape (``shape`` is kept for old callers)."""
        shape = self.event_shape if shape is None else tuple(shape)
        return self.inverse(jax.random.normal(rng, (num, *shape)))[0]


class Flow(_StandardNormalBase):
    """A stack of layers over a standard-normal base on ``dim``-vectors; ``data_shift``/``data_scale`` first
    standardise the data (a fixed affine map whose log-determinant is included), so the same layers fit any
    data's scale (a spline's ``bound`` is in standardised units)."""

    layers: Sequence[nn.Module]
    data_shift: tuple[float, ...] | None = None
    data_scale: tuple[float, ...] | None = None
    dim: int | None = None

    @property
    def event_shape(self) -> tuple[int, ...]:
        if self.dim is None:
            raise ValueError("this Flow was built without dim: pass sample(rng, num, shape)")
        return (self.dim,)

    def _standardise(self, x, inverse: bool):
        if self.data_shift is None:
            return x, jnp.zeros(x.shape[0])
        return _standardise(x, jnp.asarray(self.data_shift), jnp.asarray(self.data_scale), inverse)

    def forward(self, x):
        x, total = self._standardise(x, inverse=False)
        for layer in self.layers:
            x, ld = layer.forward(x)
            total = total + ld
        return x, total

    def inverse(self, z):
        total = jnp.zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            total = total + ld
        z, ld = self._standardise(z, inverse=True)
        return z, total + ld


# ------------------------------------------------------------------------------ multi-scale image flows


def squeeze2x2(x: jax.Array) -> jax.Array:
    """``(B, H, W, C) -> (B, H/2, W/2, 4C)``: each 2x2 block becomes 4 channels (RealNVP's squeeze)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze2x2(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c // 4)


class Squeeze(Bijector):
    """Space to depth, 2x2 (a permutation: log-det 0)."""

    def __call__(self, x, inverse: bool = False):
        return (unsqueeze2x2(x) if inverse else squeeze2x2(x)), jnp.zeros(x.shape[0])


class ConvAffineCoupling(Bijector):
    """RealNVP's affine coupling on images ``(B, H, W, C)`` with a convolutional conditioner (3x3, 1x1, 3x3
    convolutions of ``hidden`` maps, the last zero-initialised so the layer starts as the identity).

    ``mask="checkerboard"``: pixels with ``(i + j + parity)`` even pass through; ``"channel"``: the first
    (``parity=0``) or second half of the channels pass through. ``s = max_log_scale * tanh(raw / max)``."""

    mask: str
    parity: int = 0
    hidden: int = 64
    max_log_scale: float = 3.0

    def _mask(self, shape):
        _, h, w, c = shape
        if self.mask == "checkerboard":
            return jnp.asarray(checkerboard_mask(h, w, self.parity).reshape(1, h, w, 1))
        if self.mask == "channel":
            if c < 2:
                raise ValueError("a channel coupling needs at least 2 channels (squeeze first)")
            half = (np.arange(c) < c // 2) if self.parity == 0 else (np.arange(c) >= c // 2)
            return jnp.asarray(half.astype(np.float32).reshape(1, 1, 1, c))
        raise ValueError(f"unknown coupling mask {self.mask!r}; use 'checkerboard' or 'channel'")

    @nn.compact
    def __call__(self, x, inverse: bool = False):
        c = x.shape[-1]
        m = self._mask(x.shape).astype(x.dtype)
        net_in = x * m
        if self.mask == "checkerboard":  # the conditioner also sees which pixels are the given ones
            net_in = jnp.concatenate([net_in, jnp.broadcast_to(m, x.shape[:3] + (1,))], axis=-1)
        h = nn.relu(PatchConv(self.hidden, (3, 3), name="conv_in")(net_in))
        h = nn.relu(PatchConv(self.hidden, (1, 1), name="conv_mid")(h))
        out = PatchConv(2 * c, (3, 3), kernel_init=nn.initializers.zeros, name="conv_out")(h)
        return _masked_affine(x, m, out[..., :c], out[..., c:], self.max_log_scale, inverse)


def multiscale_plan(kind: str, image_shape: tuple[int, int, int], num_scales: int, steps: int, hidden: int,
                    max_log_scale: float = 3.0):
    """The layer sequence of a multi-scale flow: a tuple of bijectors and ``"split"`` markers (after a split
    half of the channels leave the flow as latent variables with a standard-normal prior, Dinh et al. 2017).

    ``realnvp`` per scale: ``steps`` checkerboard couplings, squeeze, ``steps`` channel couplings, split; the
    last scale: ``steps + 1`` checkerboard couplings. ``glow`` per scale: squeeze, ``steps`` x (actnorm,
    invertible 1x1 convolution, channel coupling), split, and no split after the last scale."""
    h, w, c = image_shape
    plan = []
    for s in range(num_scales):
        last = s == num_scales - 1
        if kind == "realnvp":
            plan += [ConvAffineCoupling("checkerboard", i % 2, hidden, max_log_scale) for i in range(steps + (1 if last else 0))]
            if last:
                break
        if h % 2 or w % 2:
            raise ValueError(f"a {h}x{w} map cannot be squeezed: use fewer scales (model.num_scales)")
        h, w, c = h // 2, w // 2, 4 * c
        plan.append(Squeeze())
        for i in range(steps):
            if kind == "glow":
                plan += [ActNorm(), InvertibleLinearLU(c, seed=100 * s + i)]
            plan.append(ConvAffineCoupling("channel", i % 2, hidden, max_log_scale))
        if not last or kind == "realnvp":
            plan.append("split")
            c -= c // 2
    return tuple(plan)


class MultiScaleFlow(_StandardNormalBase):
    """A multi-scale convolutional flow over flattened images: ``forward`` takes ``(B, H*W*C)`` vectors and
    returns ``(B, H*W*C)`` latents (the variables factored out at each split, then the rest), so it is a
    drop-in for :class:`Flow` in the image-flow task. ``data_shift``/``data_scale``: one scalar each, a fixed
    standardisation whose log-determinant is included."""

    kind: str
    image_shape: tuple[int, int, int]
    num_scales: int = 2
    steps: int = 3
    hidden: int = 64
    data_shift: float = 0.0
    data_scale: float = 1.0
    max_log_scale: float = 3.0

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (int(np.prod(self.image_shape)),)

    def setup(self):
        self.plan = multiscale_plan(self.kind, tuple(self.image_shape), self.num_scales, self.steps, self.hidden,
                                    self.max_log_scale)
        self.layers = [op for op in self.plan if not isinstance(op, str)]

    def forward(self, x):
        x, total = _standardise(x, self.data_shift, self.data_scale, inverse=False)
        x = x.reshape(x.shape[0], *self.image_shape)
        latents, layer = [], 0
        for op in self.plan:
            if isinstance(op, str):  # split: the second half of the channels leaves as latents
                keep = x.shape[-1] - x.shape[-1] // 2
                latents.append(x[..., keep:].reshape(x.shape[0], -1))
                x = x[..., :keep]
                continue
            x, ld = self.layers[layer].forward(x)
            total, layer = total + ld, layer + 1
        return jnp.concatenate(latents + [x.reshape(x.shape[0], -1)], axis=-1), total

    def _shapes(self):
        """The map shape before each split and at the end, from the plan (static)."""
        h, w, c = self.image_shape
        before_split = []
        for op in self.plan:
            if isinstance(op, Squeeze):
                h, w, c = h // 2, w // 2, 4 * c
            elif isinstance(op, str):
                before_split.append((h, w, c))
                c -= c // 2
        return before_split, (h, w, c)

    def inverse(self, z):
        before_split, final = self._shapes()
        sizes = [h * w * (c // 2) for h, w, c in before_split]
        offsets = np.cumsum([0] + sizes)
        x = z[:, offsets[-1]:].reshape(z.shape[0], *final)
        total, layer, split = jnp.zeros(z.shape[0]), len(self.layers), len(before_split)
        for op in reversed(self.plan):
            if isinstance(op, str):
                split -= 1
                h, w, c = before_split[split]
                out = z[:, offsets[split]:offsets[split + 1]].reshape(z.shape[0], h, w, c // 2)
                x = jnp.concatenate([x, out], axis=-1)
                continue
            layer -= 1
            x, ld = self.layers[layer].inverse(x)
            total = total + ld
        x, ld = _standardise(x.reshape(z.shape[0], -1), self.data_shift, self.data_scale, inverse=True)
        return x, total + ld


FLOW_KINDS = ("realnvp", "glow", "maf", "spline")  # any vector data
MULTISCALE_FLOW_KINDS = ("multiscale_realnvp", "multiscale_glow")  # images only


def checkerboard_mask(height: int, width: int, parity: int) -> np.ndarray:
    """RealNVP's checkerboard mask over a flattened ``height x width`` image."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return (((i + j + parity) % 2) == 0).astype(np.float32).reshape(-1)


def build_flow(kind: str, dim: int, *, num_layers: int = 8, hidden: Sequence[int] = (64, 64),
               num_bins: int = 8, bound: float = 4.0, data=None, data_shift=None, data_scale=None,
               max_log_scale: float = 3.0, image_hw: tuple[int, int] | None = None, num_scales: int = 2):
    """A flow over ``dim``-vectors. ``num_layers`` counts *steps*, and a step of each kind is:

    * ``realnvp``: one affine coupling (masks alternate between steps);
    * ``glow``: ActNorm, an LU-parameterised invertible linear map, an affine coupling;
    * ``maf``: one MADE-affine layer (the variable order is reversed between steps);
    * ``spline``: an LU-parameterised invertible linear map, a rational-quadratic spline coupling (``num_bins``
      bins on ``[-bound, bound]`` in standardised units, identity outside);
    * ``multiscale_realnvp`` / ``multiscale_glow`` (images only, :class:`MultiScaleFlow`): the couplings per
      stage of each of ``num_scales`` scales; ``hidden[0]`` maps in each conditioner.

    Standardisation: pass the training data as ``data`` (``(N, dim)``) and the flow first maps it to zero mean
    and unit variance per feature with a fixed affine map whose log-determinant is included, as the trainer
    does (``data_shift``/``data_scale`` give the map directly). Without either the flow sees raw data: a
    spline flow on data far outside ``[-bound, bound]`` is then the identity there.

    ``max_log_scale``: the affine couplings' (and MAF's) log-scale is ``max * tanh(raw / max)``.
    ``image_hw``: the vectors are flattened single-channel images; coupling masks are then RealNVP's
    checkerboards instead of alternating features (and the conditioners are MLPs over the whole image).
    Multi-scale flows take one scalar shift/scale (the means of ``data_shift``/``data_scale``).
    """
    if data is not None:
        if data_shift is not None or data_scale is not None:
            raise ValueError("pass either data or data_shift/data_scale, not both")
        x = np.asarray(data, np.float64).reshape(len(data), -1)
        if x.shape[1] != dim:
            raise ValueError(f"data has {x.shape[1]} features, the flow {dim}")
        data_shift, data_scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    if kind in MULTISCALE_FLOW_KINDS:
        if image_hw is None:
            raise ValueError(f"flow {kind!r} needs images (image_hw); use realnvp/glow/maf/spline for vectors")
        if dim != image_hw[0] * image_hw[1]:
            raise ValueError(f"dim={dim} is not a single-channel {image_hw[0]}x{image_hw[1]} image")
        shift = 0.0 if data_shift is None else float(np.mean(data_shift))
        scale = 1.0 if data_scale is None else float(np.mean(data_scale))
        return MultiScaleFlow(kind[len("multiscale_"):], (*image_hw, 1), num_scales=num_scales,
                              steps=num_layers, hidden=int(hidden[0]), data_shift=shift, data_scale=scale,
                              max_log_scale=max_log_scale)
    layers = []
    for i in range(num_layers):
        if image_hw is not None:
            mask = tuple(checkerboard_mask(*image_hw, i % 2).tolist())
        else:
            mask = tuple(alternating_mask(dim, i % 2).tolist())
        if kind == "realnvp":
            layers.append(AffineCoupling(mask, hidden, max_log_scale))
        elif kind == "glow":
            layers += [ActNorm(), InvertibleLinearLU(dim, seed=i), AffineCoupling(mask, hidden, max_log_scale)]
        elif kind == "maf":
            layers += ([MaskedAutoregressiveAffine(dim, hidden, max_log_scale)]
                       + ([Reverse()] if i < num_layers - 1 else []))
        elif kind == "spline":
            layers += [InvertibleLinearLU(dim, seed=i), SplineCoupling(mask, hidden, num_bins, bound)]
        else:
            raise ValueError(f"unknown flow kind {kind!r}; known: {list(FLOW_KINDS + MULTISCALE_FLOW_KINDS)}")
    shift = None if data_shift is None else tuple(float(v) for v in np.asarray(data_shift))
    scale = None if data_scale is None else tuple(float(v) for v in np.asarray(data_scale))
    return Flow(tuple(layers), data_shift=shift, data_scale=scale, dim=dim)
