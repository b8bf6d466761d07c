"""Evaluation: likelihoods and bits/dim (sample-quality metrics come with the evaluation suite)."""

from gen_jax.eval.likelihood import evaluate_log_likelihood
