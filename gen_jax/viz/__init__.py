"""Pictures: sample grids, latent plots."""

from gen_jax.viz.images import image_grid, save_image_grid, save_latent_scatter
