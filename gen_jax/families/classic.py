"""The classic latent-variable family: a Gaussian, probabilistic PCA, factor analysis, a Gaussian mixture, a
(mixture of) product(s) of Bernoullis (:mod:`gen_jax.models.latent`), fitted once by closed form or EM
(the loop's ``fit`` path: one call, checkpointed as step 1) and evaluated by the same metrics as every family.

Data: vectors (the 2-D toys; exact log-density) and images. Continuous models see images uniformly dequantized,
``y = (x + u) / K`` (the flows' convention: the reported NLL is a bound on the levels' NLL, kind
``lower_bound``); ``bernoulli`` / ``bernoulli_mixture`` need binary images and are exact.

``model.conditional`` fits one model per class (the same fit, weighted by class membership), with the class
frequencies as ``log_prior``: ``log_prob`` is then ``log p(x | y)`` for the batch's labels and
:func:`gen_jax.eval.generative_classifier.bayes_posterior` turns it into a classifier. Gaussian naive Bayes is
``kind=gaussian, covariance=diag, conditional=True``; Bernoulli naive Bayes ``kind=bernoulli, conditional=True``.

Capabilities: sample, log_prob, impute (the conditional mean of the missing pixels given the observed ones,
exact: the Gaussian's conditional, a mixture's posterior-weighted conditionals), encode/decode for PPCA and
FA (the posterior mean of z; the mean of p(x | z)) and for the mixtures (the posterior over components; a
component's mean). :func:`masked_log_prob` gives the exact marginal
``log p(x_obs)`` under any mask (used by the missing-data classifiers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_jax.data.conventions import dequantized_nll, uniform_dequantize
from gen_jax.data.images import ImageDataset
from gen_jax.data.vectors import VectorDataset
from gen_jax.families.base import Family, LogProb, Trainer
from gen_jax.models import latent
from gen_jax.train.state import create_train_state
from gen_jax.viz import save_density_picture

NAME = "classic"
KINDS = ("gaussian", "ppca", "fa", "gmm", "bernoulli", "bernoulli_mixture")
_BINARY = ("bernoulli", "bernoulli_mixture")


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        kind="gmm",  # one of KINDS
        latent_dim=16,  # ppca, fa
        num_components=10,  # gmm, bernoulli_mixture
        covariance="full",  # gaussian, gmm: full | diag
        num_iters=100,  # EM steps (fa, gmm, bernoulli_mixture)
        num_restarts=1,  # gmm, bernoulli_mixture: best final likelihood kept
        reg=1e-6,  # added to every variance (scikit-learn's reg_covar)
        alpha=1.0,  # Bernoulli models: pseudo-counts of the Beta/Dirichlet priors (1 = Laplace smoothing)
        conditional=False,  # one model per class: log_prob = log p(x | y)
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


# ------------------------------------------------------------------------- one model: fit and queries


def fit_model(m: ml_collections.ConfigDict, rng, x, weights):
    """``(params, history)`` of ``m.kind`` fitted to rows ``x`` with per-example ``weights``; history is the
    EM objective per step ``(restarts, steps + 1)`` (one value for closed forms)."""
    kind = m.kind
    if kind in ("gaussian", "gmm"):
        k, iters = (1, 0) if kind == "gaussian" else (m.num_components, m.num_iters)
        return latent.fit_gmm(rng, x, k, covariance=m.covariance, num_iters=iters,
                              num_restarts=1 if kind == "gaussian" else m.num_restarts, reg=m.reg, weights=weights)
    if kind in _BINARY:
        k, iters = (1, 0) if kind == "bernoulli" else (m.num_components, m.num_iters)
        return latent.fit_bernoulli_mixture(rng, x, k, num_iters=iters,
                                            num_restarts=1 if kind == "bernoulli" else m.num_restarts,
                                            alpha=m.alpha, weights=weights)
    if kind == "ppca":
        params = latent.fit_ppca(x, m.latent_dim, weights)
        params = {**params, "sigma2": params["sigma2"] + m.reg}
        w = jnp.ones(x.shape[0]) if weights is None else weights
        return params, (w @ latent.ppca_log_prob(params, x) / w.sum())[None, None]
    if kind == "fa":
        params, history = latent.fit_factor_analysis(x, m.latent_dim, num_iters=m.num_iters, weights=weights,
                                                     min_var=m.reg)
        return params, history[None]
    raise ValueError(f"unknown model.kind {kind!r} of the classic family; known: {list(KINDS)}")


def model_log_prob(kind: str, params, x):
    if kind in ("gaussian", "gmm"):
        return latent.gmm_log_prob(params, x)
    if kind in _BINARY:
        return latent.bernoulli_mixture_log_prob(params, x)
    return {"ppca": latent.ppca_log_prob, "fa": latent.fa_log_prob}[kind](params, x)


def _as_mixture(kind: str, params):
    """PPCA and FA as a one-component full-covariance mixture (for their marginals and conditionals)."""
    if kind in ("ppca", "fa"):
        cov = latent.ppca_covariance(params) if kind == "ppca" else latent.fa_covariance(params)
        return {"log_weights": jnp.zeros(1), "means": params["mean"][None], "covs": cov[None]}
    return params


def model_masked_log_prob(kind: str, params, x, mask):
    """The exact marginal ``log p(x_obs)`` (mask 1 = observed)."""
    if kind in _BINARY:
        return latent.bernoulli_mixture_log_prob(params, x, mask)
    return latent.gmm_masked_log_prob(_as_mixture(kind, params), x, mask)[0]


def model_impute(kind: str, params, x, mask):
    """``E[x_mis | x_obs]``, observed coordinates as given."""
    if kind in _BINARY:
        return latent.bernoulli_mixture_impute(params, x, mask)
    return latent.gmm_impute(_as_mixture(kind, params), x, mask)


def model_sample(kind: str, params, rng, n: int):
    k_comp, k_draw, k_noise = jax.random.split(rng, 3)
    if kind in ("ppca", "fa"):
        d, k = params["W"].shape
        noise_var = jnp.full(d, params["sigma2"]) if kind == "ppca" else params["psi"]
        z = jax.random.normal(k_draw, (n, k))
        return z @ params["W"].T + params["mean"] + jnp.sqrt(noise_var) * jax.random.normal(k_noise, (n, d))
    comp = jax.random.categorical(k_comp, params["log_weights"], shape=(n,))
    if kind in _BINARY:
        return jax.random.bernoulli(k_draw, jax.nn.sigmoid(params["logits"][comp])).astype(jnp.float32)
    eps = jax.random.normal(k_draw, (n, params["means"].shape[1]))
    if "vars" in params:
        return params["means"][comp] + jnp.sqrt(params["vars"][comp]) * eps
    chol = jax.vmap(jnp.linalg.cholesky)(params["covs"])
    return params["means"][comp] + jnp.einsum("nij,nj->ni", chol[comp], eps)


# ------------------------------------------------------------------------------------------------ family


def build(config: ml_collections.ConfigDict, data) -> Family:
    m = config.model
    if m.kind not in KINDS:
        raise ValueError(f"unknown model.kind {m.kind!r} of the classic family; known: {list(KINDS)}")
    if isinstance(data, ImageDataset):
        if m.kind in _BINARY and data.num_levels != 2:
            raise ValueError(f"model.kind={m.kind!r} needs binary images; {data.name!r} has {data.num_levels} "
                             f"levels")
        levels, d = data.num_levels, data.num_dims
        binary = m.kind in _BINARY
    elif isinstance(data, VectorDataset):
        if m.kind in _BINARY:
            raise ValueError(f"model.kind={m.kind!r} needs binary images, got the vectors {data.name!r}")
        levels, d, binary = 0, data.num_dims, False
    else:
        raise ValueError(f"model.family='classic' needs vectors or images, got {data.name!r}")
    num_classes = data.num_classes if m.conditional else 0
    if m.conditional and not num_classes:
        raise ValueError(f"model.conditional needs labels; {data.name!r} has none")
    kind = m.kind

    def rows(batch, rng):
        """The model's view of a batch: vectors as they are, binary images as 0/1, other images dequantized."""
        if not levels:
            return jnp.asarray(batch["x"], jnp.float32)
        flat = jnp.asarray(batch["image"]).reshape(-1, d)
        return flat.astype(jnp.float32) if binary else uniform_dequantize(flat, rng, num_levels=levels)

    def fit_arrays(x, y, rng):
        """``(params, history)`` of the whole (conditional) model on the model's rows ``x``."""
        if not num_classes:
            return fit_model(m, rng, x, None)
        counts = jnp.bincount(y, length=num_classes).astype(jnp.float32)
        per_class = jax.lax.map(
            lambda c: fit_model(m, jax.random.fold_in(rng, c), x, (y == c).astype(jnp.float32)),
            jnp.arange(num_classes))
        return {"classes": per_class[0], "log_prior": jnp.log(counts / counts.sum())}, per_class[1]

    def fit(state, arrays, rng):
        k_data, k_fit = jax.random.split(rng)
        params, history = fit_arrays(rows(arrays, k_data), jnp.asarray(arrays["label"]) if num_classes else None,
                                     k_fit)
        history = np.asarray(history)
        final = history[..., -1].max(-1)  # the kept restart's last value (per class when conditional)
        decrease = -np.diff(history, axis=-1)
        metrics = {"train_log_likelihood": float(np.mean(final)),
                   "em_steps": history.shape[-1] - 1,
                   "em_largest_decrease": float(max(0.0, decrease.max())) if decrease.size else 0.0}
        return state.replace(params=params, aux={"em_history": jnp.asarray(history)}), metrics

    def init_state(rng, batch):
        """Zeros of the fitted state's shapes (what a checkpoint restores into)."""
        x = jax.ShapeDtypeStruct((max(len(next(iter(batch.values()))), 1), d), jnp.float32)
        y = jax.ShapeDtypeStruct(x.shape[:1], jnp.int32) if num_classes else None
        shaped = jax.eval_shape(fit_arrays, x, y, rng)
        params, history = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shaped)
        return create_train_state(params, optax.identity(), aux={"em_history": history})

    def one_log_prob(params, x, labels):
        if not num_classes:
            return model_log_prob(kind, params, x)
        per_class = jax.vmap(lambda p: model_log_prob(kind, p, x), out_axes=1)(params["classes"])
        return jnp.take_along_axis(per_class, labels[:, None], axis=1)[:, 0]

    def log_prob(params, batch, rng):
        labels = jnp.asarray(batch["label"]) if num_classes else None
        lp = one_log_prob(params, rows(batch, rng), labels)
        return lp if binary or not levels else -dequantized_nll(lp, num_dims=d, num_levels=levels)

    exact = binary or not levels
    lp = LogProb(log_prob, "exact" if exact else "lower_bound",
                 estimator=lambda: "exact" if exact else "dequantized")

    sample_jit = jax.jit(lambda p, r, n: model_sample(kind, p, r, n), static_argnums=2)

    def sample(params, rng, n, *, labels=None):
        if num_classes:
            if labels is None:
                labels = jnp.arange(n) % num_classes
            keys = jax.random.split(rng, n)
            y = jnp.concatenate([sample_jit(jax.tree.map(lambda a: a[c], params["classes"]), k, 1)
                                 for c, k in zip(np.asarray(labels), keys)])
        elif labels is not None:
            raise ValueError("labels given to an unconditional classic model")
        else:
            y = sample_jit(params, rng, n)
        if not levels:
            return y
        shape = (n, *data.image_shape)
        if binary:
            return y.astype(jnp.int32).reshape(shape)
        return jnp.clip(jnp.floor(y * levels), 0, levels - 1).astype(jnp.int32).reshape(shape)

    def centres(batch):
        """A batch as the model's rows without dequantization noise (the levels' bin centres)."""
        if not levels:
            return jnp.asarray(batch["x"], jnp.float32)
        flat = jnp.asarray(batch["image"]).reshape(-1, d).astype(jnp.float32)
        return flat if binary else (flat + 0.5) / levels

    def as_data(mean):
        """Means in the model's units as vectors, or images as intensities in [0, 1]."""
        if not levels:
            return mean
        unit = mean if binary else (mean * levels - 0.5) / (levels - 1)
        return jnp.clip(unit, 0, 1).reshape(-1, *data.image_shape)

    impute_jit = jax.jit(lambda p, x, mask: model_impute(kind, p, x, mask))

    def impute(params, x, mask, rng=None):
        """Images as intensities in [0, 1] (mask 1 = observed): the conditional mean of the missing pixels (the
        observed ones as the model sees their levels, the fill back in intensities)."""
        if num_classes:
            raise ValueError("impute of a class-conditional classic model: use one class's parameters")
        x, mask = np.asarray(x, np.float32), np.asarray(mask, np.float32)
        rows = centres({"image": np.round(x * (levels - 1)).astype(np.int32)})
        filled = as_data(impute_jit(params, rows, jnp.asarray(mask.reshape(len(x), d))))
        return mask * x + (1 - mask) * np.asarray(filled).reshape(x.shape)

    encode = decode = None
    if kind in ("ppca", "fa") and not num_classes:
        posterior = latent.ppca_posterior if kind == "ppca" else latent.fa_posterior

        def encode(params, batch, rng=None):
            """The posterior mean of z (images at the levels' bin centres)."""
            return posterior(params, centres(batch))[0]

        def decode(params, z, rng=None):
            """The mean of p(x | z): vectors, or images as intensities in [0, 1]."""
            return as_data(jnp.asarray(z) @ params["W"].T + params["mean"])
    elif kind in ("gmm", "bernoulli_mixture") and not num_classes:
        component_log_prob = (latent.gmm_component_log_prob if kind == "gmm"
                              else latent.bernoulli_component_log_prob)

        def encode(params, batch, rng=None):
            """A mixture's latent is its component: the posterior over components ``(B, K)``."""
            return jax.nn.softmax(component_log_prob(params, centres(batch)), axis=1)

        def decode(params, z, rng=None):
            """Component indices ``(B,)`` to their means (vectors, or images as intensities in [0, 1])."""
            means = params["means"] if kind == "gmm" else jax.nn.sigmoid(params["logits"])
            return as_data(means[jnp.asarray(z, jnp.int32)])

    picture = None
    if not levels and d == 2 and not num_classes:
        x_train = data.x
        bounds = data.toy.bounds if data.toy is not None else (*np.percentile(x_train[:, 0], [0, 100]),
                                                               *np.percentile(x_train[:, 1], [0, 100]))
        density = jax.jit(lambda p, v: model_log_prob(kind, p, v))

        def picture(params, rng, path, title):
            save_density_picture(lambda v: density(params, jnp.asarray(v, jnp.float32)), x_train[:20000],
                                 np.asarray(sample(params, rng, 20000)), path, bounds=bounds, title=title,
                                 density_title=f"{kind} density")

    return Family(NAME, None, Trainer(init_state, fit=fit), sample=sample, log_prob=lp, encode=encode,
                  decode=decode, impute=impute if levels and not num_classes else None, picture=picture,
                  num_levels=levels)


def masked_log_prob(kind: str, params, x, mask):
    """``log p(x_obs)`` per row of a fitted classic model (``params`` of one model, or of a conditional one:
    then ``(B, C)``, one column per class), on the model's own rows (:func:`build`'s view of the data)."""
    if "classes" in params:
        return jax.vmap(lambda p: model_masked_log_prob(kind, p, x, mask), out_axes=1)(params["classes"])
    return model_masked_log_prob(kind, params, x, mask)
