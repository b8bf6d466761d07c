"""Evaluation: likelihoods and bits/dim, and the metrics every family reports (two-sample statistics, FD/KID
and precision/recall in a learned feature space, mode coverage, OOD detection, inpainting)."""

from gen_jax.eval.detection import auprc, auroc, classifier_anomaly_scores, detection_report, typicality_score
from gen_jax.eval.features import (FeatureClassifier, FeatureNetwork, load_feature_network, params_hash,
                                   sample_quality, train_feature_network)
from gen_jax.eval.frechet import frechet_distance, gaussian_statistics, kernel_distance
from gen_jax.eval.inpainting import MASKS, inpainting_score, make_mask, masked_errors
from gen_jax.eval.likelihood import evaluate_log_likelihood, per_example_log_likelihood
from gen_jax.eval.modes import classify_channels, kl_to_uniform, mode_coverage, mode_numbers, stacked_modes
from gen_jax.eval.precision_recall import knn_radii, precision_recall
from gen_jax.eval.two_sample import median_bandwidth, mmd_rbf, sliced_wasserstein, two_sample_report
