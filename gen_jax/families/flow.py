"""The normalizing-flow family: RealNVP, Glow, MAF and spline flows on vectors (the 2-D toys), and on flattened
images, uniformly dequantized (multi-scale convolutional RealNVP / Glow too); trained by exact NLL.

On vectors ``log_prob`` is the exact log-density; on images it is the dequantization lower bound on the log
probability of the integer levels (:mod:`gen_jax.data.conventions`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.data.conventions import dequantized_nll, uniform_dequantize
from gen_jax.data.images import ImageDataset
from gen_jax.data.toy2d import TOY_DATASETS, world_land_raster
from gen_jax.data.vectors import VectorDataset
from gen_jax.families.base import Family, loss_trainer
from gen_jax.families.common import exact_log_prob, optimizer_from_config
from gen_jax.losses import make_nll_loss
from gen_jax.models.flows import build_flow
from gen_jax.viz import save_density_picture

NAME = "flow"


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        # realnvp | glow | maf | spline | multiscale_realnvp | multiscale_glow (gen_jax.models.flows.build_flow,
        # whose docstring says what one of the num_layers steps is for each kind)
        flow="spline",
        num_layers=8,
        hidden=(64, 64),  # per conditioner (multi-scale flows: hidden[0] maps)
        num_bins=8,  # spline flows
        spline_bound=4.0,  # ... in standardised units
        max_log_scale=3.0,  # affine couplings and MAF: log-scale = max * tanh(raw / max)
        num_scales=2,  # multi-scale flows: squeeze-and-split scales
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def upgrade_legacy_config(d: dict) -> None:
    """A config.json from before ``evals``: on vector data the old evaluation also ran the two-sample report."""
    if d["data"]["name"] in TOY_DATASETS:
        d["evals"]["two_sample"] = {"type": "two_sample", "num_samples": 5000}


def _flow_kwargs(config):
    m = config.model
    return dict(num_layers=m.num_layers, hidden=tuple(m.hidden), num_bins=m.num_bins, bound=m.spline_bound,
                max_log_scale=m.max_log_scale)


def build(config: ml_collections.ConfigDict, data) -> Family:
    if isinstance(data, ImageDataset):
        return _build_image_flow(config, data)
    if not isinstance(data, VectorDataset):
        raise ValueError(f"model.family='flow' needs vectors or images, got {data.name!r}")
    dim = data.num_dims
    model = build_flow(config.model.flow, dim, data=data.x, **_flow_kwargs(config))

    def log_prob(params, batch, rng):
        return model.apply(params, batch["x"], method=model.log_prob)

    log_density = jax.jit(lambda p, v: model.apply(p, v, method=model.log_prob))

    def init_params(rng, batch):
        del batch  # ActNorm initialises from data: a real batch of the training set, not the loop's 2 examples
        # Jitted: an eager flow init compiles op by op (spline flow: 4.1 s eager, 0.7 s jitted).
        return jax.jit(model.init)(rng, jnp.asarray(data.x[:1024], jnp.float32))

    sample_jit = jax.jit(lambda p, r, n: model.apply(p, r, n, method=model.sample), static_argnums=2)
    encode_jit = jax.jit(lambda p, v: model.apply(p, v, method=model.forward)[0])
    decode_jit = jax.jit(lambda p, z: model.apply(p, z, method=model.inverse)[0])

    def sample(params, rng, n, *, labels=None):
        if labels is not None:
            raise ValueError("labels given to an unconditional flow")
        return sample_jit(params, rng, n)

    x = data.x
    bounds = data.toy.bounds if data.toy is not None else (*np.percentile(x[:, 0], [0, 100]),
                                                           *np.percentile(x[:, 1], [0, 100]))

    def picture(params, rng, path, title):
        save_density_picture(lambda v: log_density(params, jnp.asarray(v, jnp.float32)), x[:20000],
                             np.asarray(sample(params, rng, 20000)), path, bounds=bounds, title=title,
                             density_title=f"{config.model.flow} density",
                             background=world_land_raster() if data.name == "world_land" else None)

    return Family(NAME, model, loss_trainer(init_params, make_nll_loss(log_prob), optimizer_from_config(config),
                                            ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=exact_log_prob(log_prob),
                  encode=lambda params, batch, rng=None: encode_jit(params, jnp.asarray(batch["x"])),
                  decode=lambda params, z, rng=None: decode_jit(params, jnp.asarray(z)), picture=picture)


def _build_image_flow(config: ml_collections.ConfigDict, data: ImageDataset) -> Family:
    """A flow over flattened single-channel images, uniformly dequantized (gen_jax.data.conventions): it
    models ``y = (x + u) / K`` on ``[0, 1)^D`` and reports ``-log p(y) + D log K`` nats, a bound on the NLL of
    the integer levels."""
    if data.image_shape[-1] != 1:
        raise ValueError("image flows here take single-channel images")
    k, d = data.num_levels, data.num_dims
    h, w = data.image_shape[:2]
    y_train = (data.image.reshape(len(data), d).astype(np.float64) + 0.5) / k
    # One global shift and scale: per-pixel ones would blow up the always-blank corner pixels (training
    # variance = dequantization noise only) and any test image inked there would get an absurd NLL.
    model = build_flow(config.model.flow, d, data_shift=np.full(d, y_train.mean()),
                       data_scale=np.full(d, y_train.std()), image_hw=(h, w), num_scales=config.model.num_scales,
                       **_flow_kwargs(config))

    def dequantized(batch, rng):
        levels = batch["image"].reshape(batch["image"].shape[0], d)
        return uniform_dequantize(levels, rng, num_levels=k)

    def log_prob_levels(params, batch, rng):  # the lower bound on log P(levels)
        return -dequantized_nll(model.apply(params, dequantized(batch, rng), method=model.log_prob),
                                num_dims=d, num_levels=k)

    def init_params(rng, batch):
        del batch  # ActNorm initialises from data: a real batch of the training set, not the loop's 2 examples
        return jax.jit(model.init)(rng, dequantized({"image": jnp.asarray(data.image[:1024])}, jax.random.key(0)))

    sample_jit = jax.jit(lambda p, r, n: model.apply(p, r, n, method=model.sample), static_argnums=2)

    def sample(params, rng, n, *, labels=None):
        """``n`` images as integer levels: the continuous draw ``y`` in [0, 1) floored to ``floor(K y)``, the
        level whose dequantization interval holds it."""
        if labels is not None:
            raise ValueError("labels given to an unconditional flow")
        y = sample_jit(params, rng, n)
        return jnp.clip(jnp.floor(y * k), 0, k - 1).astype(jnp.int32).reshape(n, *data.image_shape)

    return Family(NAME, model, loss_trainer(init_params, make_nll_loss(log_prob_levels),
                                            optimizer_from_config(config), ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=exact_log_prob(log_prob_levels, "lower_bound", "dequantized"), num_levels=k)
