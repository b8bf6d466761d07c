"""The GAN family: a generator and a discriminator, each with its own optimizer, trained by alternating updates
of an adversarial loss (:mod:`gen_jax.losses.adversarial`).

**The step** (one per ``train.steps``): ``model.n_critic`` discriminator updates, each with a fresh key (new
noise, new interpolates for the gradient penalty; the real batch is the step's own), then one generator update,
then the EMA of the generator's parameters (``train.ema_decay``). Optimizers: ``optim`` is the generator's,
``discriminator_optim`` the discriminator's (TTUR: Heusel et al. 2017), its schedule over ``n_critic * steps``
updates. Penalties: ``model.gradient_penalty`` (WGAN-GP's lambda), ``model.r1_gamma`` / ``model.r2_gamma``
(``gamma / 2 * ||grad D||^2`` on real / fake data), R1 lazily every ``model.r1_every`` steps (weighted by it,
as StyleGAN2).

**State**: ``state.params`` holds each player's Flax variables, ``{"generator": {"params", "batch_stats"},
"discriminator": ...}``: the batch-norm running statistics and spectral-norm vectors stay beside the weights
they belong to; each optimizer updates its player's ``params`` only. ``state.ema_params`` is the EMA of the
generator's ``params`` alone (``state.eval_params`` fills in the rest). Under ``jax.pmap`` batch norm uses
the global batch's statistics (``axis_name``), so 4 devices make the same update as one; minibatch features
(:mod:`gen_jax.nn.minibatch`) are per device.

**Generators**: the MLP (vectors), DCGAN (images, ``model.generator="dcgan"``) or the StyleGAN-style generator
(``"style"``: :class:`gen_jax.models.gan.StyleGenerator`, a mapping network, AdaIN-modulated layers from a learned
constant, per-pixel noise drawn from the step's key, style mixing with probability ``model.style_mixing`` in
training, the running mean of ``w`` in its ``batch_stats`` for the truncation trick: ``sample(...,
truncation=psi)``; inversion in ``w`` with ``model.invert_space="w"``). The other generators truncate their code
instead: ``sample(..., truncation=psi)`` draws from ``psi * z`` (Brock et al. 2019 truncate z too).

**Data**: vectors are standardised per feature (the generator works in standard units); images are levels at
bin centres in [-1, 1] (the generator's tanh range) and samples are rounded back to levels.

**Capabilities**: ``sample`` (``labels`` for a conditional GAN; ``truncation``; ``rejection=gamma``:
discriminator rejection sampling, Azadi et al. 2019, :mod:`gen_jax.sampling.rejection`), ``decode`` (the generator: codes -> data;
images in [0, 1]), ``encode`` (GAN inversion: the code whose image matches, :func:`gen_jax.sampling.invert_generator`)
and ``impute`` (inversion on the observed pixels only, the generator's image in the missing ones). A GAN has no
likelihood: no ``log_prob``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax

from gen_jax.data.conventions import from_bin_centres, to_bin_centres
from gen_jax.data.images import ImageDataset
from gen_jax.data.vectors import VectorDataset
from gen_jax.families.base import Family, Trainer
from gen_jax.families.common import global_draw, image_labels, standardiser
from gen_jax.losses.adversarial import (ADVERSARIAL_LOSSES, discriminator_loss, generator_loss,
                                        gradient_norm_squared, gradient_penalty)
from gen_jax.models.gan import DCGANGenerator, Discriminator, MLPGenerator, StyleGenerator, blur_to_level
from gen_jax.sampling.latent import invert_generator
from gen_jax.sampling.rejection import discriminator_rejection_sample
from gen_jax.train.config import OPTIM_DEFAULTS
from gen_jax.train.optim import make_optimizer
from gen_jax.train.state import TrainState
from gen_jax.train.step import step_rng
from gen_jax.viz import save_2d_panels
from gen_jax.viz.density2d import density_grid

NAME = "gan"


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        loss="non_saturating",  # minimax | non_saturating | least_squares | hinge | wasserstein
        latent_dim=64,
        n_critic=1,  # discriminator updates per generator update
        gradient_penalty=0.0,  # WGAN-GP's lambda (10 in the paper); 0 = none
        r1_gamma=0.0,  # R1: gamma / 2 * ||grad D(x)||^2 on data; 0 = none
        r1_every=1,  # lazy R1 (StyleGAN2): every k steps, weighted by k
        r2_gamma=0.0,  # R2: the same on generated samples
        conditional=False,  # images with labels: p(x | y), the projection discriminator
        # generator
        generator="dcgan",  # images: dcgan | style (mapping network, AdaIN, noise: StyleGenerator)
        g_hidden=(256, 256, 256),  # vectors: the MLP generator
        g_channels=(128, 64),  # images: DCGAN maps at the lowest resolution, then after each upsampling
        g_batch_norm=True,
        progressive_steps=0,  # DCGAN images: progressive growing, steps per resolution (fade in, train); 0 = off
        # the style generator (model.generator="style")
        style_channels=(128, 64, 32),  # maps at the constant's resolution, then after each 2x upsampling
        w_dim=64,
        mapping_layers=4,
        mapping_lr_multiplier=0.01,  # the mapping network's learning rate relative to the generator's (StyleGAN)
        style_mixing=0.9,  # the fraction of generated examples whose styles switch code at a random layer
        w_avg_decay=0.995,  # the running mean of w: the truncation trick's centre
        invert_space="z",  # GAN inversion in z, or (style) in w (one w for every layer)
        # discriminator
        d_hidden=(256, 256),  # vectors: the MLP discriminator
        d_channels=(64, 128),  # images: DCGAN maps after each 4x4 stride-2 convolution
        d_norm="none",  # none | batch | layer (no batch norm with a gradient penalty)
        spectral_norm=False,
        minibatch="none",  # none | discrimination | stddev
        minibatch_group=4,  # stddev's group size
        pack=1,  # PacGAN's packing degree
        conv="fast",  # fast (Col2ImConvTranspose / SpaceToDepthConv: matrix products) | flax (strided Flax layers)
        # GAN inversion (encode, impute)
        invert_steps=300,
        invert_restarts=8,  # starts per example; the best fit is kept
        invert_learning_rate=0.05,
        invert_prior_weight=1e-3,
    ))
    c.discriminator_optim = ml_collections.ConfigDict(OPTIM_DEFAULTS)
    c.evals = ml_collections.ConfigDict()
    return c


def progressive_level(step, steps_per_resolution: int, num_resolutions: int) -> jax.Array:
    """Progressive growing's schedule: ``steps_per_resolution`` steps at the lowest resolution (level 0), then
    for each next one ``steps_per_resolution`` steps, fading it in over the first half (the level rises
    linearly by 1) and training at it over the second; the level stays at ``num_resolutions - 1`` after."""
    step = jnp.asarray(step, jnp.float32)
    stage = jnp.floor(step / steps_per_resolution)
    within = (step - stage * steps_per_resolution) / steps_per_resolution
    level = jnp.where(stage == 0, 0.0, stage - 1 + jnp.minimum(2 * within, 1.0))
    return jnp.minimum(level, num_resolutions - 1)


def _check_model(m):
    if m.loss not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown model.loss {m.loss!r}; known: {ADVERSARIAL_LOSSES}")
    if m.n_critic < 1 or m.r1_every < 1 or m.pack < 1:
        raise ValueError("model.n_critic, model.r1_every and model.pack must be >= 1")
    if m.d_norm == "batch" and (m.gradient_penalty or m.r1_gamma or m.r2_gamma):
        raise ValueError("a gradient penalty is per example: batch norm in the discriminator (model.d_norm='batch') "
                         "couples the examples; use d_norm='layer' or 'none'")
    if m.conv not in ("fast", "flax"):
        raise ValueError(f"unknown model.conv {m.conv!r}; use fast or flax")
    if m.generator not in ("dcgan", "style"):
        raise ValueError(f"unknown model.generator {m.generator!r}; use dcgan or style")
    if m.mapping_layers < 0:
        raise ValueError(f"model.mapping_layers={m.mapping_layers}: the style generator's mapping depth, >= 0 (0: w is "
                         f"the normalised z)")
    if m.invert_space not in ("z", "w") or (m.invert_space == "w" and m.generator != "style"):
        raise ValueError(f"model.invert_space={m.invert_space!r}: 'z', or 'w' with model.generator='style'")
    if m.progressive_steps < 0 or (m.progressive_steps and m.generator != "dcgan"):
        raise ValueError(f"model.progressive_steps={m.progressive_steps}: steps per resolution (>= 0) of the dcgan "
                         f"generator")
    if not 0.0 <= m.style_mixing <= 1.0:
        raise ValueError(f"model.style_mixing={m.style_mixing} must be a probability in [0, 1]")


def build(config: ml_collections.ConfigDict, data) -> Family:
    m = config.model
    _check_model(m)
    if isinstance(data, ImageDataset):
        k, shape = data.num_levels, data.image_shape
        num_classes = data.num_classes if m.conditional else 0
        if m.conditional and not num_classes:
            raise ValueError(f"model.conditional=True but dataset {data.name!r} has no labels")
        if m.generator == "style":
            generator = StyleGenerator(image_shape=shape, channels=tuple(m.style_channels), w_dim=m.w_dim,
                                       mapping_layers=m.mapping_layers, num_classes=num_classes,
                                       w_avg_decay=m.w_avg_decay, mapping_lr_multiplier=m.mapping_lr_multiplier,
                                       conv="patch" if m.conv == "fast" else "flax")
        else:
            generator = DCGANGenerator(image_shape=shape, channels=tuple(m.g_channels), batch_norm=m.g_batch_norm,
                                       num_classes=num_classes, conv="col2im" if m.conv == "fast" else "flax",
                                       progressive=m.progressive_steps > 0)
        d_kind, d_features = "dcgan", tuple(m.d_channels)
        to_model = functools.partial(to_bin_centres, num_levels=k)
        from_model = functools.partial(from_bin_centres, num_levels=k)
        data_key = "image"
    elif isinstance(data, VectorDataset):
        if m.conditional:
            raise ValueError("model.conditional=True is built for images only")
        if m.generator != "dcgan":
            raise ValueError(f"model.generator={m.generator!r} is built for images only (vectors: the MLP generator)")
        if m.progressive_steps:
            raise ValueError("model.progressive_steps (progressive growing) is built for images only")
        num_classes, shape = 0, (data.num_dims,)
        to_model, from_model, _ = standardiser(data.x)
        generator = MLPGenerator(out_dim=data.num_dims, hidden=tuple(m.g_hidden), batch_norm=m.g_batch_norm)
        d_kind, d_features = "mlp", tuple(m.d_hidden)
        data_key = "x"
    else:
        raise ValueError(f"model.family='gan' takes vectors or images, got {data.name!r}")
    discriminator = Discriminator(kind=d_kind, features=d_features, norm=m.d_norm, spectral_norm=m.spectral_norm,
                                  minibatch=m.minibatch, minibatch_group=m.minibatch_group, pack=m.pack,
                                  num_classes=num_classes, conv="space_to_depth" if m.conv == "fast" else "flax")
    style = isinstance(generator, StyleGenerator)
    progressive = isinstance(generator, DCGANGenerator) and generator.progressive
    num_resolutions = len(m.g_channels) + 1

    def train_extra(key, level):
        """The generator's training arguments beyond z: the style generator's noise and style mixing draw from
        a key of their own; a progressive generator takes the step's level."""
        if style:
            return {"rng": key, "mixing_prob": m.style_mixing}
        return {"level": level} if progressive else {}

    g_opt = make_optimizer(config.optim, config.train.steps)
    d_opt = make_optimizer(config.discriminator_optim, config.train.steps * m.n_critic)
    ema_decay = config.train.ema_decay

    def init_state(rng, batch):
        k_g, k_d = jax.random.split(rng)
        labels = jnp.zeros((m.pack,), jnp.int32) if num_classes else None
        params = {"generator": dict(generator.init(k_g, jnp.zeros((m.pack, m.latent_dim)), labels)),
                  "discriminator": dict(discriminator.init(k_d, jnp.zeros((m.pack, *shape)), labels))}
        ema = {"generator": {"params": jax.tree.map(jnp.copy, params["generator"]["params"])}} if ema_decay else None
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, ema_params=ema,
                          opt_state={"generator": g_opt.init(params["generator"]["params"]),
                                     "discriminator": d_opt.init(params["discriminator"]["params"])})

    def make_step(axis_name):
        gen = generator.clone(axis_name=axis_name)
        disc = discriminator.clone(axis_name=axis_name)

        def g_apply(g_params, g_vars, z, labels, key, level):
            """Training mode: batch statistics, the running ones updated (the style generator's ``w_avg``).
            Returns the output and the player's variables with ``g_params`` and the new statistics."""
            extra = train_extra(key, level)
            if "batch_stats" not in g_vars:
                return gen.apply({"params": g_params}, z, labels, train=True, **extra), {"params": g_params}
            out, upd = gen.apply({**g_vars, "params": g_params}, z, labels, train=True, mutable=["batch_stats"],
                                 **extra)
            return out, {"params": g_params, **upd}

        def d_apply(d_params, d_vars, x, labels, update_stats=True):
            if "batch_stats" not in d_vars:
                return disc.apply({"params": d_params}, x, labels, update_stats=update_stats), {"params": d_params}
            out, upd = disc.apply({**d_vars, "params": d_params}, x, labels, update_stats=update_stats,
                                  mutable=["batch_stats"])
            return out, {"params": d_params, **upd}

        draw = functools.partial(global_draw, axis_name=axis_name)  # the global batch's draws, sliced

        def critic_update(carry, i, real, labels, g_vars, rng, lazy_r1, level):
            d_vars, d_opt_state = carry
            k_z, k_gp = jax.random.split(jax.random.fold_in(rng, i))  # a fresh key for every critic update
            z = draw(jax.random.normal, k_z, (real.shape[0], m.latent_dim))
            fake = lax.stop_gradient(g_apply(g_vars["params"], g_vars, z, labels, jax.random.fold_in(k_z, 1),
                                             level)[0])

            def loss_fn(dp):
                real_logits, new_vars = d_apply(dp, d_vars, real, labels)
                fake_logits, new_vars = d_apply(dp, new_vars, fake, labels)
                loss = jnp.mean(discriminator_loss(real_logits, fake_logits, kind=m.loss))
                metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}
                # the penalties read D without advancing its statistics
                critic = lambda v: d_apply(dp, new_vars, v, labels, update_stats=False)[0]
                if m.gradient_penalty:
                    u = draw(jax.random.uniform, k_gp, (real.shape[0],))
                    gp = jnp.mean(gradient_penalty(critic, real, fake, u))
                    loss, metrics["gradient_penalty"] = loss + m.gradient_penalty * gp, gp
                if m.r1_gamma:  # computed on its steps only (a cond: the other steps do not pay for it)
                    r1 = lax.cond(lazy_r1, lambda: jnp.mean(gradient_norm_squared(critic, real)), lambda: 0.0)
                    loss, metrics["r1"] = loss + 0.5 * m.r1_gamma * m.r1_every * r1, r1
                if m.r2_gamma:
                    r2 = jnp.mean(gradient_norm_squared(critic, fake))
                    loss, metrics["r2"] = loss + 0.5 * m.r2_gamma * r2, r2
                return loss, (new_vars, metrics)

            grads, (new_vars, metrics) = jax.grad(loss_fn, has_aux=True)(d_vars["params"])
            if axis_name is not None:
                grads, metrics = lax.pmean((grads, metrics), axis_name)
            updates, d_opt_state = d_opt.update(grads, d_opt_state, d_vars["params"])
            new_vars["params"] = optax.apply_updates(d_vars["params"], updates)
            metrics["d_grad_norm"] = optax.tree.norm(grads)
            return (new_vars, d_opt_state), metrics

        def step(state: TrainState, batch: dict, rng: jax.Array):
            rng = step_rng(rng, state.step, None)  # shared by the devices: see draw
            real = to_model(batch[data_key])
            level = None
            if progressive:  # the real images at the resolution the generator has grown to
                level = progressive_level(state.step, m.progressive_steps, num_resolutions)
                real = blur_to_level(real, level, num_resolutions)
            labels = jnp.asarray(batch["label"], jnp.int32) if num_classes else None
            g_vars = state.params["generator"]
            lazy_r1 = state.step % m.r1_every == 0
            (d_vars, d_opt_state), d_metrics = lax.scan(
                lambda carry, i: critic_update(carry, i, real, labels, g_vars, rng, lazy_r1, level),
                (state.params["discriminator"], state.opt_state["discriminator"]), jnp.arange(m.n_critic), unroll=True)
            d_metrics = jax.tree.map(lambda v: v[-1], d_metrics)

            k_g = jax.random.fold_in(rng, m.n_critic)
            z = draw(jax.random.normal, k_g, (real.shape[0], m.latent_dim))

            def g_loss_fn(gp):
                fake, new_vars = g_apply(gp, g_vars, z, labels, jax.random.fold_in(k_g, 1), level)
                logits, _ = d_apply(d_vars["params"], d_vars, fake, labels, update_stats=False)
                loss = jnp.mean(generator_loss(logits, kind=m.loss))
                return loss, (new_vars, loss)

            g_grads, (new_g, g_loss) = jax.grad(g_loss_fn, has_aux=True)(g_vars["params"])
            if axis_name is not None:
                g_grads, g_loss = lax.pmean((g_grads, g_loss), axis_name)
            updates, g_opt_state = g_opt.update(g_grads, state.opt_state["generator"], g_vars["params"])
            new_g["params"] = optax.apply_updates(g_vars["params"], updates)
            ema = state.ema_params
            if ema_decay:
                ema = {"generator": {"params": optax.incremental_update(
                    new_g["params"], ema["generator"]["params"], step_size=1.0 - ema_decay)}}
            params = {"generator": new_g, "discriminator": d_vars}
            metrics = dict(d_metrics, g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads),
                           param_norm=optax.tree.norm({p: params[p]["params"] for p in params}))
            if progressive:
                metrics["level"] = level
            return state.replace(step=state.step + 1, params=params, ema_params=ema,
                                 opt_state={"generator": g_opt_state, "discriminator": d_opt_state}), metrics

        return step

    # ------------------------------------------------------------------ capabilities (eval params: the EMA's)

    def generate(params, z, labels, rng=None, truncation=1.0):
        """The generator in evaluation mode; the style generator draws its noise from ``rng`` (``None``: none)
        and truncates its styles by ``truncation``, the others their code: ``z' = truncation * z`` (the same
        formula about the code's mean, 0)."""
        if not style:
            return generator.apply(params["generator"], truncation * z, labels, train=False)
        return generator.apply(params["generator"], z, labels, train=False, rng=rng, truncation=truncation)

    def draw(params, rng, labels, n, truncation):
        """``n`` generator outputs in model units from fresh codes (and noise)."""
        k_z, k_noise = jax.random.split(rng)
        return generate(params, jax.random.normal(k_z, (n, m.latent_dim)), labels, k_noise, truncation)

    @functools.partial(jax.jit, static_argnames=("n",))
    def _sample(params, rng, labels, n, truncation):
        return from_model(draw(params, rng, labels, n, truncation))

    @functools.partial(jax.jit, static_argnames=("n",))
    def _propose(params, rng, n, truncation):
        """``n`` draws and the discriminator's logit of each (on the generator's output, what it was trained on)."""
        x = draw(params, rng, None, n, truncation)
        logits, _ = discriminator.apply(params["discriminator"], x, None, update_stats=False, mutable=["batch_stats"])
        return from_model(x), logits

    def sample(params, rng, n, *, labels=None, truncation: float = 1.0, rejection: float | None = None):
        """``n`` draws in the data's format (integer levels for images); ``labels`` for a conditional GAN
        (default: one column per class; with cluster labels, ``data.clusters``, drawn from the clusters'
        shares of the training split by :func:`gen_jax.families.build_family`, so that the draws are from
        p(x)); ``truncation`` < 1 trades variety for typicality (the style generator's ``w`` towards its running
        mean, the others' ``z`` towards 0), ``truncation`` > 1 typicality for variety (away from them).
        ``rejection=gamma`` keeps the draws by discriminator rejection sampling with Azadi et al.'s shift ``gamma``
        (0: exact given the logits; :func:`gen_jax.sampling.discriminator_rejection_sample`), for an
        unconditional GAN whose discriminator judges single examples."""
        if not truncation >= 0.0:
            raise ValueError(f"truncation must be >= 0, got {truncation}")
        if rejection is None:
            return _sample(params, rng, image_labels(num_classes, n, labels), n=n, truncation=float(truncation))
        if num_classes or m.pack != 1 or m.minibatch != "none":
            raise ValueError("rejection sampling needs an unconditional GAN whose discriminator judges single "
                             f"examples (got conditional={bool(num_classes)}, pack={m.pack}, "
                             f"minibatch={m.minibatch!r})")
        propose = lambda key, size: _propose(params, key, size, float(truncation))
        return discriminator_rejection_sample(propose, rng, n, gamma=float(rejection), chunk=max(n, 1000))[0]

    def to_unit(x):  # the data's scale for decode / impute: images in [0, 1], vectors as they are
        return (x + 1) / 2 if data_key == "image" else from_model(x)

    def from_code(params, code):
        """The noise-free generator's output (model units) for a code of the inversion space: ``z``, or
        ``w - w_avg`` with ``model.invert_space="w"``."""
        if m.invert_space == "w":
            v = params["generator"]
            return generator.apply(v, v["batch_stats"]["w_avg"] + code, method=StyleGenerator.synthesize)
        return generate(params, code, None)

    @jax.jit
    def decode_jit(params, z):
        return to_unit(from_code(params, z))

    @jax.jit
    def invert_jit(params, target, mask, rng):
        """Inversion from ``model.invert_restarts`` prior draws per example (the problem is not convex: one start
        often stalls), keeping each example's best fit of the observed entries."""
        r, b = m.invert_restarts, target.shape[0]
        tile = lambda v: jnp.tile(v, (r,) + (1,) * (v.ndim - 1))
        z0 = jax.random.normal(rng, (r * b, m.latent_dim))
        if m.invert_space == "w":  # the variable is w - w_avg (the prior term pulls towards the average style)
            v = params["generator"]
            z0 = generator.apply(v, z0, method=StyleGenerator.styles) - v["batch_stats"]["w_avg"]
        g = lambda code: from_code(params, code)
        z = invert_generator(g, tile(target), z0, mask=tile(mask),
                             steps=m.invert_steps, learning_rate=m.invert_learning_rate,
                             prior_weight=m.invert_prior_weight)
        err = jnp.sum(((g(z) - tile(target)) * tile(mask)).reshape(r, b, -1) ** 2, axis=-1)
        return z.reshape(r, b, -1)[jnp.argmin(err, axis=0), jnp.arange(b)]

    def decode(params, z, rng=None):
        """The generator's output for codes ``z`` ``(B, latent_dim)`` (``model.invert_space="w"``: ``w - w_avg``
        ``(B, w_dim)``), without noise: images in [0, 1] (continuous), vectors."""
        return decode_jit(params, jnp.asarray(z, jnp.float32))

    def encode(params, batch, rng):
        """GAN inversion: the code whose image is closest to each example (``model.invert_steps`` Adam steps
        from each of ``model.invert_restarts`` prior draws, the best kept)."""
        target = to_model(batch[data_key])
        return invert_jit(params, target, jnp.ones_like(target), rng)

    def impute(params, x, mask, rng):
        """Images in [0, 1], mask 1 = observed: invert on the observed pixels, the generator's image fills the
        rest."""
        x, mask = jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32)
        z = invert_jit(params, 2 * x - 1, mask, rng)
        return np.asarray(mask * x + (1 - mask) * decode_jit(params, z))

    picture = _toy_picture(data, m, discriminator, to_model, sample) if data_key == "x" else None
    encode_ok = not num_classes  # inversion is defined for unconditional generators only
    return Family(NAME, {"generator": generator, "discriminator": discriminator},
                  Trainer(init_state=init_state, make_step=make_step), sample=sample,
                  encode=encode if encode_ok else None, decode=decode if encode_ok else None,
                  impute=impute if encode_ok and data_key == "image" else None, picture=picture,
                  num_levels=k if data_key == "image" else 0)


