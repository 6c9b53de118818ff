"""Every figure of the study: functions that take plain data, return a matplotlib Figure and (given `path`) save a PNG.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend): nothing is
shown, nothing leaks between calls; the notebooks display the saved PNG. The statistical figures (recalls
with 95 % intervals: per class, comparison, ablation, quality path) are drawn by seaborn's axes-level
functions on those axes. Saving never closes a figure.
Every figure that shows images or results states its image coverage (e.g. `Dataset.coverage_note()`).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.colors
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..data.dataset import Dataset
from ..metrics import rank_of_best_relevant, relevance_t2i
from ..retrieval import top_k
from .audit_columns import AUDIT_COUNT_COLUMNS, AUDIT_SCORE_COLUMN
from .reference import zero_shot_references

DPI = 120
HIT_COLOUR = "#1a9850"
MISS_COLOUR = "#d73027"
TRUTH_COLOUR = "#4575b4"
QUOTED_COLOUR = "#bdbdbd"
NOTE_COLOUR = "#555555"
PROJECTIONS = ("tsne", "pca")
_THUMBNAIL_PX = 300


# --------------------------------------------------------------------------------------------- helpers
def save_figure(fig: Figure, path: Path | str | None) -> Figure:
    """Save `fig` as a PNG at `path` (parent folders created) and return it; no-op without a path."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight", facecolor="white")
    return fig


def add_title(fig: Figure, title: str, coverage: str | None = None) -> None:
    """Figure title on top, image coverage as a footnote at the bottom (both kept clear by constrained layout)."""
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if coverage:
        fig.supxlabel(f"Coverage: {coverage}", fontsize=9, color=NOTE_COLOUR, style="italic")


def dataset_coverage(dataset: Dataset) -> str:
    """The dataset's coverage note plus how it was restricted (e.g. to the images that have pixels)."""
    return "; ".join([dataset.coverage_note(), *dataset.notes])


def wrap(text: str, width: int, max_lines: int | None = None) -> str:
    """Wrap text to `width` characters; cut to `max_lines` lines with an ellipsis."""
    lines = textwrap.wrap(" ".join(str(text).split()), width=width) or [""]
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(width - 1, 1)].rstrip() + "…"
    return "\n".join(lines)


# Kelly's colours of maximum contrast (white dropped) followed by nine more well-separated ones: 30 in all.
DISTINCT_COLOURS = (
    "#222222", "#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482", "#008856", "#E68FAC",
    "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17", "#8DB600", "#654522", "#E25822",
    "#2B3D26", "#00A6A6", "#1F3A93", "#FF69B4", "#00BFFF", "#808000", "#32CD32", "#800000", "#9400D3", "#7B68EE",
)


def class_palette(classes: Sequence[str]) -> dict[str, str]:
    """A stable, well-separated colour per class (sorted by name); 30 distinct colours, then an hsv wheel."""
    names = sorted(set(classes))
    colours = list(DISTINCT_COLOURS)
    if len(names) > len(colours):
        extra = colormaps["hsv"](np.linspace(0, 1, len(names) - len(colours), endpoint=False))
        colours += [matplotlib.colors.to_hex(c) for c in extra]
    return {name: colours[i] for i, name in enumerate(names)}


def load_thumbnail(path: Path | str | None, size: int = _THUMBNAIL_PX) -> np.ndarray | None:
    """RGB pixels of an image file (at most `size` px a side), or None when there is no readable file."""
    from ..image_files import ImageReadError, open_rgb

    if path is None:
        return None
    try:
        return np.asarray(open_rgb(path, max_side=size))
    except ImageReadError:
        return None


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


