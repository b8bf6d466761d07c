"""gen_jax's Gaussian mixture against scikit-learn's on the same data, seed by seed:

``python experiments/gmm_against_sklearn.py --seeds 0,1,2``

Both fit a 10-component full-covariance mixture (``reg_covar`` 1e-6, one k-means(++)-seeded restart) to the
same uniformly dequantized draw of the 8x8 digits' training split; prints the training log-likelihood (nats per
image) and the test bits/dim of each (gen_jax's dequantization convention).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gen_jax.data import load_image_dataset
from gen_jax.models import latent

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (of both fits; the dequantization draw is seed 0).")
_K = flags.DEFINE_integer("components", 10, "Mixture components.")
_ITERS = flags.DEFINE_integer("em_iters", 100, "gen_jax's EM steps (scikit-learn stops at its own tolerance).")


def main(_):
    from sklearn.mixture import GaussianMixture

    train, test = load_image_dataset("digits", "train"), load_image_dataset("digits", "test")
    rng = np.random.default_rng(0)
    d, k = train.num_dims, train.num_levels

    def dequant(data):
        return ((data.image.reshape(len(data), -1) + rng.random((len(data), d))) / k).astype(np.float32)

    x_train, x_test = dequant(train), dequant(test)
    shift = d * math.log(k)

    def bpd(mean_log_density):
        return (-mean_log_density + shift) / d / math.log(2)

    for seed in map(int, _SEEDS.value):
        ref = GaussianMixture(_K.value, covariance_type="full", random_state=seed, reg_covar=1e-6).fit(x_train)
        params, _ = latent.fit_gmm(jax.random.key(seed), jnp.asarray(x_train), _K.value, num_iters=_ITERS.value)
        ours_train = float(latent.gmm_log_prob(params, jnp.asarray(x_train)).mean())
        ours_test = float(latent.gmm_log_prob(params, jnp.asarray(x_test)).mean())
        print(f"seed {seed}: scikit-learn train {ref.score(x_train):.2f} nats, test {bpd(ref.score(x_test)):.3f} "
              f"bits/dim | gen_jax train {ours_train:.2f} nats, test {bpd(ours_test):.3f} bits/dim", flush=True)


if __name__ == "__main__":
    app.run(main)