def _toy_picture(data, m, discriminator, to_model, sample):
    """Data, ``sigmoid(D(x))`` over the plane (where D judges single points) and samples, side by side."""
    points = np.asarray(data.x[:5000])
    bounds = data.toy.bounds if data.toy is not None else (*np.percentile(points[:, 0], [0, 100]),
                                                           *np.percentile(points[:, 1], [0, 100]))

    def log_d(p, v):  # batch norm (if any) normalises with the grid's own statistics: a picture only
        out = discriminator.apply(p["discriminator"], to_model(v), None, update_stats=False, mutable=["batch_stats"])
        return jax.nn.log_sigmoid(out[0])

    d_prob = jax.jit(log_d)

    def picture(params, rng, path_out, title):
        panels = []
        if m.pack == 1 and m.minibatch == "none":  # otherwise D judges batches: no per-point map
            lp, _ = density_grid(lambda v: np.asarray(d_prob(params, jnp.asarray(v, jnp.float32))), bounds,
                                 resolution=150)
            panels = [{"title": "sigmoid(D(x))", "log_density": lp}]
        save_2d_panels([{"title": "data", "points": points}, *panels,
                        {"title": "samples", "points": np.asarray(sample(params, rng, 5000)),
                         "color": "tab:orange"}], path_out, bounds=bounds, title=title)

    return picture
