import pytest
import torch

from facekit.synth.params import (
    AU_ANTAGONISTS,
    AU_FACS,
    AU_NAMES,
    EMOTIONS,
    ID_DIM,
    FaceParams,
    au_index,
    au_propensity,
    emotion_aus,
    sample_aus,
    sample_identities,
    sample_params,
)

REQUIRED_AUS = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU12", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU43"]


def test_required_aus_have_facs_names():
    for au in REQUIRED_AUS:
        assert au in AU_NAMES and AU_FACS[au]
    assert AU_FACS["AU12"] == "Lip Corner Puller"
    assert AU_FACS["AU26"] == "Jaw Drop"


def test_samplers_are_seeded_and_reproducible():
    assert torch.equal(sample_identities(5, 3), sample_identities(5, 3))
    assert not torch.equal(sample_identities(5, 3), sample_identities(5, 4))
    a, b = sample_params(10, seed=1), sample_params(10, seed=1)
    for f in ("identity", "au", "age", "yaw", "seed"):
        assert torch.equal(getattr(a, f), getattr(b, f))


def test_sampled_item_does_not_depend_on_batch():
    whole = sample_params(20, seed=7)
    part = sample_params(seed=7, indices=[13, 4])
    assert torch.equal(part.age, whole.age[[13, 4]])
    assert torch.equal(part.identity, whole.identity[[13, 4]])


def test_emotion_prototypes():
    happy = emotion_aus("happiness", 1.0)
    assert happy[au_index("AU12")] == 1 and happy[au_index("AU6")] == 1
    assert emotion_aus("neutral").sum() == 0
    assert torch.allclose(emotion_aus("surprise", 0.5), 0.5 * emotion_aus("surprise", 1.0))
    assert set(EMOTIONS) >= {"neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt"}
    with pytest.raises(KeyError, match="valid emotions"):
        emotion_aus("joy")


def test_identity_predicts_au_base_rates():
    ids = sample_identities(400, 0)
    prop = au_propensity(ids, strength=2.0)
    au = torch.stack([sample_aus(seed=s, indices=torch.arange(400), propensity=prop) for s in range(30)])
    rate = (au > 0).float().mean(0)  # empirical per-identity rates
    corr = torch.corrcoef(torch.stack([rate.flatten(), prop.flatten()]))[0, 1]
    assert corr > 0.8
    flat = au_propensity(ids, strength=0.0)
    assert torch.allclose(flat, torch.full_like(flat, 0.25))


def test_random_aus_never_draw_an_antagonist_pair_and_keep_their_rates():
    au = sample_aus(20000, seed=3, p_active=0.3) > 0
    others = [au_index(a) for a in AU_NAMES if not any(a in pair for pair in AU_ANTAGONISTS)]
    assert abs(float(au[:, others].float().mean()) - 0.3) < 0.01
    for a, b in AU_ANTAGONISTS:
        assert not bool((au[:, au_index(a)] & au[:, au_index(b)]).any()), (a, b)
        rate = float(au[:, au_index(a)].float().mean())
        assert 0.2 < rate < 0.3, (a, rate)  # each loses only the draws it shared
    # no prototype combines an antagonist pair either
    for e in EMOTIONS:
        proto = emotion_aus(e) > 0
        assert not any(bool(proto[au_index(a)] & proto[au_index(b)]) for a, b in AU_ANTAGONISTS), e


@pytest.mark.parametrize(("field", "value", "match"), [
    ("age", 90.0, r"FaceParams.age has value 90 outside the valid range \[18, 80\]"),
    ("weight", 5.0, r"FaceParams.weight .* \[16, 40\]"),
    ("yaw", 60.0, r"FaceParams.yaw .* \[-45, 45\]"),
    ("glasses", 2.0, r"FaceParams.glasses"),
])
def test_out_of_range_names_field_and_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        FaceParams.neutral(n=2).replace(**{field: value})


def test_au_out_of_range_and_unknown_au():
    p = FaceParams.neutral(n=1)
    with pytest.raises(ValueError, match=r"AU12 intensity 1.5 outside the valid range \[0, 1\]"):
        p.with_au("AU12", 1.5)
    with pytest.raises(KeyError, match="valid AUs are"):
        p.with_au("AU99", 0.5)
    assert au_index("12") == au_index("AU12")


def test_wrong_shape_and_dtype_say_what_was_expected():
    p = FaceParams.neutral(n=3)
    with pytest.raises(ValueError, match=rf"FaceParams.identity has shape \(3, 5\); expected \(N, {ID_DIM}\)"):
        p.replace(identity=torch.zeros(3, 5))
    with pytest.raises(TypeError, match="must be a float tensor"):
        FaceParams(**{**p.__dict__, "age": torch.full((3,), 30, dtype=torch.int64)})
    with pytest.raises(ValueError, match="batch size 2; the other fields have 3"):
        FaceParams(**{**p.__dict__, "age": torch.full((2,), 30.0)})
    with pytest.raises(ValueError, match="NaN"):
        p.replace(age=float("nan"))
    with pytest.raises(TypeError, match="unknown FaceParams field 'smile'"):
        p.replace(smile=1.0)


def test_batch_helpers():
    p = sample_params(6, seed=0)
    assert len(p[2:4]) == 2 and len(p[0]) == 1 and len(FaceParams.cat([p, p])) == 12
    labels = p.labels()
    assert labels["AU12"].shape == (6,) and "id_face_width" in labels
