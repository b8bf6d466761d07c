"""matplotlib's pyplot, imported on first use."""

import functools


@functools.cache
def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files, no display), imported on the first picture: importing it
    took 0.6-1.5 s of every process that imports ``gen_jax.train``, drawing or not (an evaluation, a command
    that fails on a bad flag, the second process of a job)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
