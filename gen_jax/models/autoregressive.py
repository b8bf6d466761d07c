"""Autoregressive image models: ``log p(x) = sum_d log p(x_d | x_<d)``, exact, trained by NLL.

:class:`MADEImage` (Germain et al. 2015): one masked MLP computes every conditional in a single pass.
Order- and connectivity-agnostic training draws one of ``num_masks`` (order, hidden degrees) pairs per step,
all sharing the weights; at test time the ensemble ``log (1/M) sum_m p_m(x)`` is a proper density too.

Outputs per pixel: a Bernoulli logit for 2 levels, ``K`` categorical logits for ``K > 2`` levels.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.nn.conv import PatchConv
from gen_jax.nn.distributions import pixel_log_probs, sample_pixel
from gen_jax.nn.masked import made_degrees


def made_degree_set(num_inputs: int, hidden: Sequence[int], num_masks: int) -> list[np.ndarray]:
    """Degrees of ``num_masks`` MADE connectivities, stacked per layer: ``[(M, D) orders, (M, H1), ...]``.
    With one mask: the natural order and deterministic degrees; with several: random ones per mask. Masks
    are computed from these in the graph (cheaper than storing ``M`` dense masks)."""
    sets = [made_degrees(num_inputs, hidden, seed=None if num_masks == 1 else m) for m in range(num_masks)]
    return [np.stack([s[i] for s in sets]).astype(np.int32) for i in range(len(hidden) + 1)]


class MADEImage(nn.Module):
    """MADE over the ``D`` pixels of an image with ``num_levels`` levels (``image_shape`` = (H, W, C))."""

    image_shape: tuple[int, int, int]
    num_levels: int
    hidden: Sequence[int] = (500,)
    num_masks: int = 1
    num_classes: int = 0  # > 0: class-conditional, the one-hot label feeds every hidden unit
    direct_connections: bool = False  # masked input -> output weights beside the hidden layers

    @property
    def num_dims(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def outputs_per_dim(self) -> int:
        return 1 if self.num_levels == 2 else self.num_levels

    def setup(self):
        d = self.num_dims
        self.degrees = made_degree_set(d, tuple(self.hidden), self.num_masks)
        widths = [d, *self.hidden, d * self.outputs_per_dim]
        self.kernels = [self.param(f"kernel_{i}", nn.initializers.lecun_normal(), (widths[i], widths[i + 1]))
                        for i in range(len(widths) - 1)]
        self.biases = [self.param(f"bias_{i}", nn.initializers.zeros, (widths[i + 1],))
                       for i in range(len(widths) - 1)]
        if self.direct_connections:  # masked like the output layer; 300k more weights on 784 pixels
            self.direct = self.param("direct", nn.initializers.zeros, (d, d * self.outputs_per_dim))
        if self.num_classes:
            self.context = [self.param(f"context_{i}", nn.initializers.lecun_normal(), (self.num_classes, w))
                            for i, w in enumerate(self.hidden)]

    def logits(self, x: jax.Array, mask_index: jax.Array | int = 0, y: jax.Array | None = None) -> jax.Array:
        """Per-pixel logits ``(B, D)`` (2 levels) or ``(B, D, K)``, for integer images ``x`` ``(B, H, W, C)``."""
        b, d = x.shape[0], self.num_dims
        inp = x.reshape(b, d).astype(jnp.float32) / (self.num_levels - 1)
        deg = [jnp.asarray(g)[mask_index] for g in self.degrees]
        order = deg[0]
        # MADE's rules: hidden unit sees degrees <= its own; output d sees degrees < order(d).
        masks = [(a[:, None] <= b[None, :]).astype(jnp.float32) for a, b in zip(deg[:-1], deg[1:])]
        masks.append(jnp.tile((deg[-1][:, None] < order[None, :]).astype(jnp.float32), (1, self.outputs_per_dim)))
        h = inp
        for i in range(len(self.hidden)):
            h = h @ (self.kernels[i] * masks[i]) + self.biases[i]
            if self.num_classes:
                h = h + jax.nn.one_hot(y, self.num_classes) @ self.context[i]
            h = nn.relu(h)
        out = h @ (self.kernels[-1] * masks[-1]) + self.biases[-1]
        if self.direct_connections:  # the strict output rule again: input order < output order
            direct_mask = jnp.tile((order[:, None] < order[None, :]).astype(jnp.float32), (1, self.outputs_per_dim))
            out = out + inp @ (self.direct * direct_mask)
        if self.outputs_per_dim == 1:
            return out
        return out.reshape(b, self.outputs_per_dim, d).swapaxes(1, 2)

    def _pixel_outputs(self, logits: jax.Array) -> jax.Array:
        """``logits`` as ``(B, D, n)`` per-pixel outputs for :mod:`gen_jax.nn.distributions`."""
        return logits[..., None] if self.outputs_per_dim == 1 else logits

    def log_prob(self, x: jax.Array, mask_index: jax.Array | int = 0, y: jax.Array | None = None) -> jax.Array:
        """Exact ``log p_m(x)`` per example (nats) under mask ``m``."""
        out = self._pixel_outputs(self.logits(x, mask_index, y))
        return pixel_log_probs(out, x.reshape(x.shape[0], -1), self.num_levels, "categorical").sum(-1)

    def ensemble_log_prob(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """``log (1/M) sum_m p_m(x)``: the order-ensemble density (a mixture, so still normalised)."""
        per_mask = jnp.stack([self.log_prob(x, m, y) for m in range(self.num_masks)])
        return jax.nn.logsumexp(per_mask, 0) - math.log(self.num_masks)

    def __call__(self, x, mask_index=0, y=None):
        return self.log_prob(x, mask_index, y)

    def sample(self, rng: jax.Array, num: int, mask_index: int = 0, y: jax.Array | None = None,
               temperature: float = 1.0) -> jax.Array:
        """Ancestral sampling in mask ``mask_index``'s order: ``D`` passes (the d-th fixes pixel d)."""
        d = self.num_dims
        order = np.asarray(self.degrees[0])[mask_index]
        positions = np.argsort(order)  # the pixel sampled at step t

        def step(t, carry):
            x, key = carry
            key, sub = jax.random.split(key)
            pos = jnp.asarray(positions)[t]
            out = self._pixel_outputs(self.logits(x.reshape(num, *self.image_shape), mask_index, y))[:, pos]
            return x.at[:, pos].set(sample_pixel(sub, out, self.num_levels, "categorical", temperature)), key

        x0 = jnp.zeros((num, d), jnp.int32)
        x, _ = jax.lax.fori_loop(0, d, step, (x0, rng))
        return x.reshape(num, *self.image_shape)


