"""GAN players as pure Flax modules: generators map noise ``z`` (and a label) to samples; discriminators map
samples (and a label) to one logit each.

* :class:`MLPGenerator` / the ``mlp`` :class:`Discriminator`: the 2-D toys.
* :class:`DCGANGenerator` / the ``dcgan`` :class:`Discriminator` (Radford et al. 2016): no pooling, 4x4 stride-2
  convolutions down and 4x4 stride-2 transposed convolutions up, batch norm, ReLU and a tanh output in the
  generator, LeakyReLU(0.2) in the discriminator. On CPU the strided layers are computed as exactly equivalent
  matrix products (:class:`gen_jax.nn.Col2ImConvTranspose`, :class:`gen_jax.nn.SpaceToDepthConv`: XLA:CPU's
  weight gradients of the strided forms are slow paths); ``conv="flax"`` keeps the plain Flax layers (same
  parameters), for comparison.
* :class:`StyleGenerator` (Karras et al. 2019, small): a mapping network ``z -> w``, a synthesis network from a
  learned constant with AdaIN-modulated layers and per-pixel noise, style mixing, the truncation trick;
  :func:`style_mixing_grid` draws StyleGAN's mixing figure.
* Conditional players: the generator takes the one-hot label beside ``z``; the discriminator adds the projection
  ``<embed(y), h(x)>`` to its logit (Miyato & Koyama 2018).
* Discriminator options against mode collapse (:mod:`gen_jax.nn.minibatch`): minibatch discrimination, minibatch
  standard deviation, packing; spectral normalisation of every layer (Miyato et al. 2018); batch, layer or no
  normalisation (no batch norm in a gradient-penalty critic: the penalty is per example).

Batch norm and spectral norm keep state in the ``batch_stats`` collection: apply with ``mutable=["batch_stats"]``
when training. ``axis_name`` set (under ``jax.pmap``) makes batch norm use the statistics of the global batch.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.conv import Col2ImConvTranspose, PatchConv, SpaceToDepthConv
from gen_jax.nn.minibatch import MinibatchDiscrimination, minibatch_stddev, pack
from gen_jax.nn.resample import average_pool, nearest_upsample

NORMS = ("none", "batch", "layer")
MINIBATCH_FEATURES = ("none", "discrimination", "stddev")


def _with_label(z: jax.Array, labels, num_classes: int) -> jax.Array:
    if not num_classes:
        if labels is not None:
            raise ValueError("labels given to an unconditional player (num_classes = 0)")
        return z
    if labels is None:
        raise ValueError(f"this player is conditional ({num_classes} classes): pass labels")
    return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


class MLPGenerator(nn.Module):
    """``z -> x`` by ReLU layers of sizes ``hidden`` (batch norm after each when ``batch_norm``)."""

    out_dim: int
    hidden: Sequence[int] = (256, 256, 256)
    batch_norm: bool = False
    num_classes: int = 0
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, labels=None, train: bool = False) -> jax.Array:
        h = _with_label(z, labels, self.num_classes)
        for width in self.hidden:
            h = nn.Dense(width, use_bias=not self.batch_norm)(h)  # batch norm removes a bias: none to train
            if self.batch_norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name)(h)
            h = nn.relu(h)
        return nn.Dense(self.out_dim)(h)


def resolution_weights(level, num_resolutions: int) -> jax.Array:
    """Progressive growing's blend: the weight of each resolution ``i`` (0 = the lowest) at ``level`` in
    ``[0, num_resolutions - 1]``, ``max(0, 1 - |level - i|)``: one resolution at an integer level, two faded
    linearly in between (Karras et al. 2018's alpha is ``level``'s fractional part)."""
    i = jnp.arange(num_resolutions, dtype=jnp.float32)
    return jnp.maximum(0.0, 1.0 - jnp.abs(jnp.asarray(level, jnp.float32) - i))


def blur_to_level(x: jax.Array, level, num_resolutions: int) -> jax.Array:
    """Images ``(B, H, W, C)`` as a progressively grown generator at ``level`` draws them: each resolution
    ``H / 2^(n-1-i)`` (2x2 average pooling, repeated back up to ``H``) weighted by :func:`resolution_weights`.
    How the real images meet the discriminator while the generator grows (it stays at full resolution)."""
    weights = resolution_weights(level, num_resolutions)
    out = weights[-1] * x
    for i in range(num_resolutions - 1):
        f = 2 ** (num_resolutions - 1 - i)
        out = out + weights[i] * nearest_upsample(average_pool(x, f), f)
    return out


class DCGANGenerator(nn.Module):
    """``z`` -> a dense layer to an ``(H / 2^n, W / 2^n, channels[0])`` map -> ``n = len(channels)`` 4x4
    stride-2 transposed convolutions (maps ``channels[1:]``, then the image's channels) -> tanh: images in
    [-1, 1]. Batch norm (``batch_norm``) and ReLU after every layer but the last.

    ``progressive`` (Karras et al. 2018, at fixed shapes): every resolution below the last has its own "to
    image" layer (a 1x1 convolution and tanh); called with ``level`` in ``[0, n]`` the output is those images,
    repeated up to full size, blended by :func:`resolution_weights` (``level = n``, the default, is the full
    network alone). All layers always run, so one compiled step serves every level."""

    image_shape: Sequence[int]
    channels: Sequence[int] = (128, 64)
    batch_norm: bool = True
    num_classes: int = 0
    conv: str = "col2im"  # col2im | flax (nn.ConvTranspose: same function and parameters, slow on CPU)
    progressive: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, labels=None, train: bool = False, level=None) -> jax.Array:
        h_img, w_img, c_img = self.image_shape
        n = len(self.channels)
        if h_img % 2 ** n or w_img % 2 ** n:
            raise ValueError(f"DCGAN generator: {n} upsamplings need sides divisible by {2 ** n}, "
                             f"got {h_img}x{w_img}")
        if self.conv not in ("col2im", "flax"):
            raise ValueError(f"unknown conv {self.conv!r}; use col2im or flax")
        up = Col2ImConvTranspose if self.conv == "col2im" else nn.ConvTranspose

        def norm_relu(h):
            if self.batch_norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name)(h)
            return nn.relu(h)

        bias = not self.batch_norm  # batch norm removes a bias: none to train (its gradient is float noise)
        h = nn.Dense(h_img // 2 ** n * w_img // 2 ** n * self.channels[0], use_bias=bias)(
            _with_label(z, labels, self.num_classes))
        h = norm_relu(h.reshape(z.shape[0], h_img // 2 ** n, w_img // 2 ** n, self.channels[0]))
        lower = []  # progressive: the image at every resolution below the last
        for i, c in enumerate((*self.channels[1:], None)):
            if self.progressive:
                lower.append(jnp.tanh(nn.Dense(c_img, name=f"to_image_{i}")(h)))
            if c is not None:
                h = norm_relu(up(c, (4, 4), (2, 2), padding="SAME", use_bias=bias)(h))
        out = jnp.tanh(up(c_img, (4, 4), (2, 2), padding="SAME")(h))
        if not self.progressive or level is None:
            return out
        weights = resolution_weights(level, n + 1)
        blended = weights[-1] * out
        for i, image in enumerate(lower):
            blended = blended + weights[i] * nearest_upsample(image, 2 ** (n - i))
        return blended


class Discriminator(nn.Module):
    """Samples ``(B, ...)`` -> logits ``(B / pack,)``.

    Attributes:
      kind: ``mlp`` (Dense + LeakyReLU layers of sizes ``features``) or ``dcgan`` (4x4 stride-2 convolutions
        with ``features`` maps, LeakyReLU; no normalisation after the first, as DCGAN).
      norm: ``none`` | ``batch`` | ``layer`` after each layer but the first.
      spectral_norm: every weight divided by its largest singular value (one power iteration a call with
        ``update_stats``: the discriminator's own steps).
      minibatch: ``none`` | ``discrimination`` | ``stddev`` features before the output layer.
      pack: PacGAN's degree (1 = no packing).
      num_classes: > 0: the projection discriminator.
      conv: ``space_to_depth`` (fast on CPU) or ``flax`` (``nn.Conv`` with strides: same parameters).
    """

    kind: str = "mlp"
    features: Sequence[int] = (256, 256)
    norm: str = "none"
    spectral_norm: bool = False
    minibatch: str = "none"
    minibatch_group: int = 4
    pack: int = 1
    num_classes: int = 0
    conv: str = "space_to_depth"
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, labels=None, update_stats: bool = True) -> jax.Array:
        if self.kind not in ("mlp", "dcgan"):
            raise ValueError(f"unknown discriminator kind {self.kind!r}; use mlp or dcgan")
        if self.norm not in NORMS:
            raise ValueError(f"unknown discriminator norm {self.norm!r}; known: {NORMS}")
        if self.minibatch not in MINIBATCH_FEATURES:
            raise ValueError(f"unknown minibatch feature {self.minibatch!r}; known: {MINIBATCH_FEATURES}")
        if self.conv not in ("space_to_depth", "flax"):
            raise ValueError(f"unknown conv {self.conv!r}; use space_to_depth or flax")
        if self.num_classes and self.pack > 1:
            raise ValueError("packing (pack > 1) with a conditional discriminator is not defined: a pack mixes labels")

        def layer(module, h):
            if self.spectral_norm:
                return nn.SpectralNorm(module)(h, update_stats=update_stats)
            return module(h)

        def normalise(h):
            if self.norm == "batch":
                return nn.BatchNorm(use_running_average=False, momentum=0.9, axis_name=self.axis_name)(h)
            if self.norm == "layer":
                return nn.LayerNorm()(h)
            return h

        h = pack(x, self.pack)
        for i, width in enumerate(self.features):
            bias = not (i and self.norm == "batch")  # batch norm removes a bias
            if self.kind == "mlp":
                module = nn.Dense(width, use_bias=bias)
            elif self.conv == "space_to_depth":
                module = SpaceToDepthConv(width, (4, 4), (2, 2), padding=((1, 1), (1, 1)), use_bias=bias)
            else:
                module = nn.Conv(width, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=bias)
            h = layer(module, h)
            if i:
                h = normalise(h)
            h = nn.leaky_relu(h, 0.2)
        if self.minibatch == "stddev":  # on the last map (a channel) or features
            h = minibatch_stddev(h, self.minibatch_group)
        h = h.reshape(h.shape[0], -1)
        if self.minibatch == "discrimination":
            h = MinibatchDiscrimination()(h)
        logit = layer(nn.Dense(1), h)[:, 0]
        if self.num_classes:
            if labels is None:
                raise ValueError(f"this discriminator is conditional ({self.num_classes} classes): pass labels")
            embed = nn.Embed(self.num_classes, h.shape[-1], embedding_init=nn.initializers.normal(0.02))(labels)
            logit = logit + jnp.sum(embed * h, axis=-1)
        elif labels is not None:
            raise ValueError("labels given to an unconditional discriminator (num_classes = 0)")
        return logit


# ---------------------------------------------------------------------------------------------------------------
# A StyleGAN-style generator at small scale (Karras et al. 2019): a mapping network z -> w, a synthesis network
# that starts from a learned constant and modulates every layer by w through AdaIN, with per-pixel noise.


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``x / sqrt(mean(x^2))`` over the last axis (StyleGAN's normalisation of z)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class EqualizedDense(nn.Module):
    """A Dense layer with StyleGAN's equalized learning rate: the stored weights are ``N(0, 1 / lr_multiplier^2)``
    and scaled at run time by ``lr_multiplier * gain / sqrt(fan_in)`` (the bias by ``lr_multiplier``), so the
    layer starts He-initialised and an Adam step of size ``lr`` changes each effective weight by ``lr *
    lr_multiplier`` in units of the He scale ``gain / sqrt(fan_in)``, whatever the fan-in (Karras et al. 2018,
    2019: the mapping network trains at 0.01 of the learning rate)."""

    features: int
    lr_multiplier: float = 1.0
    gain: float = 2 ** 0.5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.normal(1.0 / self.lr_multiplier),
                            (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        scale = self.lr_multiplier * self.gain / x.shape[-1] ** 0.5
        return x @ (kernel * scale) + bias * self.lr_multiplier


class MappingNetwork(nn.Module):
    """``z`` (pixel-normalised; with a label, its normalised embedding beside it) -> ``w`` by ``num_layers``
    :class:`EqualizedDense` + LeakyReLU(0.2) layers of width ``w_dim``, at ``lr_multiplier`` of the learning rate
    (StyleGAN's 0.01: at the full rate the mapping network collapsed ``w``, and the samples with it, on digits)."""

    w_dim: int = 64
    num_layers: int = 4
    num_classes: int = 0
    lr_multiplier: float = 0.01

    @nn.compact
    def __call__(self, z: jax.Array, labels=None) -> jax.Array:
        h = pixel_norm(z)
        if self.num_classes:
            if labels is None:
                raise ValueError(f"this mapping network is conditional ({self.num_classes} classes): pass labels")
            h = jnp.concatenate([h, pixel_norm(nn.Embed(self.num_classes, z.shape[-1])(labels))], axis=-1)
        elif labels is not None:
            raise ValueError("labels given to an unconditional player (num_classes = 0)")
        for _ in range(self.num_layers):
            h = nn.leaky_relu(EqualizedDense(self.w_dim, self.lr_multiplier)(h), 0.2)
        return h


class AdaIN(nn.Module):
    """Adaptive instance normalisation: each map of each example normalised over its pixels, then scaled by
    ``1 + A_s(w)`` and shifted by ``A_b(w)`` (learned affine maps of the style ``w``; at initialisation the
    scale is about 1)."""

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        c = x.shape[-1]
        mean = jnp.mean(x, axis=(1, 2), keepdims=True)
        var = jnp.var(x, axis=(1, 2), keepdims=True)
        x = (x - mean) * jax.lax.rsqrt(var + 1e-5)
        scale = 1.0 + nn.Dense(c, name="scale")(w)
        shift = nn.Dense(c, name="shift")(w)
        return x * scale[:, None, None, :] + shift[:, None, None, :]


class SynthesisNetwork(nn.Module):
    """Per-layer styles ``ws`` ``(B, num_ws, w_dim)`` -> images ``(B, H, W, C)``.

    A learned constant ``(H / 2^n, W / 2^n, channels[0])`` (``n = len(channels) - 1`` upsamplings); at each
    resolution two layers (the first at the lowest resolution is the constant itself, the others a 3x3
    convolution), each followed by per-pixel noise times a learned per-map strength (zero at initialisation, as
    StyleGAN), a bias, LeakyReLU(0.2) and AdaIN with its own style; between resolutions nearest-neighbour
    upsampling (no transposed convolution: no slow weight gradient on XLA:CPU); a 1x1 convolution to the image's
    channels at the end (linear output: the data are in [-1, 1]). ``num_ws = 2 * len(channels)``.

    ``noise`` maps a layer index and a shape ``(B, h, w, 1)`` to that layer's noise (``None``: no noise, the
    deterministic generator used for inversion). ``conv``: ``patch`` (:class:`gen_jax.nn.PatchConv`, one
    matrix product) or ``flax`` (``nn.Conv``; same parameters)."""

    image_shape: Sequence[int]
    channels: Sequence[int] = (64, 32, 16)
    conv: str = "patch"

    @property
    def num_ws(self) -> int:
        return 2 * len(self.channels)

    @nn.compact
    def __call__(self, ws: jax.Array, noise=None) -> jax.Array:
        h_img, w_img, c_img = self.image_shape
        n = len(self.channels) - 1
        if h_img % 2 ** n or w_img % 2 ** n:
            raise ValueError(f"style generator: {n} upsamplings need sides divisible by {2 ** n}, got {h_img}x{w_img}")
        if self.conv not in ("patch", "flax"):
            raise ValueError(f"unknown conv {self.conv!r}; use patch or flax")
        if ws.shape[1] != self.num_ws:
            raise ValueError(f"the synthesis network takes {self.num_ws} styles per example, got {ws.shape[1]}")
        conv3 = (lambda c: PatchConv(c, (3, 3))) if self.conv == "patch" else (lambda c: nn.Conv(c, (3, 3)))
        b = ws.shape[0]
        const = self.param("const", nn.initializers.normal(1.0), (h_img // 2 ** n, w_img // 2 ** n, self.channels[0]))
        x = jnp.broadcast_to(const, (b, *const.shape))

        def style_layer(x, layer):
            strength = self.param(f"noise_strength_{layer}", nn.initializers.zeros, (x.shape[-1],))
            if noise is not None:
                x = x + strength * noise(layer, (b, x.shape[1], x.shape[2], 1))
            x = nn.leaky_relu(x + self.param(f"bias_{layer}", nn.initializers.zeros, (x.shape[-1],)), 0.2)
            return AdaIN(name=f"adain_{layer}")(x, ws[:, layer])

        for i, c in enumerate(self.channels):
            if i:
                x = conv3(c)(nearest_upsample(x, 2))
            x = style_layer(x, 2 * i)
            x = conv3(c)(x)
            x = style_layer(x, 2 * i + 1)
        return nn.Dense(c_img, name="to_image")(x)


class StyleGenerator(nn.Module):
    """``z`` (and a label) -> images: :class:`MappingNetwork` then :class:`SynthesisNetwork`.

    * ``w_avg``, the running mean of ``w`` (collection ``batch_stats``, decay ``w_avg_decay``, over the global
      batch under ``axis_name``), updated in training when ``batch_stats`` is mutable: the centre of the
      **truncation trick** ``w' = w_avg + truncation * (w - w_avg)`` (Karras et al. 2019; 1 = none).
    * **Style mixing** (a regulariser in training, ``mixing_prob``): for that fraction of the examples a second
      code's ``w`` replaces the first's from a random layer on.
    * ``rng`` draws the per-pixel noise (and the mixing); ``None`` means no noise and no mixing.

    ``__call__(z, labels, train, rng, truncation, mixing_prob)`` has the other generators' first three
    arguments; :meth:`styles` and :meth:`synthesize` (through ``apply(..., method=...)``) expose the two halves.
    """

    image_shape: Sequence[int]
    channels: Sequence[int] = (64, 32, 16)
    w_dim: int = 64
    mapping_layers: int = 4
    num_classes: int = 0
    w_avg_decay: float = 0.995
    mapping_lr_multiplier: float = 0.01
    conv: str = "patch"
    axis_name: str | None = None

    def setup(self):
        self.mapping = MappingNetwork(self.w_dim, self.mapping_layers, self.num_classes, self.mapping_lr_multiplier)
        self.synthesis = SynthesisNetwork(tuple(self.image_shape), tuple(self.channels), self.conv)
        self.w_avg = self.variable("batch_stats", "w_avg", jnp.zeros, (self.w_dim,))

    @property
    def num_ws(self) -> int:
        return 2 * len(self.channels)

    def styles(self, z: jax.Array, labels=None, truncation: float = 1.0) -> jax.Array:
        """``w`` ``(B, w_dim)`` of codes ``z``, truncated towards ``w_avg`` by ``truncation``."""
        w = self.mapping(z, labels)
        if isinstance(truncation, (int, float)) and truncation == 1.0:  # (a traced value: the formula)
            return w
        return self.w_avg.value + truncation * (w - self.w_avg.value)

    def synthesize(self, ws: jax.Array, rng=None) -> jax.Array:
        """Images of per-layer styles ``ws`` ``(B, num_ws, w_dim)`` (or one ``w`` ``(B, w_dim)`` for all)."""
        if ws.ndim == 2:
            ws = jnp.broadcast_to(ws[:, None], (ws.shape[0], self.num_ws, ws.shape[-1]))
        return self.synthesis(ws, None if rng is None else self._noise(rng))

    def _draw(self, sampler, key, shape):
        """This device's part of the global batch's draw (the same on 1 device and on N)."""
        from gen_jax.families.common import global_draw  # here: gen_jax.families imports this module

        return global_draw(sampler, key, shape, self.axis_name)

    def _noise(self, rng):
        return lambda layer, shape: self._draw(jax.random.normal, jax.random.fold_in(rng, layer), shape)

    def __call__(self, z: jax.Array, labels=None, train: bool = False, rng=None, truncation: float = 1.0,
                 mixing_prob: float = 0.0) -> jax.Array:
        w = self.styles(z, labels, truncation)
        if train and not self.is_initializing() and self.is_mutable_collection("batch_stats"):
            mean = jnp.mean(w, axis=0)
            if self.axis_name is not None:
                mean = jax.lax.pmean(mean, self.axis_name)
            self.w_avg.value = self.w_avg.value + (1.0 - self.w_avg_decay) * (mean - self.w_avg.value)
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1]))
        if mixing_prob and rng is not None:
            keys = jax.random.split(jax.random.fold_in(rng, 10_000), 3)
            b = z.shape[0]
            w2 = self.styles(self._draw(jax.random.normal, keys[0], z.shape), labels, truncation)
            cut = self._draw(lambda k, s: jax.random.randint(k, s, 1, self.num_ws), keys[1], (b,))
            mixed = self._draw(jax.random.uniform, keys[2], (b,)) < mixing_prob
            later = (jnp.arange(self.num_ws)[None, :] >= cut[:, None]) & mixed[:, None]
            ws = jnp.where(later[..., None], w2[:, None], ws)
        return self.synthesize(ws, rng)


def style_mixing_grid(generator: StyleGenerator, variables, z_rows: jax.Array, z_cols: jax.Array,
                      crossover: int, rng=None, labels_rows=None, labels_cols=None) -> jax.Array:
    """StyleGAN's mixing figure: ``(R, C, H, W, ch)`` images whose layers before ``crossover`` take their style
    from the column's code and the rest from the row's (coarse layers: pose and shape; fine: stroke and
    texture). ``crossover = 0``: the row's image; ``num_ws``: the column's. A conditional generator takes each
    code's label (``labels_rows``, ``labels_cols``): a style is the mapping of a code and its label."""
    w_r = generator.apply(variables, z_rows, labels_rows, method=StyleGenerator.styles)
    w_c = generator.apply(variables, z_cols, labels_cols, method=StyleGenerator.styles)
    r, c, L = w_r.shape[0], w_c.shape[0], generator.num_ws
    coarse = (jnp.arange(L) < crossover)[None, None, :, None]
    ws = jnp.where(coarse, w_c[None, :, None], w_r[:, None, None])  # (R, C, L, w_dim)
    images = generator.apply(variables, ws.reshape(r * c, L, -1), rng, method=StyleGenerator.synthesize)
    return images.reshape(r, c, *images.shape[1:])
