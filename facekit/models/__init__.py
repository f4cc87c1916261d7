"""Building blocks shared by the methods: encoders, contrastive loss, augmentations."""

from facekit.models.contrastive import augment, supcon_loss
from facekit.models.encoders import ConvEncoder, SpatialEncoder, n_parameters

__all__ = ["ConvEncoder", "SpatialEncoder", "augment", "n_parameters", "supcon_loss"]