# ------------------------------------------------------------------------------------------------ PixelCNN


def _shift_down(x: jax.Array) -> jax.Array:
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def _shift_right(x: jax.Array) -> jax.Array:
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def _conv_class(conv: str):
    """``"patch"``: :class:`~gen_jax.nn.PatchConv` (the same function as ``nn.Conv``, 1.7x faster training on
    CPU); ``"flax"``: ``nn.Conv`` itself. Both have the same parameters."""
    if conv == "patch":
        return PatchConv
    if conv == "flax":
        return nn.Conv
    raise ValueError(f"unknown conv {conv!r}; use 'patch' or 'flax'")


class GatedMaskedConv(nn.Module):
    """One gated PixelCNN layer (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
    Decoders") as two stacks that, together, see every earlier pixel and no later one (no blind spot).

    Vertical stack: a ``(k//2 + 1) x k`` convolution over rows at and above the current one; it reaches the
    horizontal stack only shifted down by one row, so row ``i`` there sees rows ``< i``. Horizontal stack: a
    ``1 x (k//2 + 1)`` convolution over the current row up to the current pixel; in the first layer
    (``first=True``, mask "A") the input is shifted right by one so the current pixel itself is excluded.
    ``dilation`` spaces both kernels' taps ``dilation`` pixels apart (rows ``i, i - d, ...`` and columns
    ``j, j - d, ...``): the same cost, a receptive field that grows ``d`` times as fast, still causal.
    """

    channels: int
    kernel_size: int = 3
    first: bool = False
    num_classes: int = 0
    conv: str = "patch"
    dilation: int = 1

    @nn.compact
    def __call__(self, v, h, y=None):
        k, c, d = self.kernel_size, self.channels, self.dilation
        Conv = _conv_class(self.conv)
        pad = k // 2
        v_in = jnp.pad(v, ((0, 0), (d * pad, 0), (d * pad, d * pad), (0, 0)))
        v_pre = Conv(2 * c, (pad + 1, k), padding="VALID", kernel_dilation=d, name="vertical")(v_in)
        h_src = _shift_right(h) if self.first else h
        h_in = jnp.pad(h_src, ((0, 0), (0, 0), (d * pad, 0), (0, 0)))
        h_pre = Conv(2 * c, (1, pad + 1), padding="VALID", kernel_dilation=d, name="horizontal")(h_in)
        h_pre = h_pre + Conv(2 * c, (1, 1), name="vertical_to_horizontal")(_shift_down(v_pre))
        if self.num_classes:
            emb = nn.Embed(self.num_classes, 4 * c, name="class_embedding")(y)[:, None, None, :]
            v_pre = v_pre + emb[..., :2 * c]
            h_pre = h_pre + emb[..., 2 * c:]

        def gate(a):
            t, s = jnp.split(a, 2, axis=-1)
            return jnp.tanh(t) * jax.nn.sigmoid(s)

        v_out = gate(v_pre)
        h_out = Conv(c, (1, 1), name="horizontal_out")(gate(h_pre))
        if not self.first:
            h_out = h_out + h  # residual connection on the horizontal stack
        return v_out, h_out


