"""Tasks: what the generic loop needs from a model family, built from a config.

A :class:`Task` bundles parameter initialisation, the loss (or a whole custom step), sampling for pictures
and end-of-training evaluation. The loop, checkpoints, devices and metrics are shared by every family; a new
family registers a builder in ``TASK_BUILDERS``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.data.conventions import dequantized_nll, uniform_dequantize
from gen_jax.data.images import ImageDataset
from gen_jax.data.text import TEXT_DATASETS, TextDataset
from gen_jax.data.toy2d import world_land_raster
from gen_jax.data.vectors import TOY_SPLIT_SEEDS
from gen_jax.eval.likelihood import evaluate_log_likelihood, per_example_log_likelihood
from gen_jax.eval.modes import mode_coverage
from gen_jax.eval.two_sample import two_sample_report
from gen_jax.losses import (log_normal_diag, make_importance_weighted_bound, make_iwae_loss, make_nll_loss,
                            make_vae_loss, observation_log_likelihood, observation_mean, params_per_dim)
from gen_jax.models import VAE
from gen_jax.models.autoregressive import CausalTransformer, MADEImage, PixelCNN
from gen_jax.models.flows import build_flow
from gen_jax.viz import density_grid, save_2d_panels, save_text_columns


@dataclasses.dataclass
class Task:
    model: object
    init_params: Callable[[jax.Array, dict], object]  # (rng, example batch) -> params
    loss_fn: Callable  # (params, batch, rng) -> (loss, metrics)
    sample: Callable[[object, jax.Array, int], jax.Array]  # (params, rng, n) -> images in [0, 1]
    evaluate: Callable[[object, ImageDataset, jax.Array], dict]  # (params, split, rng) -> metrics
    # A family whose update is not one loss + one optimizer supplies its own per-device step factory:
    # make_step(optimizer, ema_decay, axis_name) -> step(state, batch, rng) -> (state, metrics).
    make_step: Callable | None = None
    # Model selection score, lower is better: (params, split, rng) -> float. None = the family has none.
    select_score: Callable[[object, ImageDataset, jax.Array], float] | None = None
    # Per-example log-likelihood (or a lower bound), for detection metrics: (params, arrays, rng) -> (N,);
    # a latent-variable model takes num_samples= (k of its importance-weighted bound).
    log_prob: Callable[[object, dict, jax.Array], np.ndarray] | None = None
    # Missing-data imputation: (params, x in [0, 1], mask (1 = observed), rng) -> x filled in.
    impute: Callable[[object, np.ndarray, np.ndarray, jax.Array], np.ndarray] | None = None
    # The picture drawn every sample_every steps when a sample grid does not fit (2-D data):
    # (params, rng, path, title) -> None.
    picture: Callable[[object, jax.Array, object, str], None] | None = None


def build_vae(config: ml_collections.ConfigDict, data: ImageDataset) -> VAE:
    if config.model.conditional and not data.num_classes:
        raise ValueError(f"model.conditional=True but dataset {data.name!r} has no labels")
    return VAE(image_shape=data.image_shape, latent_dim=config.model.latent_dim,
               decoder_params_per_dim=params_per_dim(config.model.likelihood),
               architecture=config.model.architecture, hidden=tuple(config.model.hidden),
               conv_channels=tuple(config.model.conv_channels),
               num_classes=data.num_classes if config.model.conditional else 0,
               prior=config.model.prior, num_pseudo_inputs=config.model.num_pseudo_inputs)


def vae_task(config: ml_collections.ConfigDict, data: ImageDataset) -> Task:
    model = build_vae(config, data)
    likelihood, levels = config.model.likelihood, data.num_levels
    k = config.loss.num_importance_samples
    if k > 1:
        if config.loss.beta != 1.0:
            raise ValueError(f"loss.num_importance_samples={k} trains the IWAE bound, which has no beta; "
                             f"got loss.beta={config.loss.beta}")
        loss_fn = make_iwae_loss(model, likelihood=likelihood, num_levels=levels, num_samples=k)
    elif k == 1:
        loss_fn = make_vae_loss(model, likelihood=likelihood, num_levels=levels, beta=config.loss.beta)
    else:
        raise ValueError(f"loss.num_importance_samples must be >= 1, got {k}")

    def init_params(rng, batch):
        x = jnp.asarray(batch["image"], jnp.float32) / (levels - 1)
        y = jnp.asarray(batch["label"]) if model.num_classes else None
        return model.init(rng, x, jax.random.key(0), y)

    def sample(params, rng, n):
        z_rng, _ = jax.random.split(rng)
        z = model.apply(params, z_rng, n, method=model.sample_prior)
        y = jnp.arange(n) % model.num_classes if model.num_classes else None  # one column per class
        return observation_mean(likelihood, model.apply(params, z, y, method=model.decode), num_levels=levels)

    def bound(num_samples: int):
        return make_importance_weighted_bound(model, likelihood=likelihood, num_levels=levels,
                                              num_samples=num_samples, chunk_size=config.eval.importance_chunk)

    def nll(params, split: ImageDataset, rng, num_samples: int) -> dict:
        return evaluate_log_likelihood(bound(num_samples), params, split.arrays(), rng,
                                       batch_size=config.eval.batch_size, num_dims=split.num_dims)

    def evaluate(params, split: ImageDataset, rng):
        out = {}
        bounds = {"elbo": 1}
        if config.eval.num_importance_samples > 1:
            bounds[f"iwae{config.eval.num_importance_samples}"] = config.eval.num_importance_samples
        for name, k in bounds.items():
            res = nll(params, split, rng, k)
            out[f"{name}_nll"], out[f"{name}_bits_per_dim"] = res["nll"], res["bits_per_dim"]
        return out

    def select_score(params, split: ImageDataset, rng):
        return nll(params, split, rng, config.eval.select_importance_samples)["nll"]

    def log_prob(params, arrays, rng, num_samples: int = 100):
        return per_example_log_likelihood(bound(num_samples), params, arrays, rng,
                                          batch_size=config.eval.batch_size)

    impute_fn = jax.jit(lambda params, x, mask, rng: impute_by_importance_sampling(
        model, likelihood, levels, params, x, mask, rng))

    def impute(params, x, mask, rng):
        if model.num_classes:
            raise NotImplementedError("imputation with a conditional VAE needs labels; use an unconditional one")
        return np.asarray(impute_fn(params, jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32), rng))

    return Task(model, init_params, loss_fn, sample, evaluate, select_score=select_score, log_prob=log_prob,
                impute=impute)


def impute_by_importance_sampling(model: VAE, likelihood: str, num_levels: int, params, x, mask, rng, *,
                                  num_samples: int = 1000, chunk: int = 100):
    """Missing-data imputation with a VAE by self-normalised importance sampling (Mattei & Frellsen 2019,
    "MIWAE"): ``E[x_mis | x_obs] ~= sum_i w_i E[x_mis | z_i]`` with ``w_i ∝ p(x_obs | z_i) p(z_i) / r(z_i)``.

    The proposal ``r`` is the defensive mixture ``(q(z | x_obs, missing = 0) + N(0, I)) / 2`` (whatever the
    model's prior ``p``): the encoder alone
    has never seen a hole and can miss the posterior; the prior half keeps the weights bounded. Consistent as
    ``num_samples`` grows, unlike pseudo-Gibbs, which locks onto whatever the encoder makes of the hole.
    Returns the weighted decoder mean (the MSE-optimal fill) on the missing pixels and ``x`` elsewhere.
    """
    levels = jnp.round(x * (num_levels - 1)).astype(jnp.int32)
    mean, log_var = model.apply(params, mask * x, method=model.encode)
    b, d = mean.shape

    def one_chunk(carry, key):
        log_total, weighted = carry
        k_eps, k_pick = jax.random.split(key)
        eps = jax.random.normal(k_eps, (chunk, b, d))
        from_q = jax.random.bernoulli(k_pick, 0.5, (chunk, b, 1))
        z = jnp.where(from_q, mean + jnp.exp(0.5 * log_var) * eps, eps)
        log_r = jnp.logaddexp(log_normal_diag(z, mean, log_var), log_normal_diag(z, 0.0, jnp.zeros_like(z))
                              ) - math.log(2.0)
        log_prior = model.apply(params, z, method=model.log_prior)
        out = model.apply(params, z.reshape(chunk * b, d), method=model.decode)
        rep = lambda a: jnp.broadcast_to(a, (chunk, *a.shape)).reshape(chunk * b, *a.shape[1:])
        ll = observation_log_likelihood(likelihood, out, rep(levels), num_levels=num_levels,
                                        weights=rep(mask)).reshape(chunk, b)
        log_w = ll + log_prior - log_r  # (chunk, b)
        means = observation_mean(likelihood, out, num_levels=num_levels).reshape(chunk, *x.shape)
        new_total = jnp.logaddexp(log_total, jax.nn.logsumexp(log_w, 0))
        w_chunk = jnp.exp(log_w - new_total[None])  # weights relative to the new running total
        scale_old = jnp.exp(log_total - new_total)
        expand = lambda a: a.reshape(a.shape + (1,) * (x.ndim - 1))
        weighted = expand(scale_old) * weighted + jnp.sum(expand(w_chunk) * means, 0)
        return (new_total, weighted), None

    keys = jax.random.split(rng, num_samples // chunk)
    (_, fill), _ = jax.lax.scan(one_chunk, (jnp.full((b,), -jnp.inf), jnp.zeros_like(x)), keys)
    return mask * x + (1 - mask) * fill


def exact_likelihood_functions(bound_fn: Callable, batch_size: int, extra: dict | None = None):
    """``(evaluate, select_score, per_example)`` of a family with an exact (or dequantized) per-example
    ``bound_fn(params, batch, rng) -> (B,) log p``: mean NLL and bits/dim over a split, the NLL as the
    selection score, and per-example values for the detection metrics."""
    def evaluate(params, split, rng):
        res = evaluate_log_likelihood(bound_fn, params, split.arrays(), rng, batch_size=batch_size,
                                      num_dims=split.num_dims)
        return {"nll": res["nll"], "bits_per_dim": res["bits_per_dim"], **(extra or {})}

    def select_score(params, split, rng):
        return evaluate(params, split, rng)["nll"]

    def per_example(params, arrays, rng=None, **_):
        return per_example_log_likelihood(bound_fn, params, arrays, jax.random.key(0) if rng is None else rng,
                                          batch_size=batch_size)

    return evaluate, select_score, per_example


def flow_task(config: ml_collections.ConfigDict, data) -> Task:
    """Normalizing flows on vector data (the 2-D toys), trained by exact NLL; image datasets go to
    :func:`image_flow_task`."""
    if isinstance(data, ImageDataset):
        return image_flow_task(config, data)
    dim = data.num_dims
    x = np.asarray(data.x, np.float64)
    model = build_flow(config.model.flow, dim, num_layers=config.model.num_layers,
                       hidden=tuple(config.model.hidden), num_bins=config.model.num_bins,
                       bound=config.model.spline_bound, data_shift=x.mean(0), data_scale=x.std(0))

    def log_prob(params, batch, rng):
        return model.apply(params, batch["x"], method=model.log_prob)

    loss_fn = make_nll_loss(log_prob)
    log_prob_jit = jax.jit(lambda p, v: model.apply(p, v, method=model.log_prob))

    def init_params(rng, batch):
        del batch  # ActNorm initialises from data: a real batch of the training set, not the loop's 2 examples
        # Jitted: an eager flow init compiles op by op (spline flow: 4.1 s eager, 0.7 s jitted).
        return jax.jit(model.init)(rng, jnp.asarray(data.x[:1024], jnp.float32))

    def sample(params, rng, n):
        return model.apply(params, rng, n, (dim,), method=model.sample)

    exact_nll, select_score, per_example = exact_likelihood_functions(
        lambda p, b, r: log_prob_jit(p, b["x"]), 10_000)

    def evaluate(params, split, rng):
        out = {"nll": exact_nll(params, split, rng)["nll"]}
        toy = split.toy
        if toy is not None and toy.has_log_prob:
            out["true_entropy"] = toy.entropy()
            out["gap_nats"] = out["nll"] - out["true_entropy"]
        n = min(len(split), 5000)
        samples = np.asarray(sample(params, rng, n))
        reference_2 = toy.sample(n, seed=TOY_SPLIT_SEEDS["valid"]) if toy is not None else split.x[:n]
        report = two_sample_report(samples, split.x, reference_2)
        out.update({"mmd2": report["mmd"]["mmd2_sum"], "mmd2_floor": report["noise_floor"]["mmd"]["mmd2_sum"],
                    "sliced_w2": report["sliced_w2"], "sliced_w2_floor": report["noise_floor"]["sliced_w2"]})
        if toy is not None and toy.modes is not None:
            cov = mode_coverage(samples, toy.modes, toy.mode_std)
            out.update(modes_hit=cov["modes_hit"], num_modes=cov["num_modes"],
                       high_quality_fraction=cov["high_quality_fraction"])
        return out

    def picture(params, rng, path, title):
        toy = data.toy
        bounds = toy.bounds if toy is not None else (*np.percentile(x[:, 0], [0, 100]), *np.percentile(x[:, 1], [0, 100]))
        lp, _ = density_grid(lambda v: log_prob_jit(params, jnp.asarray(v, jnp.float32)), bounds, resolution=300)
        background = world_land_raster() if data.name == "world_land" else None
        save_2d_panels([{"title": "data", "points": x[:20000]},
                        {"title": f"{config.model.flow} density", "log_density": lp},
                        {"title": "samples", "points": np.asarray(sample(params, rng, 20000)), "color": "tab:orange"}],
                       path, bounds=bounds, title=title, background=background,
                       panel_size=6.0 if background is not None else 4.0)

    return Task(model, init_params, loss_fn, sample, evaluate, select_score=select_score, log_prob=per_example,
                picture=picture)


def image_flow_task(config: ml_collections.ConfigDict, data: ImageDataset) -> Task:
    """A flow over flattened single-channel images, uniformly dequantized (gen_jax.data.conventions):
    it models ``y = (x + u) / K`` on ``[0, 1)^D`` and reports ``-log p(y) + D log K`` nats, a bound on the NLL
    of the integer levels, as bits/dim."""
    if data.image_shape[-1] != 1:
        raise ValueError("image flows here take single-channel images")
    k, d = data.num_levels, data.num_dims
    h, w = data.image_shape[:2]
    y_train = (data.image.reshape(len(data), d).astype(np.float64) + 0.5) / k
    model = build_flow(config.model.flow, d, num_layers=config.model.num_layers, hidden=tuple(config.model.hidden),
                       num_bins=config.model.num_bins, bound=config.model.spline_bound,
                       # One global shift and scale: per-pixel ones would blow up the always-blank corner
                       # pixels (training variance = dequantization noise only) and any test image inked
                       # there would get an absurd NLL.
                       data_shift=np.full(d, y_train.mean()), data_scale=np.full(d, y_train.std()),
                       image_hw=(h, w), num_scales=config.model.num_scales)

    def dequantized(batch, rng):
        levels = batch["image"].reshape(batch["image"].shape[0], d)
        return uniform_dequantize(levels, rng, num_levels=k)

    def log_prob_levels(params, batch, rng):  # the lower bound on log P(levels)
        return -dequantized_nll(model.apply(params, dequantized(batch, rng), method=model.log_prob),
                                num_dims=d, num_levels=k)

    log_prob_jit = jax.jit(log_prob_levels)

    def init_params(rng, batch):
        del batch  # ActNorm initialises from data: a real batch of the training set, not the loop's 2 examples
        return jax.jit(model.init)(rng, dequantized({"image": jnp.asarray(data.image[:1024])}, jax.random.key(0)))

    def sample(params, rng, n):
        y = model.apply(params, rng, n, (d,), method=model.sample)
        return jnp.clip(y, 0.0, 1.0).reshape(n, *data.image_shape)

    evaluate, select_score, per_example = exact_likelihood_functions(log_prob_jit, config.eval.batch_size)
    return Task(model, init_params, make_nll_loss(log_prob_levels), sample, evaluate, select_score=select_score,
                log_prob=per_example)


def made_task(config: ml_collections.ConfigDict, data) -> Task:
    """MADE on integer images (Bernoulli for 2 levels, categorical otherwise), order-agnostic with
    ``model.num_masks`` connectivities (one drawn per step); evaluation uses the ensemble of all of them."""
    if not isinstance(data, ImageDataset):
        raise ValueError(f"model.family='made' needs an image dataset, got {data.name!r}")
    num_classes = data.num_classes if config.model.conditional else 0
    model = MADEImage(data.image_shape, data.num_levels, hidden=tuple(config.model.hidden),
                      num_masks=config.model.num_masks, num_classes=num_classes,
                      direct_connections=config.model.made_direct_connections)
    m = config.model.num_masks

    def labels(batch):
        return batch["label"] if num_classes else None

    def log_prob(params, batch, rng):
        index = jax.random.randint(rng, (), 0, m) if m > 1 else 0
        return model.apply(params, batch["image"], index, labels(batch), method=model.log_prob)

    ensemble = jax.jit(lambda p, batch: model.apply(p, batch["image"], labels(batch),
                                                    method=model.ensemble_log_prob))

    def init_params(rng, batch):
        return model.init(rng, jnp.asarray(batch["image"]), 0, jnp.asarray(batch["label"]) if num_classes else None)

    def sample(params, rng, n):
        y = jnp.arange(n) % num_classes if num_classes else None
        x = model.apply(params, rng, n, 0, y, method=model.sample)
        return x.astype(jnp.float32) / (data.num_levels - 1)

    evaluate, select_score, per_example = exact_likelihood_functions(
        lambda p, b, r: ensemble(p, b), config.eval.batch_size, extra={"num_masks": m})
    return Task(model, init_params, make_nll_loss(log_prob), sample, evaluate, select_score=select_score,
                log_prob=per_example)


def pixelcnn_task(config: ml_collections.ConfigDict, data) -> Task:
    """Gated PixelCNN on single-channel integer images (Bernoulli for 2 levels; ``model.pixelcnn_output``
    categorical or logistic_mixture otherwise); exact NLL; ``impute`` samples the missing pixels in raster order
    and averages ``eval.impute_samples`` draws."""
    if not isinstance(data, ImageDataset):
        raise ValueError(f"model.family='pixelcnn' needs an image dataset, got {data.name!r}")
    num_classes = data.num_classes if config.model.conditional else 0
    model = PixelCNN(num_levels=data.num_levels, channels=config.model.pixelcnn_channels,
                     num_layers=config.model.num_layers, output=config.model.pixelcnn_output,
                     num_classes=num_classes, dilations=tuple(config.model.pixelcnn_dilations))

    def labels(batch):
        return batch["label"] if num_classes else None

    def log_prob(params, batch, rng):
        return model.apply(params, batch["image"], labels(batch), method=model.log_prob)

    log_prob_jit = jax.jit(lambda p, b: model.apply(p, b["image"], labels(b), method=model.log_prob))

    def init_params(rng, batch):
        return model.init(rng, jnp.asarray(batch["image"]), jnp.asarray(batch["label"]) if num_classes else None)

    h, w = data.image_shape[:2]
    sample_jit = jax.jit(lambda p, r, y: model.apply(p, r, y.shape[0], (h, w), y if num_classes else None,
                                                     method=model.sample))

    def sample(params, rng, n):
        y = jnp.arange(n) % max(num_classes, 1)
        return sample_jit(params, rng, y).astype(jnp.float32) / (data.num_levels - 1)

    evaluate, select_score, per_example = exact_likelihood_functions(lambda p, b, r: log_prob_jit(p, b),
                                                                     config.eval.batch_size)

    inpaint_jit = jax.jit(lambda p, r, x, m: model.apply(p, r, x, m, method=model.inpaint))

    def impute(params, x, mask, rng):
        levels = jnp.round(jnp.asarray(x) * (data.num_levels - 1)).astype(jnp.int32)
        draws = [inpaint_jit(params, jax.random.fold_in(rng, i), levels, jnp.asarray(mask))
                 for i in range(config.eval.impute_samples)]
        mean = jnp.mean(jnp.stack(draws).astype(jnp.float32), 0) / (data.num_levels - 1)
        return np.asarray(mask * x + (1 - mask) * mean)

    return Task(model, init_params, make_nll_loss(log_prob), sample, evaluate, select_score=select_score,
                log_prob=per_example, impute=impute)


def transformer_task(config: ml_collections.ConfigDict, data) -> Task:
    """A causal Transformer over character sequences (:mod:`gen_jax.data.text`), exact NLL per word; the
    evaluation reports bits per character, the picture shows samples at ``model.sample_temperatures``."""
    if not isinstance(data, TextDataset):
        raise ValueError(f"model.family='transformer' needs a text dataset {list(TEXT_DATASETS)}, "
                         f"got {data.name!r}")
    model = CausalTransformer(vocab_size=data.vocab.size, max_len=data.seq_len - 1,
                              dim=config.model.transformer_dim, num_heads=config.model.num_heads,
                              num_layers=config.model.num_layers, dropout=config.model.dropout)

    def log_prob(params, batch, rng):  # the training objective: dropout on when model.dropout > 0
        return model.apply(params, batch["tokens"], False, method=model.log_prob, rngs={"dropout": rng})

    log_prob_jit = jax.jit(lambda p, b: model.apply(p, b["tokens"], method=model.log_prob))

    def init_params(rng, batch):
        return model.init(rng, jnp.asarray(batch["tokens"]))

    sample_jit = jax.jit(lambda p, r, n, t: model.apply(p, r, n, data.seq_len, temperature=t, method=model.sample),
                         static_argnums=2)

    def sample(params, rng, n, temperature=1.0):
        """``n`` sampled words (strings)."""
        return [data.vocab.decode(t) for t in np.asarray(sample_jit(params, rng, n, temperature))]

    exact, select_score, per_example = exact_likelihood_functions(lambda p, b, r: log_prob_jit(p, b),
                                                                  config.eval.batch_size)

    def evaluate(params, split, rng):
        res = exact(params, split, rng)
        return {"nll_per_word": res["nll"], "bits_per_char": res["bits_per_dim"],
                "num_characters": split.num_characters}

    def picture(params, rng, path, title):
        n = config.train.num_sample_images
        columns = {f"T = {t:g}": sample(params, jax.random.fold_in(rng, i), n, float(t))
                   for i, t in enumerate(config.model.sample_temperatures)}
        save_text_columns(columns, path, title=title)

    return Task(model, init_params, make_nll_loss(log_prob), sample, evaluate, select_score=select_score,
                log_prob=per_example, picture=picture)


TASK_BUILDERS: dict[str, Callable[[ml_collections.ConfigDict, object], Task]] = {
    "vae": vae_task, "flow": flow_task, "made": made_task, "pixelcnn": pixelcnn_task,
    "transformer": transformer_task}


def build_task(config: ml_collections.ConfigDict, data: ImageDataset) -> Task:
    family = config.model.family
    if family not in TASK_BUILDERS:
        raise ValueError(f"unknown model.family {family!r}; known: {sorted(TASK_BUILDERS)}")
    return TASK_BUILDERS[family](config, data)
