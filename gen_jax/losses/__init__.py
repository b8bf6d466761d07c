"""Standalone loss functions, one file per objective."""

from gen_jax.losses.adversarial import (ADVERSARIAL_LOSSES, discriminator_loss, generator_loss, gradient_norm_squared,
                                        gradient_penalty)
from gen_jax.losses.elbo import (elbo, gaussian_kl, log_normal_diag, make_importance_weighted_bound,
                                 make_iwae_loss, make_vae_loss)
from gen_jax.losses.nll import make_nll_loss, negative_log_likelihood
from gen_jax.losses.likelihoods import (LIKELIHOODS, bernoulli_log_likelihood,
                                        discretized_logistic_log_likelihood, gaussian_log_likelihood,
                                        observation_log_likelihood, observation_mean, observation_sample,
                                        params_per_dim)
from gen_jax.losses.score_matching import (denoising_score_matching, diffusion_variational_bound, exact_score_matching,
                                           make_diffusion_loss,
                                           sliced_score_matching)
from gen_jax.losses.contrastive_divergence import (contrastive_divergence, energy_from_logits, joint_energy_loss,
                                                   noise_contrastive_estimation)
