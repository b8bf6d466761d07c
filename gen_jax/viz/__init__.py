"""Pictures: sample grids, latent plots, 2-D densities."""

from gen_jax.viz.density2d import density_grid, save_2d_panels, save_density_picture
from gen_jax.viz.images import image_grid, save_image_grid, save_latent_scatter
from gen_jax.viz.text import save_text_columns
