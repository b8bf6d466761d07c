"""Building blocks shared by the model families."""

from gen_jax.nn.conv import (Col2ImConvTranspose, ConvDecoder, ConvEncoder, PatchConv, SpaceToDepthConv,
                             conv_transpose_padding)
from gen_jax.nn.embeddings import sinusoidal_embedding
from gen_jax.nn.mlp import MLP
from gen_jax.nn.unet import UNet
