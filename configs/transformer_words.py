"""Character-level causal Transformer on the English word list of Debian's ``wamerican`` (gen_jax.data.text:
one word per line, 83k train / 10k valid / 10k test words): 4 pre-norm blocks of width 128, 4 heads, exact NLL,
bits per character on the test words, samples at temperatures 0.5 / 1 / 1.5, early stopping on valid."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("transformer")
    c.data.name = "words"
    c.model.num_layers = 4
    c.model.dim = 128
    c.model.num_heads = 4
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.grad_clip_norm = 1.0
    c.train.steps = 6000
    c.train.batch_size = 128
    c.train.log_every = 500
    c.train.checkpoint_every = 2000
    c.train.sample_every = 5000
    c.train.num_sample_images = 24
    c.train.progress_bar = False
    c.eval.batch_size = 1000
    c.eval.select_every = 1000
    c.eval.select_split = "valid"
    c.eval.select_patience = 4
    if variant == "smoke":
        c.model.num_layers = 1
        c.model.dim = 16
        c.model.num_heads = 2
        smoke_train_settings(c, steps=6, batch_size=16)
        c.train.num_sample_images = 4
        c.eval.select_every = 3
        c.eval.select_num_examples = 100
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
