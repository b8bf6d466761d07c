"""Datasets (2-D toys, offline images) and the batch iterator; conventions in :mod:`.conventions`."""

from gen_jax.data.conventions import (bits_per_dim, dequantized_nll, requantize, to_unit_interval,
                                     uniform_dequantize)
from gen_jax.data.images import (IMAGE_DATASETS, DatasetNotFoundError, ImageDataset, default_data_dir,
                                 load_image_dataset)
from gen_jax.data.iterator import BatchIterator
from gen_jax.data.toy2d import TOY_DATASETS, Toy2D, get_toy, world_land_raster
from gen_jax.data.vectors import TOY_SPLIT_SEEDS, VectorDataset, load_toy_dataset
from gen_jax.data.text import TEXT_DATASETS, CharVocabulary, TextDataset, load_text_dataset
