import pytest

from facekit.widgets import FaceExplorer


def test_slider_value_rerenders_the_face():
    ex = FaceExplorer(factors=["AU12", "AU43", "age", "yaw"], size=32)
    before = ex.image.value
    ex.sliders["AU12"].value = 1.0
    assert ex.image.value != before
    assert "AU12 Lip Corner Puller" in ex.caption.value
    smile = ex.image.value
    ex.sliders["age"].value = 75.0
    assert ex.image.value != smile
    assert float(ex.params().age[0]) == 75.0


def test_person_changes_identity():
    ex = FaceExplorer(factors=["AU12"], size=32)
    before = ex.image.value
    ex.person.value = 7
    assert ex.image.value != before


def test_widget_classes_for_the_browser_tests():
    ex = FaceExplorer(factors=["AU12"], size=32)
    assert "facekit-face" in ex.image._dom_classes
    assert "facekit-slider" in ex.sliders["AU12"]._dom_classes
    assert "facekit-explorer" in ex.widget._dom_classes


def test_unknown_factor_lists_valid_ones():
    with pytest.raises(ValueError, match="valid are"):
        FaceExplorer(factors=["smile"])
