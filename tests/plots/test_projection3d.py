"""3-D projections: the computation (shape, explained variance, seeded), the plotly figure and its static
view (what is drawn: traces, names, colours, hover data, camera), and the JSON file."""

from __future__ import annotations

import numpy as np
import plotly.io
import pytest
from mpl_toolkits.mplot3d import Axes3D
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from mame.classes import CLASS_NAMES
from mame.plots import PlotError, class_colors, draw_projection_3d, draw_projection_3d_static, project_features, save_plotly_json
from mame.plots.projection3d import CAMERA_EYE, camera_angles


def blobs(n_classes: int = 4, per_class: int = 40, dims: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, dims))
    labels = np.repeat(np.arange(n_classes), per_class)
    features = centres[labels] + rng.normal(0, 1, (labels.size, dims))
    files = np.array([f"img_{i:03d}.jpeg" for i in range(labels.size)])
    return features, labels, files


def test_pca_3d_has_three_axes_their_variance_shares_and_is_seeded():
    x, y, files = blobs()
    data = project_features(x, y, method="pca", dims=3, max_per_class=25, seed=3, files=files)
    assert data["coords"].shape == (4 * 25, 3)
    assert np.bincount(data["labels"]).tolist() == [25] * 4
    explained = data["explained_variance"]
    assert len(explained) == 3 and explained[0] >= explained[1] >= explained[2] > 0 and sum(explained) <= 1
    kept = StandardScaler().fit_transform(x[data["indices"]])
    assert np.allclose(explained, PCA(n_components=3).fit(kept).explained_variance_ratio_)
    assert data["files"] == [files[i] for i in data["indices"]]
    again = project_features(x, y, method="pca", dims=3, max_per_class=25, seed=3, files=files)
    assert np.array_equal(again["coords"], data["coords"]) and np.array_equal(again["indices"], data["indices"])
    other = project_features(x, y, method="pca", dims=3, max_per_class=25, seed=4)
    assert not np.array_equal(other["indices"], data["indices"]) and other["files"] is None


def test_3d_projection_rejects_bad_input():
    x, y, files = blobs()
    with pytest.raises(PlotError, match="dims"):
        project_features(x, y, dims=4)
    with pytest.raises(PlotError, match="d >= 3"):
        project_features(x[:, :2], y, dims=3)
    with pytest.raises(PlotError, match="files"):
        project_features(x, y, dims=3, files=files[:5])
    with pytest.raises(PlotError, match=r"\(n, 3\)"):
        draw_projection_3d(project_features(x, y, dims=2), class_names=CLASS_NAMES)


@pytest.fixture(scope="module")
def data():
    x, y, files = blobs(n_classes=len(CLASS_NAMES), per_class=6)
    return project_features(x, y, method="pca", dims=3, max_per_class=None, files=files)


def test_interactive_figure_has_a_named_trace_per_class_with_hover_files(data):
    fig = draw_projection_3d(data, class_names=CLASS_NAMES)
    assert [t.name for t in fig.data] == list(CLASS_NAMES)  # legend entries: click to hide a class
    colours = class_colors(len(CLASS_NAMES))
    for index, trace in enumerate(fig.data):
        rows = np.flatnonzero(data["labels"] == index)
        assert trace.type == "scatter3d" and len(trace.x) == rows.size
        assert np.allclose(np.column_stack([trace.x, trace.y, trace.z]), data["coords"][rows], atol=1e-4)
        assert list(trace.customdata) == [data["files"][i] for i in rows]
        assert trace.marker.color == "rgb({},{},{})".format(*(round(255 * c) for c in colours[index][:3]))
        assert "customdata" in trace.hovertemplate and "fullData.name" in trace.hovertemplate
    assert {t.legend or "legend" for t in fig.data} == {"legend", "legend2"}  # 29 entries in two columns
    scene = fig.layout.scene
    assert scene.xaxis.title.text.startswith("PCA 1 (") and "% of variance" in scene.zaxis.title.text
    assert (scene.camera.eye.x, scene.camera.eye.y, scene.camera.eye.z) == CAMERA_EYE


def test_static_view_draws_the_same_points_from_the_same_camera(data):
    fig = draw_projection_3d_static(data, class_names=CLASS_NAMES)
    ax = fig.axes[0]
    assert isinstance(ax, Axes3D)
    elev, azim = camera_angles(CAMERA_EYE)
    assert (ax.elev, ax.azim) == pytest.approx((elev, azim))
    assert sum(len(c.get_offsets()) for c in ax.collections) == data["coords"].shape[0]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(CLASS_NAMES)
    assert ax.get_xlabel() == fig.axes[0].get_xlabel() and ax.get_zlabel().startswith("PCA 3 (")


def test_camera_angles_of_plotly_eyes():
    assert camera_angles((1, 1, 0)) == pytest.approx((0, 45))
    assert camera_angles((0, -2, 2)) == pytest.approx((45, -90))


def test_plotly_json_round_trips_and_is_safe_inside_a_script(data, tmp_path):
    fig = draw_projection_3d(dict(data, files=["</script><b>x.jpeg"] + data["files"][1:]), class_names=CLASS_NAMES)
    path = save_plotly_json(fig, tmp_path / "fig.json")
    text = path.read_text(encoding="utf-8")
    assert "</" not in text
    back = plotly.io.read_json(path)
    assert back.data[0].customdata[0] == "</script><b>x.jpeg" and len(back.data) == len(CLASS_NAMES)
    with pytest.raises(PlotError, match=".json"):
        save_plotly_json(fig, tmp_path / "fig.html")