class PixelCNN(nn.Module):
    """Gated PixelCNN over single-channel integer images: ``num_layers`` gated layers of ``channels`` maps,
    then two 1x1 convolutions to per-pixel outputs: a Bernoulli logit for 2 levels, else ``num_levels``
    categorical logits (``output="categorical"``) or a ``num_mixtures``-component discretized logistic mixture
    (``output="logistic_mixture"``, Salimans et al. 2017). ``num_classes > 0``: class-conditional p(x | y).
    ``dilations``: the dilation of gated layers 1, 2, ... in turn, repeated as needed (the first, 7x7 layer
    is never dilated); e.g. ``(1, 2, 4)`` lets 10 layers see ~24 rows up and ~24 columns left instead of 12."""

    num_levels: int
    channels: int = 64
    num_layers: int = 8
    kernel_size: int = 3
    output: str = "categorical"
    num_mixtures: int = 5
    num_classes: int = 0
    conv: str = "patch"
    dilations: Sequence[int] = (1,)

    def _num_outputs(self) -> int:
        if self.num_levels == 2:
            return 1
        if self.output == "categorical":
            return self.num_levels
        if self.output == "logistic_mixture":
            return 3 * self.num_mixtures
        raise ValueError(f"unknown output {self.output!r}; use 'categorical' or 'logistic_mixture'")

    @nn.compact
    def outputs(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Per-pixel output parameters ``(B, H, W, n)`` for integer images ``x`` ``(B, H, W, 1)``."""
        if x.shape[-1] != 1:
            raise ValueError(f"PixelCNN here models single-channel images, got {x.shape[-1]} channels")
        if not self.dilations or any(int(d) < 1 for d in self.dilations):
            raise ValueError(f"dilations must be a non-empty sequence of integers >= 1, got {self.dilations!r}")
        inp = x.astype(jnp.float32) / (self.num_levels - 1) * 2.0 - 1.0
        v = h = inp
        for i in range(self.num_layers):
            d = 1 if i == 0 else int(self.dilations[(i - 1) % len(self.dilations)])
            v, h = GatedMaskedConv(self.channels, 7 if i == 0 else self.kernel_size, first=i == 0,
                                   num_classes=self.num_classes, conv=self.conv, dilation=d,
                                   name=f"gated_{i}")(v, h, y)
        Conv = _conv_class(self.conv)
        out = Conv(self.channels, (1, 1), name="head_0")(nn.relu(h))
        return Conv(self._num_outputs(), (1, 1), name="head_1")(nn.relu(out))

    def log_prob(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Exact ``log p(x)`` per example (nats)."""
        out = self.outputs(x, y)
        return jnp.sum(pixel_log_probs(out, x[..., 0], self.num_levels, self.output), axis=(1, 2))

    def __call__(self, x, y=None):
        return self.log_prob(x, y)

    def sample(self, rng: jax.Array, num: int, shape: tuple[int, int], y: jax.Array | None = None,
               temperature: float = 1.0) -> jax.Array:
        """Ancestral sampling in raster order (H * W passes); with ``observed``/``mask`` see :meth:`inpaint`."""
        h, w = shape
        x0 = jnp.zeros((num, h, w, 1), jnp.int32)
        return self._fill(rng, x0, jnp.zeros((num, h, w, 1)), y, temperature)

    def inpaint(self, rng: jax.Array, x: jax.Array, mask: jax.Array, y: jax.Array | None = None,
                temperature: float = 1.0) -> jax.Array:
        """Samples the missing pixels (``mask == 0``) from ``p(x_d | x_<d)`` in raster order, keeping the
        observed ones. Exact conditional sampling when every observed pixel precedes every missing one (e.g.
        the bottom half missing); otherwise the later observed pixels are ignored by the earlier draws."""
        return self._fill(rng, x.astype(jnp.int32), mask, y, temperature)

    def _fill(self, rng, x, mask, y, temperature):
        num, h, w, _ = x.shape

        def step(t, carry):
            cur, key = carry
            key, sub = jax.random.split(key)
            i, j = t // w, t % w
            out = self.outputs(cur, y)[:, i, j]
            v = sample_pixel(sub, out, self.num_levels, self.output, temperature)
            keep = mask[:, i, j, 0] > 0
            return cur.at[:, i, j, 0].set(jnp.where(keep, cur[:, i, j, 0], v)), key

        x, _ = jax.lax.fori_loop(0, h * w, step, (x, rng))
        return x


# ------------------------------------------------------------------------------------------------ Text


class CausalTransformer(nn.Module):
    """A character-level language model: token and learned position embeddings, ``num_layers`` pre-norm
    Transformer blocks with causal self-attention, and next-token logits. Position ``t``'s logits depend on
    tokens ``0..t`` only, so ``log p(sequence) = sum_t log p(token_{t+1} | tokens_{<=t})`` is exact.

    Token 0 is padding (see :mod:`gen_jax.data.text`): it is never predicted nor counted, and since the
    attention is causal a padded tail cannot change the logits before it.

    ``dropout`` > 0 drops embedding, attention-output and MLP-output activations during training
    (``deterministic=False`` with a ``"dropout"`` rng); evaluation and sampling are deterministic.
    """

    vocab_size: int
    max_len: int
    dim: int = 128
    num_heads: int = 4
    num_layers: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    @nn.compact
    def logits(self, tokens: jax.Array, deterministic: bool = True) -> jax.Array:
        """``(B, T)`` int tokens -> ``(B, T, vocab)`` logits of each next token.

        Activations are kept as ``(B*T, dim)`` matrices: in a one-off profile on shared cores, the weight
        gradient of one ``Dense`` on a 3-D input took 17.9 ms against 6.3 ms on the flattened 2-D input; on
        the whole model the difference was within the noise of that machine."""
        b, t = tokens.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} is longer than max_len={self.max_len}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        x = nn.Embed(self.vocab_size, self.dim, name="token_embedding")(tokens)
        x = x + self.param("position_embedding", nn.initializers.normal(0.02), (self.max_len, self.dim))[:t]
        drop = nn.Dropout(self.dropout, deterministic=deterministic or self.dropout == 0.0)
        x = drop(x.reshape(b * t, self.dim))
        heads, head_dim = self.num_heads, self.dim // self.num_heads
        causal = jnp.tril(jnp.ones((t, t), bool))
        for i in range(self.num_layers):
            h = nn.LayerNorm(name=f"ln_attn_{i}")(x)
            q, k, v = jnp.split(nn.Dense(3 * self.dim, name=f"qkv_{i}")(h).reshape(b, t, 3 * heads, head_dim), 3,
                                axis=2)
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
            weights = jax.nn.softmax(jnp.where(causal, scores, -1e30), axis=-1)
            att = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b * t, self.dim)
            x = x + drop(nn.Dense(self.dim, name=f"attn_out_{i}")(att))
            h = nn.LayerNorm(name=f"ln_mlp_{i}")(x)
            h = nn.Dense(self.mlp_ratio * self.dim, name=f"mlp_in_{i}")(h)
            x = x + drop(nn.Dense(self.dim, name=f"mlp_out_{i}")(nn.gelu(h)))
        out = nn.Dense(self.vocab_size, name="head")(nn.LayerNorm(name="ln_final")(x))
        return out.reshape(b, t, self.vocab_size)

    def token_log_probs(self, tokens: jax.Array, deterministic: bool = True) -> jax.Array:
        """``(B, T-1)`` ``log p(tokens[:, t+1] | tokens[:, :t+1])``, 0 where the target is padding."""
        logp = jax.nn.log_softmax(self.logits(tokens[:, :-1], deterministic), -1)
        target = tokens[:, 1:]
        lp = jnp.take_along_axis(logp, target[..., None].astype(jnp.int32), -1)[..., 0]
        return jnp.where(target > 0, lp, 0.0)

    def log_prob(self, tokens: jax.Array, deterministic: bool = True) -> jax.Array:
        """Exact ``log p`` of each sequence (nats), conditioned on its first token (with dropout applied when
        ``deterministic`` is False: the training objective)."""
        return self.token_log_probs(tokens, deterministic).sum(-1)

    def __call__(self, tokens):
        return self.log_prob(tokens)

    def sample(self, rng: jax.Array, num: int, length: int, start: int = 1, stop: int | None = 1,
               temperature: float = 1.0) -> jax.Array:
        """``(num, length)`` sequences that begin with ``start``; each next token is drawn from the logits
        divided by ``temperature`` (< 1 sharper, > 1 flatter); after ``stop`` the rest is padding (0).
        Padding itself is never drawn."""
        x0 = jnp.zeros((num, length), jnp.int32).at[:, 0].set(start)

        def step(t, carry):
            x, done, key = carry
            key, sub = jax.random.split(key)
            logits = self.logits(x[:, :-1])[:, t - 1] / temperature
            nxt = jax.random.categorical(sub, logits.at[:, 0].set(-jnp.inf)).astype(jnp.int32)
            nxt = jnp.where(done, 0, nxt)
            done = done | (nxt == stop) if stop is not None else done
            return x.at[:, t].set(nxt), done, key

        x, _, _ = jax.lax.fori_loop(1, length, step, (x0, jnp.zeros((num,), bool), rng))
        return x
