"""The family interface: what the engine needs from a family (the training half) and what a researcher may ask
of a trained one (the capability half).

A family module (``gen_jax/families/<name>.py``) has ``config_defaults()`` (its own config sections: the
``model`` block, and ``loss``/``eval``/``evals`` keys of its own) and ``build(config, data) -> Family``.

**Training half** (:class:`Trainer`): the family creates its train state from a key and an example batch (it owns
its optimizer, or one per player) and its per-device step ``step(state, batch, rng) -> (state, metrics)``; a
family fitted in closed form or by EM gives ``fit`` instead. :func:`loss_trainer` keeps the
one-loss-one-optimizer case one line long.

**Capability half**, each optional and declared (``Family.capabilities``):

* ``sample(params, rng, n, *, labels=None, **options)``: real draws in the data's own format (integer levels
  for images, points for vectors, strings for text).
* ``log_prob``: a :class:`LogProb`, whose ``kind`` says what the number is (``exact``, ``lower_bound``,
  ``unnormalized``) and whose options are the estimator's (``num_samples`` of an importance-weighted bound).
* ``encode(params, batch, rng) -> z`` / ``decode(params, z, rng) -> data`` where a latent space exists.
* ``impute(params, x, mask, rng)``: images as intensities in [0, 1], mask 1 = observed.
* ``anomaly_score(params, batch, rng)``: higher = more anomalous; by default the negative log-likelihood.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import optax

from gen_jax.train.state import TrainState, create_train_state
from gen_jax.train.step import make_train_step

LOG_PROB_KINDS = ("exact", "lower_bound", "estimate", "unnormalized")
CAPABILITIES = ("sample", "log_prob", "encode", "decode", "impute", "anomaly_score")


@dataclasses.dataclass(frozen=True, eq=False)
class LogProb:
    """A per-example log-density ``fn(params, batch, rng, **options) -> (B,)`` and what it is.

    Attributes:
      fn: the function; ``options`` are its estimator's keyword arguments.
      kind: ``exact`` (the model's log-likelihood of the data, up to float error), ``lower_bound`` (an ELBO,
        an importance-weighted bound, a dequantization bound), ``estimate`` (a stochastic estimate with a
        normaliser estimated by sampling, such as an EBM's AIS: see its family for the direction of its bias)
        or ``unnormalized`` (an energy's ``-E(x)``: comparable between inputs of one model only).
      options: the estimator's options with their defaults (``{"num_samples": 1}``); others are an error.
      estimator: names the estimate for given options (``"elbo"``, ``"iwae100"``); the metrics' qualifier.
    """

    fn: Callable
    kind: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    estimator: Callable[..., str] = lambda **_: "exact"
    _jitted: dict = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.kind not in LOG_PROB_KINDS:
            raise ValueError(f"log_prob kind must be one of {LOG_PROB_KINDS}, got {self.kind!r}")

    def resolve(self, **options) -> dict:
        """The options with defaults filled in; an unknown option is an error naming the known ones."""
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"log_prob ({self.kind}) takes no option {sorted(unknown)}; "
                             f"its options: {dict(self.options) or 'none'}")
        return {**self.options, **options}

    def name(self, **options) -> str:
        return self.estimator(**self.resolve(**options))

    def function(self, **options) -> Callable:
        """``(params, batch, rng) -> (B,)`` for these options, jitted once and cached: repeated evaluations
        (model selection every few thousand steps) compile it once."""
        resolved = self.resolve(**options)
        key = tuple(sorted(resolved.items()))
        if key not in self._jitted:
            self._jitted[key] = jax.jit(lambda params, batch, rng: self.fn(params, batch, rng, **resolved))
        return self._jitted[key]

    def __call__(self, params, batch, rng, **options):
        return self.function(**options)(params, batch, rng)


@dataclasses.dataclass(frozen=True)
class Trainer:
    """The training half of a family.

    Attributes:
      init_state: ``(rng, example_batch) -> TrainState``, the fresh state (parameters of every player, their
        optimizer states, ``aux`` state beyond parameters).
      make_step: ``axis_name -> step(state, batch, rng) -> (state, metrics)``: the per-device step. With
        ``axis_name`` set it must average gradients with ``lax.pmean`` over it and leave ``state.aux`` the same on
        every device (see :class:`gen_jax.train.state.TrainState`). ``None`` for a fitted family.
      fit: ``(state, train_arrays, rng) -> (state, metrics)`` for a family fitted once (closed form, EM) instead
        of by steps; the loop calls it once and checkpoints the result as step 1.
    """

    init_state: Callable[[jax.Array, dict], TrainState]
    make_step: Callable[[str | None], Callable] | None = None
    fit: Callable | None = None

    def __post_init__(self):
        if (self.make_step is None) == (self.fit is None):
            raise ValueError("a Trainer has exactly one of make_step (trained by steps) and fit (fitted once)")


def loss_trainer(init_params: Callable[[jax.Array, dict], Any], loss_fn: Callable,
                 optimizer: optax.GradientTransformation, *, ema_decay: float | None = None) -> Trainer:
    """The one-loss-one-optimizer family: ``loss_fn(params, batch, rng) -> (loss, metrics)`` minimised by
    ``optimizer``, with an EMA of the parameters when ``ema_decay`` is set."""

    def init_state(rng, batch):
        return create_train_state(init_params(rng, batch), optimizer, ema=bool(ema_decay))

    return Trainer(init_state=init_state,
                   make_step=lambda axis_name: make_train_step(loss_fn, optimizer, ema_decay=ema_decay or None,
                                                               axis_name=axis_name))


@dataclasses.dataclass(frozen=True)
class Family:
    """A built family: its model, how it trains, and what it can do once trained (``None`` = cannot).

    ``picture(params, rng, path, title)`` draws the progress picture where a sample grid does not fit (2-D
    densities, text columns); ``num_levels`` is the image data's level count (0 for other data)."""

    name: str
    model: Any
    trainer: Trainer
    sample: Callable | None = None
    log_prob: LogProb | None = None
    encode: Callable | None = None
    decode: Callable | None = None
    impute: Callable | None = None
    anomaly_score_fn: Callable | None = None
    picture: Callable | None = None
    num_levels: int = 0

    @property
    def capabilities(self) -> tuple[str, ...]:
        have = {"sample": self.sample, "log_prob": self.log_prob, "encode": self.encode, "decode": self.decode,
                "impute": self.impute, "anomaly_score": self.anomaly_score_fn or self.log_prob}
        return tuple(c for c in CAPABILITIES if have[c] is not None)

    def require(self, capability: str):
        """The capability, or an error naming the family and what it can do."""
        if capability not in self.capabilities:
            raise ValueError(f"family {self.name!r} has no {capability}; it has {list(self.capabilities)}")
        return self.anomaly_score if capability == "anomaly_score" else getattr(self, capability)

    def anomaly_score(self, params, batch, rng, **options):
        """Higher = more anomalous: the family's own score, else ``-log p`` (with the log-prob's options)."""
        if self.anomaly_score_fn is not None:
            return self.anomaly_score_fn(params, batch, rng, **options)
        if self.log_prob is None:
            raise ValueError(f"family {self.name!r} has neither an anomaly score nor a log-likelihood")
        return -self.log_prob(params, batch, rng, **options)