def _bare_axes(ax, frame_colour: str | None = None, frame_width: float = 4.0) -> None:
    """No ticks; a coloured frame when asked (the spines stay visible), otherwise a thin grey one."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(frame_colour or "#cccccc")
        spine.set_linewidth(frame_width if frame_colour else 0.8)


def legend_above(ax, ncol: int, **options) -> None:
    """Legend centred just above the axes; constrained layout keeps it clear of the figure title."""
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=ncol, fontsize=8.5, frameon=False, **options)


def legend_row(ax, handles: list, ncol: int) -> None:
    """Use an empty axes (a grid row of its own) as a legend box, so nothing can overlap it."""
    ax.set_axis_off()
    ax.legend(handles=handles, loc="center", ncol=ncol, fontsize=9, frameon=False)


def _text_tile(ax, text: str, fontsize: float = 8.5, facecolor: str = "#f2f2f2") -> None:
    """A grey tile with centred text, standing in for missing pixels."""
    ax.set_facecolor(facecolor)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=fontsize, transform=ax.transAxes, wrap=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)


def _show_image_or_tile(ax, path: Path | str | None, fallback_text: str) -> None:
    pixels = load_thumbnail(path)
    if pixels is None:
        _text_tile(ax, fallback_text)
    else:
        ax.imshow(pixels)


# --------------------------------------------------------------------------------------------- class samples
def _pick_class_samples(dataset: Dataset, n_classes: int, per_class: int, seed: int) -> list[tuple[str, list[int]]]:
    """Deterministic choice of classes and of images per class; images with pixels come first."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, image in enumerate(dataset.images):
        by_class.setdefault(image.scene_class, []).append(i)
    classes = sorted(by_class)
    if n_classes < len(classes):
        classes = sorted(rng.choice(classes, size=n_classes, replace=False).tolist())
    picked = []
    for name in classes:
        members = np.array(by_class[name])
        with_px = np.array([dataset.images[i].image_path is not None for i in members])
        order = np.concatenate([rng.permutation(members[with_px]), rng.permutation(members[~with_px])])
        picked.append((name, order[:per_class].astype(int).tolist()))
    return picked


