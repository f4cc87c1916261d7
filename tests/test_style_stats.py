import torch

from facekit.synth.render import render
from facekit.synth.style import STYLES, apply_style
from facekit.synth.style_stats import STATS, coverage, image_stats, style_sample


def render_head(p) -> torch.Tensor:
    return render(p, 64, backend="procedural", framing="head")


def _smooth(n: int = 4, size: int = 48, blocks: bool = False) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = 0.3 + 0.4 * torch.sin(6 * x) * torch.cos(5 * y) ** 2
    if blocks:  # hard edges, which blur removes
        base = 0.25 + 0.5 * (((x * 8).floor() + (y * 8).floor()) % 2)
    return torch.stack([base, 0.8 * base, 0.6 * base]).expand(n, -1, -1, -1).clone()


def test_each_statistic_moves_with_its_cause():
    img = _smooth()
    s = image_stats(img)
    assert set(s) == set(STATS)
    assert torch.allclose(image_stats(img + 0.1)["brightness"], s["brightness"] + 0.1, atol=1e-4)
    assert bool((image_stats(0.5 + 0.5 * (img - 0.5))["contrast"] < s["contrast"]).all())
    edges = _smooth(blocks=True)
    blurred = apply_style(edges, torch.arange(4), STYLES["clean"].__class__("b", blur_sigma=1.5))
    assert bool((image_stats(blurred)["sharpness"] < 0.7 * image_stats(edges)["sharpness"]).all())
    noisy = (img + 0.05 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    est = image_stats(noisy)["noise"]
    lum_sigma = 0.05 * (0.299**2 + 0.587**2 + 0.114**2) ** 0.5  # independent noise per channel, seen in luminance
    assert bool((est > 0.8 * lum_sigma).all() and (est < 1.2 * lum_sigma).all())
    grey = img.mean(1, keepdim=True).expand_as(img)
    assert float(image_stats(grey)["saturation"].max()) == 0 and bool((s["saturation"] > 0.3).all())


def test_asymmetry_sees_side_light_and_not_a_mirror():
    from facekit.synth.params import FaceParams

    p = FaceParams.neutral(n=4)
    front = image_stats(render_head(p))["asymmetry"]
    side = image_stats(render_head(p.replace(light_azimuth=torch.full((4,), 80.0))))["asymmetry"]
    assert bool((side > front + 0.15).all()), (front, side)
    img = render_head(p.replace(light_azimuth=torch.full((4,), 60.0)))
    assert torch.allclose(image_stats(img.flip(-1))["asymmetry"], image_stats(img)["asymmetry"], atol=1e-5)


def test_coverage_flags_a_style_harsher_than_the_photos():
    photos = torch.cat([_smooth(4, blocks=True), 0.8 * _smooth(4, blocks=True) + 0.1])
    real = image_stats(photos)
    assert all(c["within"] for c in coverage(real, real).values())
    blurred = apply_style(photos, torch.arange(8), STYLES["clean"].__class__("b", blur_sigma=2.0))
    assert not coverage(image_stats(blurred), real)["sharpness"]["within"]


def test_target_style_renders_are_less_sharp_than_clean_but_not_featureless():
    clean = image_stats(style_sample("clean", 16, backend="procedural"))
    target = image_stats(style_sample("target", 16, backend="procedural"))
    assert 0.4 * float(clean["sharpness"].median()) < float(target["sharpness"].median()) < float(clean["sharpness"].median())
