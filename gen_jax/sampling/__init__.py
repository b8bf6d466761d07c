"""Sampling algorithms that are not models: latent walks, importance-sampled imputation, Langevin dynamics,
Metropolis-adjusted samplers and AIS, the replay buffer, diffusion samplers, discriminator rejection
sampling."""

from gen_jax.sampling.diffusion import (ddim_sample, ddim_solve, guided, inpaint, ode_sample, ode_solve, pf_ode_log_likelihood,
                                        reverse_sde_sample, time_grid)
from gen_jax.sampling.imputation import impute_by_importance_sampling
from gen_jax.sampling.langevin import annealed_langevin_sample, langevin_sample
from gen_jax.sampling.latent import apply_attribute, attribute_vector, invert_generator, lerp, slerp
from gen_jax.sampling.mcmc import (annealed_importance_sampling, geometric_betas, hmc_sample, log_mean_exp,
                                   mala_sample)
from gen_jax.sampling.rejection import acceptance_probability, discriminator_rejection_sample
from gen_jax.sampling.replay import replay_draw, replay_update