def plot_class_samples(dataset: Dataset, n_classes: int = 12, per_class: int = 3, seed: int = 0,
                       path: Path | str | None = None) -> Figure:
    """Sample images of each scene class with their first human caption underneath.

    Images without pixels (e.g. RSITMD, or RSICD scenes missing from AID-150) are drawn as a grey panel
    saying so, and their caption is still shown.
    """
    if n_classes < 1 or per_class < 1:
        raise ValueError(f"n_classes and per_class must be >= 1, got {n_classes} and {per_class}")
    if not dataset.images:
        raise ValueError(f"dataset {dataset.name!r} has no images to plot")
    samples = _pick_class_samples(dataset, n_classes, per_class, seed)
    captions = dataset.captions_by_image()
    blocks_per_row = max(1, 6 // per_class)
    n_rows = -(-len(samples) // blocks_per_row)
    n_cols = blocks_per_row * (per_class + 1) - 1  # a narrow spacer column between class blocks
    widths = ([1.0] * per_class + [0.12]) * blocks_per_row
    fig = Figure(figsize=(2.35 * blocks_per_row * per_class + 0.3 * blocks_per_row, 3.05 * n_rows + 0.9),
                 layout="constrained")
    grid = fig.add_gridspec(n_rows, n_cols, width_ratios=widths[:n_cols])
    for block, (scene_class, indices) in enumerate(samples):
        row, block_col = divmod(block, blocks_per_row)
        for slot, image_index in enumerate(indices):
            ax = fig.add_subplot(grid[row, block_col * (per_class + 1) + slot])
            image = dataset.images[image_index]
            _show_image_or_tile(ax, image.image_path, "no pixels\nfor this image\n(captions only)")
            _bare_axes(ax)
            ax.set_title(scene_class if slot == 0 else f"{scene_class} ({slot + 1})", fontsize=10,
                         fontweight="bold" if slot == 0 else "normal")
            first_caption = captions[image_index][0] if captions[image_index] else "(no caption)"
            ax.set_xlabel(wrap(f"“{first_caption}”", 30, max_lines=3), fontsize=8)
    add_title(fig, f"{dataset.name.upper()} {dataset.split}: sample images per scene class with their first human caption",
              dataset_coverage(dataset))
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------- embeddings
def project_2d(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D coordinates of the rows of `vectors` by t-SNE (after PCA to 50-D) or PCA, and the axis labels."""
    if method not in PROJECTIONS:
        raise ValueError(f"projection method {method!r} is not known; choose one of {', '.join(PROJECTIONS)}")
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < 3:
        raise ValueError(f"need a 2-D array with at least 3 rows to project, got shape {vectors.shape}")
    from sklearn.decomposition import PCA

    if method == "pca":
        pca = PCA(n_components=2, random_state=seed).fit(vectors)
        share = pca.explained_variance_ratio_ * 100
        return pca.transform(vectors), (f"PC 1 ({share[0]:.1f} % of variance)", f"PC 2 ({share[1]:.1f} % of variance)")

    n_dims = min(50, vectors.shape[1], vectors.shape[0])
    reduced = PCA(n_components=n_dims, random_state=seed).fit_transform(vectors) if vectors.shape[1] > n_dims else vectors
    perplexity = float(min(30.0, max(2.0, (vectors.shape[0] - 1) / 3)))
    return _cached_tsne(np.ascontiguousarray(reduced), perplexity, seed), ("t-SNE 1", "t-SNE 2")


def _cached_tsne(reduced: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """t-SNE coordinates, computed once per input, perplexity, seed and scikit-learn version (cache/projections/)."""
    import hashlib

    import sklearn
    from sklearn.manifold import TSNE

    from ..fileutil import write_bytes_atomic
    from ..paths import cache_dir

    key = hashlib.sha256(reduced.tobytes() + f"{reduced.shape}|{perplexity}|{seed}|{sklearn.__version__}".encode()).hexdigest()
    path = cache_dir() / "projections" / f"tsne-{key[:32]}.npy"
    if path.is_file():
        return np.load(path)
    coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    buffer = io.BytesIO()
    np.save(buffer, coords)
    write_bytes_atomic(buffer.getvalue(), path)
    return coords


def plot_embedding_projection(vectors: np.ndarray, labels: Sequence[str], title: str, coverage: str,
                              method: str = "tsne", seed: int = 0, path: Path | str | None = None) -> Figure:
    """2-D projection (t-SNE or PCA) of embeddings, one colour per scene class, legend outside the axes."""
    labels = [str(label) for label in labels]
    if len(labels) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors but {len(labels)} labels; give one scene class per vector")
    coords, (xlabel, ylabel) = project_2d(vectors, method, seed)
    palette = class_palette(labels)
    markers = ("o", "s", "^")
    n_classes = len(palette)
    legend_cols = 1 if n_classes <= 15 else 2
    fig = Figure(figsize=(9.5 + 1.6 * legend_cols, 7.5), layout="constrained")
    ax = fig.subplots()
    label_array = np.asarray(labels)
    point_size = float(np.clip(6000 / len(labels), 8, 40))
    for i, (name, colour) in enumerate(palette.items()):
        mask = label_array == name
        ax.scatter(coords[mask, 0], coords[mask, 1], s=point_size, color=colour, marker=markers[(i // 10) % 3],
                   alpha=0.8, linewidths=0, label=f"{name} ({mask.sum()})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{'t-SNE' if method == 'tsne' else 'PCA'} of {len(labels)} vectors, {n_classes} scene classes", fontsize=10)
    ax.legend(title="scene class (n)", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=legend_cols, fontsize=8,
              title_fontsize=9, markerscale=max(1.0, 40 / point_size) ** 0.5, frameon=False)
    add_title(fig, title, coverage)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------- example queries
def ground_truth_ranks(t2i_scores: np.ndarray, caption_image_index: Sequence[int]) -> np.ndarray:
    """0-based rank of each caption's ground-truth image (ties counted against it, as in the metrics)."""
    t2i_scores = np.asarray(t2i_scores)
    relevant = relevance_t2i(np.asarray(caption_image_index), t2i_scores.shape[1])
    return rank_of_best_relevant(t2i_scores, relevant)


def choose_example_queries(t2i_scores: np.ndarray, caption_image_index: Sequence[int], n_success: int = 3,
                           n_failure: int = 3, seed: int = 0) -> list[int]:
    """Caption indices to show: successes (ground truth ranked first) then failures (ground truth not in the top 5).

    Chosen at random (given seed) within each group; fewer are returned when a group is smaller.
    """
    ranks = ground_truth_ranks(t2i_scores, caption_image_index)
    rng = np.random.default_rng(seed)
    successes = np.flatnonzero(ranks == 0)
    failures = np.flatnonzero(ranks >= 5)
    chosen_successes = rng.choice(successes, size=min(n_success, successes.size), replace=False)
    chosen_failures = rng.choice(failures, size=min(n_failure, failures.size), replace=False)
    return [int(q) for q in np.sort(chosen_successes)] + [int(q) for q in np.sort(chosen_failures)]


def _retrieved_tile(ax, dataset: Dataset, image_index: int, frame: str, heading: str) -> None:
    image = dataset.images[image_index]
    _show_image_or_tile(ax, image.image_path, f"{image.image_id}\n[{image.scene_class}]\n(no pixels)")
    _bare_axes(ax, frame)
    ax.set_title(heading, fontsize=8.5)
    ax.set_xlabel(image.image_id, fontsize=7.5)


def plot_example_queries(dataset: Dataset, t2i_scores: np.ndarray, query_indices: Sequence[int], k: int = 5,
                         path: Path | str | None = None, title: str | None = None,
                         show_ground_truth: bool = True) -> Figure:
    """One row per caption query: the query text, its top-k images (green frame = ground truth, red = wrong),
    and, when the ground truth is outside the top k, the ground-truth image with its rank (blue frame).
    Works without pixels: images are then text tiles with their id and scene class.
    """
    t2i_scores = np.asarray(t2i_scores)
    if t2i_scores.shape != (len(dataset.captions), dataset.n_images):
        raise ValueError(f"t2i_scores has shape {t2i_scores.shape}; expected (n_captions, n_images) = "
                         f"{(len(dataset.captions), dataset.n_images)} for {dataset!r}")
    query_indices = [int(q) for q in query_indices]
    if not query_indices:
        raise ValueError("query_indices is empty; pick some with choose_example_queries(...)")
    bad = [q for q in query_indices if not 0 <= q < len(dataset.captions)]
    if bad:
        raise ValueError(f"query indices {bad} are outside 0..{len(dataset.captions) - 1}")
    ranks = ground_truth_ranks(t2i_scores[query_indices], dataset.caption_image_index[query_indices])
    retrieved = top_k(t2i_scores[query_indices], k)
    n_cols = 1 + k + int(show_ground_truth)
    fig = Figure(figsize=(2.3 * n_cols + 1.6, 2.75 * len(query_indices) + 1.4), layout="constrained")
    grid = fig.add_gridspec(len(query_indices) + 1, n_cols, width_ratios=[1.9] + [1] * (n_cols - 1),
                            height_ratios=[0.15] + [1] * len(query_indices))
    _add_query_legend(fig.add_subplot(grid[0, :]), show_ground_truth)
    for row, q in enumerate(query_indices, start=1):
        truth = int(dataset.caption_image_index[q])
        rank = int(ranks[row - 1])
        _draw_query_text(fig.add_subplot(grid[row, 0]), dataset, q, truth, rank)
        for col, image_index in enumerate(retrieved[row - 1]):
            hit = int(image_index) == truth
            heading = f"#{col + 1} {dataset.images[image_index].scene_class}" + (" ✓" if hit else "")
            _retrieved_tile(fig.add_subplot(grid[row, 1 + col]), dataset, int(image_index),
                            HIT_COLOUR if hit else MISS_COLOUR, heading)
        if show_ground_truth:
            ax = fig.add_subplot(grid[row, n_cols - 1])
            if rank >= k:
                _retrieved_tile(ax, dataset, truth, TRUTH_COLOUR, f"ground truth: rank {rank + 1}")
            else:
                ax.set_axis_off()
    add_title(fig, title or f"{dataset.name.upper()} {dataset.split}: example text→image queries, top {k}",
              dataset_coverage(dataset))
    return save_figure(fig, path)


def _draw_query_text(ax, dataset: Dataset, q: int, truth: int, rank: int) -> None:
    ax.set_axis_off()
    outcome = "success (R@1)" if rank == 0 else ("failure (not in top 5)" if rank >= 5 else f"ground truth at rank {rank + 1}")
    colour = HIT_COLOUR if rank == 0 else (MISS_COLOUR if rank >= 5 else "#fc8d59")
    ax.text(0.0, 0.98, f"query {q}: {outcome}", fontsize=9, fontweight="bold", color=colour, va="top",
            transform=ax.transAxes)
    ax.text(0.0, 0.80, wrap(f"“{dataset.captions[q]}”", 38, max_lines=7), fontsize=9, va="top",
            transform=ax.transAxes)
    ax.text(0.0, 0.02, wrap(f"true image: {dataset.images[truth].image_id} [{dataset.images[truth].scene_class}]", 34,
                            max_lines=3), fontsize=7.5, color=NOTE_COLOUR, va="bottom", transform=ax.transAxes)


def _add_query_legend(ax, show_ground_truth: bool) -> None:
    handles = [Patch(facecolor="white", edgecolor=HIT_COLOUR, linewidth=3, label="ground-truth image"),
               Patch(facecolor="white", edgecolor=MISS_COLOUR, linewidth=3, label="other image")]
    if show_ground_truth:
        handles.append(Patch(facecolor="white", edgecolor=TRUTH_COLOUR, linewidth=3,
                             label="ground truth outside the top k"))
    legend_row(ax, handles, ncol=len(handles))


# --------------------------------------------------------------------------------------------- intervals (seaborn)
R_AT_1_MARKERS = {"text→image R@1": ("D", "#e6550d"), "image→text R@1": ("^", "#31a354")}


def interval_observations(frame: pd.DataFrame, value: str = "mR", low: str = "ci_low", high: str = "ci_high") -> pd.DataFrame:
    """Each row as the observations (low, value, high) in column `_obs`, so seaborn draws a precomputed interval:
    its median estimator gives the value back and its 100 % percentile interval the bounds (see INTERVAL)."""
    bounded = frame[low].notna() & frame[high].notna()
    outside = frame[bounded & ~((frame[low] <= frame[value]) & (frame[value] <= frame[high]))]
    if not outside.empty:
        raise ValueError(f"{value} lies outside [{low}, {high}] in rows {outside.index.tolist()}: "
                         f"{outside[[value, low, high]].to_dict(orient='records')}; give the interval's bounds in order")
    parts = [frame.assign(_obs=frame[value])] + [frame[bounded].assign(_obs=frame.loc[bounded, c]) for c in (low, high)]
    return pd.concat(parts, ignore_index=True)


INTERVAL = {"estimator": "median", "errorbar": ("pi", 100)}  # with interval_observations: the value and its interval
VALUE_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0}  # keeps a value readable over a line


def _styled_subplots(fig: Figure, *args, **kwargs):
    """Axes in seaborn's white-grid style, made inside the style context (nothing global is changed)."""
    with sns.axes_style("whitegrid"):
        return fig.subplots(*args, **kwargs)


def _r_at_1_points(ax, frame: pd.DataFrame, slot: str, columns: dict[str, str], horizontal: bool) -> None:
    """Text→image and image→text R@1 as marker-only points at each slot (the categories of the main plot)."""
    present = {label: column for label, column in columns.items() if column in frame}
    if not present:
        return
    long = frame.melt(id_vars=[slot], value_vars=list(present.values()), var_name="recall", value_name="value")
    long["recall"] = long["recall"].map({column: label for label, column in present.items()})
    xy = {"x": "value", "y": slot} if horizontal else {"x": slot, "y": "value"}
    sns.pointplot(data=long, **xy, hue="recall", hue_order=list(present), orient="h" if horizontal else "v",
                  palette={k: R_AT_1_MARKERS[k][1] for k in present}, markers=[R_AT_1_MARKERS[k][0] for k in present],
                  linestyle="none", errorbar=None, dodge=False, legend=False, ax=ax)


def _r_at_1_handles(labels) -> list:
    return [Line2D([], [], linestyle="none", marker=R_AT_1_MARKERS[label][0], color=R_AT_1_MARKERS[label][1], label=label)
            for label in labels]


# --------------------------------------------------------------------------------------------- per-class recall
def plot_per_class_recall(per_class_records: Sequence[Mapping] | pd.DataFrame, title: str, coverage: str,
                          path: Path | str | None = None) -> Figure:
    """Horizontal bars of mR per scene class (sorted, best on top), with text→image and image→text R@1 as markers."""
    frame = pd.DataFrame(per_class_records)
    _require_columns(frame, ["scene_class", "mR", "t2i R@1", "i2t R@1"], "per_class_records (from evaluate_scores(...)['per_class'])")
    frame = frame.sort_values("mR", ascending=False).reset_index(drop=True)
    counts = frame["n_images"] if "n_images" in frame else pd.Series([np.nan] * len(frame))
    labels = [f"{c}  (n={int(n)})" if pd.notna(n) else str(c) for c, n in zip(frame["scene_class"], counts)]
    frame["slot"] = np.arange(len(frame))
    fig = Figure(figsize=(9.0, 0.32 * len(frame) + 2.2), layout="constrained")
    ax = _styled_subplots(fig)
    sns.barplot(data=frame, x="mR", y="slot", orient="h", color="#9ecae1", edgecolor="#3182bd", saturation=1, errorbar=None, ax=ax)
    _r_at_1_points(ax, frame, "slot", {"text→image R@1": "t2i R@1", "image→text R@1": "i2t R@1"}, horizontal=True)
    mean = frame["mR"].mean()
    ax.axvline(mean, color="#3182bd", linestyle="--", linewidth=1)
    ax.set_yticks(frame["slot"], labels, fontsize=8.5)
    upper = float(np.nanmax(frame[["mR", "t2i R@1", "i2t R@1"]].to_numpy())) if len(frame) else 100.0
    ax.set_xlim(0, min(100.0, max(10.0, upper * 1.1)) + 2)
    ax.set(xlabel="recall (%)", ylabel="")
    handles = [Patch(facecolor="#9ecae1", edgecolor="#3182bd", label="mR (mean of six recalls)"),
               Line2D([], [], color="#3182bd", linestyle="--", label=f"mean over classes: {mean:.1f}"),
               *_r_at_1_handles(R_AT_1_MARKERS)]
    legend_above(ax, ncol=2, handles=handles)
    add_title(fig, title, coverage)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------- comparison
QUOTED_LABEL = "quoted from papers (not re-run)"


def plot_comparison(rows: pd.DataFrame, path: Path | str | None = None, title: str = "mR by system",
                    coverage: str | None = None) -> Figure:
    """mR per system, one panel per dataset: measured bars with 95 % intervals, quoted figures grey and hatched."""
    _require_columns(rows, ["system", "dataset", "mR", "ci_low", "ci_high", "kind", "setting"], "comparison rows")
    bad_kind = sorted(set(rows["kind"]) - {"measured", "quoted"})
    if bad_kind:
        raise ValueError(f"comparison rows: kind must be 'measured' or 'quoted', got {bad_kind}")
    rows = rows.dropna(subset=["mR"]).astype({"mR": float, "ci_low": float, "ci_high": float})
    if rows.empty:
        raise ValueError("comparison rows have no mR values to plot")
    datasets = list(dict.fromkeys(rows["dataset"]))
    settings = list(dict.fromkeys(rows.loc[rows["kind"] == "measured", "setting"]))
    palette = {f"measured: {s}": colormaps["tab10"].colors[i % 10] for i, s in enumerate(settings)}
    palette[QUOTED_LABEL] = QUOTED_COLOUR
    sizes = [int((rows["dataset"] == d).sum()) for d in datasets]
    fig = Figure(figsize=(10.0, 0.6 * sum(sizes) + 1.3 * len(datasets) + 1.6), layout="constrained")
    grid = fig.add_gridspec(len(datasets) + 1, 1, height_ratios=[max(s, 1) for s in sizes] + [1.2])
    with sns.axes_style("whitegrid"):
        axes = [fig.add_subplot(grid[i, 0]) for i in range(len(datasets))]
    upper = float(np.nanmax(rows[["mR", "ci_high"]].to_numpy(dtype=float)))
    for ax, name in zip(axes, datasets):
        _comparison_panel(ax, rows[rows["dataset"] == name], name, palette)
        ax.set_xlim(0, upper * 1.15 + 2)
    handles = [Patch(facecolor=c, label=k, hatch="///" if k == QUOTED_LABEL else None,
                     edgecolor="#777777" if k == QUOTED_LABEL else "none") for k, c in palette.items()]
    handles.append(Line2D([], [], color="black", marker="|", linestyle="-", label="95 % image-level bootstrap interval"))
    legend_row(fig.add_subplot(grid[-1, 0]), handles, ncol=min(3, len(handles)))
    add_title(fig, title, coverage)
    return save_figure(fig, path)


LABEL_WIDTH, LABEL_LINES = 34, 3  # characters a bar's label is wrapped to, and its lines at most


def system_label(system: str, setting: str) -> str:
    """A bar's label: the system wrapped to LABEL_WIDTH characters on at most LABEL_LINES lines, its setting (two at
    most) below."""
    return f"{wrap(system, LABEL_WIDTH, LABEL_LINES)}\n[{wrap(setting, LABEL_WIDTH, 2)}]"


def _comparison_panel(ax, panel: pd.DataFrame, dataset_name: str, palette: dict) -> None:
    """One dataset: bars sorted by mR (best on top), the measured ones with their interval, values written beside."""
    panel = panel.sort_values("mR", ascending=False).reset_index(drop=True)
    panel = panel.assign(slot=np.arange(len(panel)), key=[QUOTED_LABEL if k == "quoted" else f"measured: {s}"
                                                          for k, s in zip(panel["kind"], panel["setting"])])
    panel.loc[panel["kind"] == "quoted", ["ci_low", "ci_high"]] = np.nan  # a quoted figure has no interval of ours
    sns.barplot(data=interval_observations(panel), x="_obs", y="slot", hue="key", palette=palette, orient="h", dodge=False,
                saturation=1, capsize=0.3, err_kws={"color": "black", "linewidth": 1}, legend=False, width=0.7, ax=ax, **INTERVAL)
    for bar, quoted in zip(sorted(ax.patches, key=lambda p: p.get_y()), panel["kind"] == "quoted"):
        bar.set_hatch("///" if quoted else None)
        bar.set_edgecolor("#777777" if quoted else "none")
    for slot, row in panel.iterrows():
        quoted = row["kind"] == "quoted"
        end = row["mR"] if quoted or pd.isna(row["ci_high"]) else row["ci_high"]
        ax.text(end + 0.6, slot, f"{row['mR']:.2f}" + (" (quoted)" if quoted else ""), va="center", fontsize=8,
                color=NOTE_COLOUR if quoted else "black")
    ax.set_yticks(panel["slot"], [system_label(s, st) for s, st in zip(panel["system"], panel["setting"])], fontsize=8)
    ax.set_title(str(dataset_name), fontsize=11, loc="left", fontweight="bold")
    ax.set(xlabel="mR (%), mean of R@1/5/10 in both directions", ylabel="")


# --------------------------------------------------------------------------------------------- ablation
def plot_ablation(frame: pd.DataFrame, title: str, xlabel: str, coverage: str, path: Path | str | None = None) -> Figure:
    """mR per setting value (in the frame's order) with 95 % intervals; t2i/i2t R@1 as extra markers when present."""
    _require_columns(frame, ["setting", "mR", "ci_low", "ci_high"], "ablation frame")
    if frame.empty:
        raise ValueError("ablation frame has no rows")
    frame = frame.reset_index(drop=True).astype({"mR": float, "ci_low": float, "ci_high": float})
    frame["slot"] = np.arange(len(frame))
    fig = Figure(figsize=(max(6.5, 1.25 * len(frame) + 3.0), 5.0), layout="constrained")
    ax = _styled_subplots(fig)
    # settings are categories, so points are not joined by lines
    sns.pointplot(data=interval_observations(frame), x="slot", y="_obs", color="#08519c", linestyle="none", capsize=0.12,
                  err_kws={"linewidth": 1.8}, markersize=7, ax=ax, **INTERVAL)
    tops = frame["ci_high"].fillna(frame["mR"])
    for slot, value, top in zip(frame["slot"], frame["mR"], tops):
        ax.annotate(f"{value:.2f}", (slot, top), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=8.5)
    r_at_1 = {"text→image R@1": "t2i_R@1", "image→text R@1": "i2t_R@1"}
    _r_at_1_points(ax, frame, "slot", r_at_1, horizontal=False)
    ax.set_xticks(frame["slot"], [wrap(str(s), 14, max_lines=3) for s in frame["setting"]], fontsize=9)
    ax.set_xlim(-0.5, len(frame) - 0.5)
    extra = [frame[c].max() for c in r_at_1.values() if c in frame]
    ax.set_ylim(bottom=0, top=float(np.nanmax([*tops, *extra])) * 1.15 + 1)
    ax.set(xlabel=xlabel, ylabel="recall (%)")
    handles = [Line2D([], [], color="#08519c", marker="o", label="mR with 95 % interval"),
               *_r_at_1_handles([label for label, column in r_at_1.items() if column in frame])]
    legend_above(ax, ncol=3, handles=handles)
    add_title(fig, title, coverage)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------- audit summary


def plot_audit_summary(summary: pd.DataFrame, path: Path | str | None = None, title: str = "Hand audit of caption variants",
                       coverage: str | None = None) -> Figure:
    """Mean audit scores per group (the first non-score column: e.g. scene_class or variant).

    Left: mean counts of correct objects, hallucinated objects, direction errors; right: mean completeness (1-5).
    """
    _require_columns(summary, list(AUDIT_COUNT_COLUMNS) + [AUDIT_SCORE_COLUMN], "audit summary")
    group_column = next((c for c in summary.columns if c not in AUDIT_COUNT_COLUMNS + (AUDIT_SCORE_COLUMN, "n_rows")), None)
    frame = summary.reset_index() if group_column is None else summary
    group_column = group_column or frame.columns[0]
    frame = frame.sort_values(AUDIT_SCORE_COLUMN).reset_index(drop=True)
    labels = [f"{g}  (n={int(n)})" for g, n in zip(frame[group_column], frame["n_rows"])] if "n_rows" in frame \
        else [str(g) for g in frame[group_column]]
    y = np.arange(len(frame))
    fig = Figure(figsize=(11.0, 0.36 * len(frame) + 2.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.6, 1]})
    height = 0.8 / len(AUDIT_COUNT_COLUMNS)
    for j, (column, colour) in enumerate(zip(AUDIT_COUNT_COLUMNS, ("#31a354", "#de2d26", "#fd8d3c"))):
        left.barh(y + (j - 1) * height, frame[column], height=height, color=colour, label=column.replace("_", " "))
    left.set_yticks(y, labels, fontsize=8.5)
    left.set_xlabel("mean count per variant")
    left.set_title("objects and direction errors", fontsize=10)
    left.grid(axis="x", alpha=0.3)
    left.legend(loc="lower right", fontsize=8)
    right.barh(y, frame[AUDIT_SCORE_COLUMN], height=0.6, color="#6baed6")
    for yi, value in zip(y, frame[AUDIT_SCORE_COLUMN]):
        right.text(value + 0.05, yi, f"{value:.2f}", va="center", fontsize=8)
    right.set_xlim(1, 5.5)
    right.set_xlabel("mean completeness (1 = poor, 5 = complete)")
    right.set_title("completeness", fontsize=10)
    right.grid(axis="x", alpha=0.3)
    add_title(fig, f"{title} — by {group_column}", coverage)
    return save_figure(fig, path)


__all__ = ["save_figure", "add_title", "dataset_coverage", "wrap", "class_palette", "load_thumbnail", "project_2d", "ground_truth_ranks",
           "plot_class_samples", "plot_embedding_projection", "choose_example_queries", "plot_example_queries",
           "plot_per_class_recall", "plot_comparison", "plot_ablation", "plot_audit_summary"]



# --------------------------------------------------------------------------------------------- retrieval quality
def plot_quality_path(rows_by_dataset: Mapping[str, Sequence[Mapping]], path: Path | str | None = None,
                      title: str = "From the plain baseline to the best training-free pipeline") -> Figure:
    """One panel per dataset: mR with 95 % intervals of each step (rows: step, mR, ci95, track), with the quoted
    zero-shot CLIPs and the paper as dashed lines."""
    fig = Figure(figsize=(12.0, 1.0 + 0.55 * max(len(r) for r in rows_by_dataset.values()) * len(rows_by_dataset) + 1.5),
                 layout="constrained")
    axes = _styled_subplots(fig, len(rows_by_dataset), 1, squeeze=False)[:, 0]
    colours = {"zero-shot": "#3182bd", "uses train data": "#e6550d"}
    for ax, (name, rows) in zip(axes, rows_by_dataset.items()):
        _quality_panel(ax, name, pd.DataFrame(rows), colours)
    add_title(fig, title, "standard protocol, random ties, 95 % image-level bootstrap intervals; settings chosen on the other dataset without the shared scenes")
    return save_figure(fig, path)


def _quality_panel(ax, name: str, frame: pd.DataFrame, colours: dict) -> None:
    """The steps of one dataset top to bottom, coloured by track, the quoted references as vertical lines."""
    frame = frame.assign(slot=np.arange(len(frame)), ci_low=[lo for lo, _ in frame["ci95"]],
                         ci_high=[hi for _, hi in frame["ci95"]])
    palette = {t: colours.get(t, "#756bb1") for t in frame["track"].unique()}
    sns.barplot(data=interval_observations(frame), x="_obs", y="slot", hue="track", palette=palette, orient="h", dodge=False,
                saturation=1, width=0.65, capsize=0.3, err_kws={"color": "black", "linewidth": 1.2}, legend=False, ax=ax, **INTERVAL)
    for slot, row in frame.iterrows():
        ax.text(row["ci_high"] + 0.4, slot, f"{row['mR']:.2f}", va="center", fontsize=8.5, bbox=VALUE_BOX)
    for (label, value), style in zip(zero_shot_references(name), ("--", "-.", ":")):
        ax.axvline(value, color=NOTE_COLOUR, linestyle=style, linewidth=1.2, label=f"{label}: {value} (quoted)")
    ax.set_yticks(frame["slot"], [wrap(step, 60, 2) for step in frame["step"]], fontsize=8.5)
    ax.set_title(name.upper(), loc="left", fontweight="bold")
    ax.set(xlabel="mR (%)", ylabel="")
    handles = ax.get_legend_handles_labels()[0] + [Patch(facecolor=c, label=f"measured: {t}") for t, c in palette.items()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)


def plot_gain_breakdown(pairs: Mapping[str, tuple[Mapping, Mapping]], path: Path | str | None = None,
                        title: str = "Where the gains come from: best zero-shot setting minus the baseline") -> Figure:
    """Per dataset (baseline result, best result): left, the gain of each of the six recalls; right, the mR gain
    per scene class (from the per-class tables)."""
    fig = Figure(figsize=(13.0, 4.2 * len(pairs) + 0.8), layout="constrained")
    axes = fig.subplots(len(pairs), 2, squeeze=False, width_ratios=[1, 2.2])
    for (name, (base, best)), (left, right) in zip(pairs.items(), axes):
        labels = [f"{d} R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)]
        gains = [best[d][f"R@{k}"] - base[d][f"R@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10)]
        left.bar(range(6), gains, color=[HIT_COLOUR if g >= 0 else MISS_COLOUR for g in gains])
        left.set_xticks(range(6), [label.replace("t2i ", "T2I\n").replace("i2t ", "I2T\n") for label in labels], fontsize=8.5)
        left.axhline(0, color="black", linewidth=0.8)
        left.set_ylabel("gain (points)")
        left.set_title(f"{name.upper()}: per direction and R@K", loc="left", fontweight="bold")
        frame = pd.DataFrame(best["per_class"]).set_index("scene_class")["mR"] - \
            pd.DataFrame(base["per_class"]).set_index("scene_class")["mR"]
        frame = frame.sort_values()
        right.bar(range(len(frame)), frame.to_numpy(), color=[HIT_COLOUR if g >= 0 else MISS_COLOUR for g in frame])
        right.set_xticks(range(len(frame)), frame.index, rotation=70, fontsize=7.5)
        right.axhline(0, color="black", linewidth=0.8)
        right.set_title(f"{name.upper()}: mR gain per scene class", loc="left", fontweight="bold")
    add_title(fig, title, "the best setting is the one chosen on the other dataset")
    return save_figure(fig, path)
