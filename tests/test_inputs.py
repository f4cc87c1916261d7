"""The one image validator (facekit.models.inputs.check_images) and the models that check through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facekit.models.inputs import check_images, model_input


def test_single_images_and_uint8_only_where_asked():
    one = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match=r"images have shape \(3, 8, 8\).*for one image use images\[None\]"):
        check_images(one)
    assert check_images(one, single=True).shape == (1, 3, 8, 8)
    u8 = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    with pytest.raises(ValueError, match="dtype torch.uint8; pass floats in \\[0, 1\\] \\(divide uint8 images by 255\\)"):
        check_images(u8)
    assert float(check_images(u8, uint8=True).max()) == 1.0
    with pytest.raises(ValueError, match=r"dtype torch.int64; pass floats in \[0, 1\] or uint8 in 0..255"):
        check_images(u8.long(), uint8=True)


def test_messages_name_the_field_and_the_values():
    with pytest.raises(ValueError, match=r"^b values span \[nan, nan\]; pass floats in \[0, 1\]$"):
        check_images(torch.tensor([0.0, float("nan")]).reshape(1, 1, 1, 2), name="b")
    with pytest.raises(ValueError, match=r"queries have shape \(2, 2, 4, 4\).*or one image 3 x H x W"):
        check_images(torch.rand(2, 2, 4, 4), name="queries", single=True)
    assert check_images(np.zeros((1, 1, 4, 4), np.float32)).shape == (1, 3, 4, 4)  # grey, from numpy


def test_model_input_checks_before_resizing():
    assert model_input(torch.rand(3, 20, 20), 16).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="divide uint8 images by 255"):  # it was clamped to a white image
        model_input(torch.full((1, 3, 20, 20), 128, dtype=torch.uint8), 16)
    with pytest.raises(ValueError, match=r"values span \[2, 2\]"):
        model_input(torch.full((1, 3, 20, 20), 2.0), 16)
