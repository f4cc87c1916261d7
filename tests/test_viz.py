"""The one training-history figure (facekit.viz.history_figure) and the five methods' uses of it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from facekit.viz import history_figure, history_lines


def _log(*keys: str, n: int = 4) -> list[dict[str, float]]:
    return [{"step": 10 * i, **{k: 1.0 / (i + 1 + j) for j, k in enumerate(keys)}} for i in range(n)]


def test_one_panel_carries_the_title_labels_and_one_line_per_logged_key():
    fig = history_figure({"loss": history_lines(_log("a", "b"), {"a": "part a", "b": "part b", "c": "never logged"})},
                         "A run")
    (ax,) = fig.axes
    assert ax.get_title() == "A run" and ax.get_xlabel() == "training step" and ax.get_ylabel() == "loss (log scale)"
    assert [line.get_label() for line in ax.lines] == ["part a", "part b"] and ax.get_yscale() == "log"
    assert list(ax.lines[0].get_xdata()) == [0, 10, 20, 30]
    plt.close(fig)


def test_panels_have_their_titles_labels_and_colours_kept_by_label():
    late = [{"step": 0}, {"step": 5, "x": 2.0}]  # a key logged from some step on draws from there
    fig = history_figure({"first": history_lines(_log("x"), ["x"]), "second": history_lines(late, ["x"])}, "Stages",
                         ylabel=["MSE", "cosine"], log=False, colours={"x": "C3"})
    assert fig.texts[0].get_text() == "Stages"
    assert [ax.get_title() for ax in fig.axes] == ["first", "second"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["MSE", "cosine"]
    assert list(fig.axes[1].lines[0].get_xdata()) == [5]
    assert fig.axes[0].lines[0].get_color() == fig.axes[1].lines[0].get_color() == "C3"
    with pytest.raises(ValueError, match="ylabel has 1 labels for 2 panels"):
        history_figure({"a": [], "b": []}, "t", ylabel=["only one"])
    plt.close("all")


def test_every_method_draws_its_history_through_it():
    from facekit.methods.comface import viz as cviz
    from facekit.methods.fmae_iat import viz as fviz
    from facekit.methods.gencon import viz as gviz
    from facekit.methods.plugen import viz as pviz
    from facekit.methods.synfer import viz as sviz

    figs = [cviz.history_figure(_log("inter", "intra")), fviz.history_figure(_log("loss"), ["loss"], "MAE"),
            gviz.history_figure({"G": _log("l1", "mse"), "E": _log("ce")}),
            pviz.history_figure({"ae": _log("mse"), "plugen4faces": _log("identity"), "plugen": _log("identity")}),
            sviz.loss_curve(_log("loss"), "SynFER")]
    for fig in figs:
        assert fig.axes and all(ax.get_xlabel() == "training step" and ax.get_ylabel() and ax.lines for ax in fig.axes)
        assert fig.axes[0].get_title() or fig.texts
    plt.close("all")
