"""Gated PixelCNN on the fixed binarized MNIST: a 7x7 first layer, then 3x3 gated layers dilated 1, 2, 4, 8
in turn, Bernoulli pixels, selection on the validation split.

Sized for the issue's budget of 2 hours on 2 CPU cores: 24 maps x 10 layers, batch 32, 25k steps (~16
epochs) at ~4 steps/s. The dilations cost nothing per step and widen what each pixel sees from ~12 rows
above to the whole image; after 1500 steps they were worth 5.5 nats of validation NLL (BENCHMARKS.md).
With more compute a wider, longer run (e.g. ``--config.model.channels=64
--config.train.batch_size=64 --config.train.steps=100000``, not run here) is the next thing to try."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("pixelcnn")
    c.data.name = "binarized_mnist"
    c.model.channels = 24
    c.model.num_layers = 10
    c.model.dilations = (1, 2, 4, 8)
    c.optim.learning_rate = 2e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 500
    c.optim.grad_clip_norm = 100.0
    c.train.steps = 25_000
    c.train.batch_size = 32
    c.train.log_every = 200
    c.train.checkpoint_every = 2000
    c.train.sample_every = 25_000
    c.train.num_sample_images = 16
    c.train.progress_bar = False
    c.eval.batch_size = 500
    c.eval.select_every = 2000
    c.eval.select_split = "valid"
    c.eval.select_num_examples = 2000
    if variant == "smoke":
        c.model.channels = 8
        c.model.num_layers = 2
        c.optim.warmup_steps = 1
        smoke_train_settings(c, steps=4, batch_size=8)
        c.eval.num_examples = 50
        c.eval.select_every = 2
        c.eval.select_num_examples = 50
        c.train.num_sample_images = 2
        c.train.sample_every = 0  # the final picture only: each is 784 sequential network passes (4 s in tests)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
