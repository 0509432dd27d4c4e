"""The deck's interactive 3-D projections: plotly JSON + a static PNG of the same view per features run
and method, and the two scripts the deck embeds once (plotly.js from the installed ``plotly`` package,
and ``report/figures3d.js``, which draws each figure when its slide is shown, or shows the static PNG
instead when the address carries ``?static-figures`` (the PDF print) or the browser has no WebGL).

Both scripts are referenced by path from the deck source; ``--embed-resources`` inlines them into the one
self-contained HTML file, so the deck loads nothing from the network.
"""

from __future__ import annotations

import os
from pathlib import Path

from mame import config, plots, results


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed ``plotly`` package (no CDN, no npm)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: plotly.min.js missing from the plotly package; reinstall it (`make setup`)")
    return path


def loader_js_path() -> Path:
    """The deck's script that draws the 3-D figures (``report/figures3d.js``)."""
    return config.REPORT_DIR / "figures3d.js"


def scripts(start: Path) -> list[str]:
    """The scripts a deck with 3-D figures includes once (plotly.js, then the loader), as paths relative to
    ``start`` (the deck source's folder)."""
    return [Path(os.path.relpath(p, start)).as_posix() for p in (plotly_js_path(), loader_js_path())]


def projection_3d_figures(entry, out: Path, methods, fresh, load_features, per_class: int) -> dict[str, Path]:
    """``projection3d_<method>`` (plotly JSON) and ``projection3d_<method>_static`` (PNG) of a features run,
    drawn unless both are ``fresh``; ``load_features(paths)`` returns features, labels and image files."""
    arrays = [entry.path / entry.metrics["artifacts"][k] for k in ("features_train", "features_val")
              if k in entry.metrics["artifacts"]]
    if not arrays or not methods:
        return {}
    found = {}
    for method in methods:
        live, still = out / f"projection3d_{method}-{per_class}.json", out / f"projection3d_{method}-{per_class}.png"
        if not (fresh(live) and fresh(still)):
            x, y, files = load_features(arrays)
            data = plots.project_features(x, y, method=method, max_per_class=per_class, seed=0, dims=3, files=files)
            names = results.class_names(entry.metrics)
            plots.save_plotly_json(plots.draw_projection_3d(data, class_names=names), live)
            plots.save_figure(plots.draw_projection_3d_static(data, class_names=names), still)
        found[f"projection3d_{method}"] = live
        found[f"projection3d_{method}_static"] = still
    return found
