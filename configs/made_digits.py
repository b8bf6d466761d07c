"""MADE on scikit-learn's 8x8 digits, 17 grey levels as 17-way categorical conditionals."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("made")
    c.data.name = "digits"
    c.model.hidden = (256, 256)
    c.model.num_masks = 4
    c.optim.learning_rate = 1e-3
    c.train.steps = 5000
    c.train.batch_size = 64
    c.train.log_every = 250
    c.train.checkpoint_every = 2500
    c.train.sample_every = 5000
    c.train.progress_bar = False
    if variant == "smoke":
        c.model.hidden = (16,)
        c.model.num_masks = 2
        smoke_train_settings(c, steps=10)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
