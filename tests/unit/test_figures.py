"""Every study figure runs on small synthetic data and writes a real PNG; example queries are chosen correctly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from rsrt_utils.data.dataset import Dataset, ImageRecord
from rsrt_utils.metrics import evaluate_scores
from rsrt_utils.study import figures

CLASSES = ("airport", "beach", "forest", "port")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_dataset(tmp_path, n_per_class=3, with_pixels=True) -> Dataset:
    """4 classes x n images, 2 captions each; pixels are small coloured JPEGs (one image left without pixels)."""
    rng = np.random.default_rng(0)
    images, captions, index = [], [], []
    for c, scene_class in enumerate(CLASSES):
        for n in range(n_per_class):
            path = None
            if with_pixels and not (c == 0 and n == 0):
                path = tmp_path / f"{scene_class}_{n}.jpg"
                pixels = (rng.random((40, 40, 3)) * 80 + np.array([60 * c, 40, 200 - 50 * c])).clip(0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(path)
            images.append(ImageRecord(f"{scene_class}_{n}.jpg", scene_class, "test", path))
            for k in range(2):
                captions.append(f"a {scene_class} scene number {n} with many buildings and a long road next to it, view {k}")
                index.append(len(images) - 1)
    return Dataset("toy", "test", images, captions, np.array(index))


def assert_png(path, min_bytes=2_000):
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    with Image.open(path) as image:
        width, height = image.size
    assert 300 < width < 6000 and 200 < height < 8000


def scores_with_known_ranks(dataset: Dataset) -> np.ndarray:
    """Score matrix where captions 0-3 rank their image first and captions 4-7 rank it last."""
    n_captions, n_images = len(dataset.captions), dataset.n_images
    rng = np.random.default_rng(1)
    scores = rng.random((n_captions, n_images)) * 0.5
    truth = dataset.caption_image_index
    scores[np.arange(n_captions), truth] = 0.75  # rank 0 for everyone ...
    for q in range(4, 8):  # ... except these: their ground truth scores lowest
        scores[q, truth[q]] = -1.0
    return scores


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path)


def test_class_samples_with_and_without_pixels(tmp_path, dataset):
    fig = figures.plot_class_samples(dataset, n_classes=3, per_class=2, path=tmp_path / "out" / "samples.png")
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "out" / "samples.png")
    no_pixels = make_dataset(tmp_path, with_pixels=False)
    figures.plot_class_samples(no_pixels, path=tmp_path / "samples_no_pixels.png")
    assert_png(tmp_path / "samples_no_pixels.png")
    texts = [t.get_text() for ax in figures.plot_class_samples(no_pixels).axes for t in ax.texts]
    assert any("no pixels" in t for t in texts)


@pytest.mark.parametrize("method", ["pca", pytest.param("tsne", marks=pytest.mark.slow)])
def test_embedding_projection(tmp_path, method):
    rng = np.random.default_rng(0)
    labels = [f"class{i % 30:02d}" for i in range(90)]
    vectors = rng.normal(size=(90, 16))
    fig = figures.plot_embedding_projection(vectors, labels, "toy vectors", "TOY test: 0 of 90 images with pixels",
                                            method=method, path=tmp_path / f"{method}.png")
    assert_png(tmp_path / f"{method}.png")
    legend = fig.axes[0].get_legend()
    assert len(legend.get_texts()) == 30
    assert "Coverage: TOY test" in fig.get_supxlabel()


def test_embedding_projection_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="10 vectors but 3 labels"):
        figures.plot_embedding_projection(np.zeros((10, 4)), ["a", "b", "c"], "t", "c", method="pca")


def test_class_palette_has_30_distinct_colours():
    palette = figures.class_palette([f"c{i}" for i in range(30)])
    assert len(set(palette.values())) == 30


def test_choose_example_queries_picks_real_successes_and_failures(dataset):
    scores = scores_with_known_ranks(dataset)
    chosen = figures.choose_example_queries(scores, dataset.caption_image_index, n_success=3, n_failure=3, seed=0)
    successes, failures = chosen[:3], chosen[3:]
    assert set(failures) <= {4, 5, 6, 7} and len(failures) == 3
    assert not set(successes) & {4, 5, 6, 7} and len(successes) == 3
    ranks = figures.ground_truth_ranks(scores, dataset.caption_image_index)
    assert all(ranks[q] == 0 for q in successes) and all(ranks[q] >= 5 for q in failures)
    assert chosen == figures.choose_example_queries(scores, dataset.caption_image_index, seed=0)
    # more asked than exist: all four failures, no error
    assert len(figures.choose_example_queries(scores, dataset.caption_image_index, n_failure=10)) == 3 + 4


def test_example_queries_with_and_without_pixels(tmp_path, dataset):
    scores = scores_with_known_ranks(dataset)
    chosen = figures.choose_example_queries(scores, dataset.caption_image_index, n_success=2, n_failure=2)
    fig = figures.plot_example_queries(dataset, scores, chosen, k=5, path=tmp_path / "queries.png")
    assert_png(tmp_path / "queries.png")
    frame_colours = {ax.spines["top"].get_edgecolor()[:3] for ax in fig.axes if ax.get_visible() and ax.images}
    assert len(frame_colours) >= 2  # green (hit) and red (miss) frames both appear
    no_pixels = make_dataset(tmp_path, with_pixels=False)
    figures.plot_example_queries(no_pixels, scores, chosen, path=tmp_path / "queries_no_pixels.png")
    assert_png(tmp_path / "queries_no_pixels.png")


def test_example_queries_rejects_wrong_shape(dataset):
    with pytest.raises(ValueError, match="expected \\(n_captions, n_images\\)"):
        figures.plot_example_queries(dataset, np.zeros((3, 3)), [0])


def test_per_class_recall_from_evaluate_scores(tmp_path, dataset):
    scores = scores_with_known_ranks(dataset)
    result = evaluate_scores(scores, scores.T.copy(), dataset.caption_image_index, dataset.image_classes, n_boot=20)
    fig = figures.plot_per_class_recall(result["per_class"], "per class", dataset.coverage_note(), path=tmp_path / "pc.png")
    assert_png(tmp_path / "pc.png")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 4 and all("(n=3)" in label for label in labels)


def test_per_class_recall_names_missing_columns():
    with pytest.raises(ValueError, match="lacks column"):
        figures.plot_per_class_recall([{"scene_class": "a", "mR": 1.0}], "t", "c")


def comparison_rows() -> pd.DataFrame:
    return pd.DataFrame([
        dict(system="TRSLLaVA", dataset="RSITMD", mR=42.62, ci_low=np.nan, ci_high=np.nan, kind="quoted", setting="training-free"),
        dict(system="ours", dataset="RSITMD", mR=20.0, ci_low=18.5, ci_high=21.4, kind="measured", setting="training-free"),
        dict(system="CLIP ViT-B/32", dataset="RSICD", mR=15.74, ci_low=np.nan, ci_high=np.nan, kind="quoted", setting="zero-shot"),
        dict(system="ours", dataset="RSICD", mR=16.35, ci_low=15.6, ci_high=17.1, kind="measured", setting="train captions"),
        dict(system="missing", dataset="RSICD", mR=np.nan, ci_low=np.nan, ci_high=np.nan, kind="quoted", setting="x"),
    ])


def test_comparison(tmp_path):
    fig = figures.plot_comparison(comparison_rows(), path=tmp_path / "cmp.png", coverage="RSICD test: 1027 of 1093")
    assert_png(tmp_path / "cmp.png")
    panel_titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert "RSITMD" in panel_titles and "RSICD" in panel_titles
    hatched = [p for ax in fig.axes for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 2  # the two quoted figures (the NaN row is dropped)


def test_comparison_rejects_unknown_kind():
    rows = comparison_rows().assign(kind="guessed")
    with pytest.raises(ValueError, match="kind must be 'measured' or 'quoted'"):
        figures.plot_comparison(rows)


def test_ablation(tmp_path):
    frame = pd.DataFrame({"setting": [1, 3, 5], "mR": [14.0, 15.5, 16.3], "ci_low": [13.0, 14.8, 15.6],
                          "ci_high": [15.0, 16.2, 17.0], "t2i_R@1": [5.0, 6.5, 7.5], "i2t_R@1": [4.0, 3.8, 3.5]})
    fig = figures.plot_ablation(frame, "variants", "variants per image", "TOY: 3 of 3", path=tmp_path / "abl.png")
    assert_png(tmp_path / "abl.png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "3", "5"]
    figures.plot_ablation(frame[["setting", "mR", "ci_low", "ci_high"]], "t", "x", "c", path=tmp_path / "abl2.png")
    assert_png(tmp_path / "abl2.png")


def test_audit_summary(tmp_path):
    summary = pd.DataFrame({"variant": [1, 2, 3], "correct_objects": [3.0, 2.5, 1.0], "hallucinated_objects": [0.5, 1.0, 0.0],
                            "direction_errors": [0.0, 0.5, 1.0], "completeness_1to5": [4.0, 3.5, 2.0], "n_rows": [4, 4, 4]})
    figures.plot_audit_summary(summary, path=tmp_path / "audit.png", coverage="TOY: 4 images")
    assert_png(tmp_path / "audit.png")


def _segments(ax) -> list[tuple[tuple, tuple]]:
    """(x pair, y pair) of every two-point piece of the lines on the axes (pieces are separated by NaN), rounded:
    interval bars and their caps are drawn as such pieces."""
    pieces = []
    for line in ax.lines:
        xy = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
        breaks = np.flatnonzero(np.isnan(xy).any(axis=1))
        for piece in np.split(xy, breaks):
            piece = piece[~np.isnan(piece).any(axis=1)]
            if len(piece) == 2:
                pieces.append((tuple(np.round(piece[:, 0], 4)), tuple(np.round(piece[:, 1], 4))))
    return pieces


def test_ablation_draws_the_given_intervals():
    frame = pd.DataFrame({"setting": ["max", "mean"], "mR": [16.95, 16.71], "ci_low": [16.03, 15.80], "ci_high": [17.89, 17.62]})
    ax = figures.plot_ablation(frame, "pooling", "pooling", "TOY").axes[0]
    segments = _segments(ax)
    assert ((0.0, 0.0), (16.03, 17.89)) in segments and ((1.0, 1.0), (15.80, 17.62)) in segments, segments
    points = [tuple(np.round(line.get_ydata(), 4)) for line in ax.lines if line.get_marker() == "o"]
    assert (16.95, 16.71) in points, points  # the estimates are the given mR, not a mean of the bounds


def test_comparison_draws_intervals_for_measured_rows_only():
    rows = comparison_rows()
    rows.loc[rows["mR"] == 16.35, "ci_low"] = 15.2  # an asymmetric interval: a mean of the bounds would not give mR
    fig = figures.plot_comparison(rows)
    rsicd = next(ax for ax in fig.axes if ax.get_title(loc="left") == "RSICD")
    widths = sorted(round(p.get_width(), 4) for p in rsicd.patches)
    assert widths == [15.74, 16.35]  # bars end at the given mR
    intervals = [x for x, y in _segments(rsicd) if y[0] == y[1] and x[0] != x[1]]
    assert intervals == [(15.2, 17.1)]  # the measured row's 95 % interval; none for the quoted figure


def test_intervals_must_contain_their_value():
    frame = pd.DataFrame({"setting": ["a"], "mR": [20.0], "ci_low": [21.0], "ci_high": [22.0]})
    with pytest.raises(ValueError, match="mR lies outside \\[ci_low, ci_high\\]"):
        figures.plot_ablation(frame, "t", "x", "c")


def test_quality_path_intervals(tmp_path):
    rows = {"rsitmd": [{"step": "baseline", "mR": 22.42, "ci95": [20.85, 24.02], "track": "zero-shot"},
                       {"step": "+ hubness", "mR": 26.53, "ci95": [24.72, 28.29], "track": "uses train data"}]}
    fig = figures.plot_quality_path(rows, path=tmp_path / "path.png")
    assert_png(tmp_path / "path.png")
    ax = fig.axes[0]
    assert sorted(round(p.get_width(), 2) for p in ax.patches) == [22.42, 26.53]
    horizontal = [x for x, y in _segments(ax) if y[0] == y[1]]
    assert (20.85, 24.02) in horizontal and (24.72, 28.29) in horizontal, horizontal


def test_a_tsne_projection_is_computed_once_per_input_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path))
    vectors = np.random.default_rng(0).normal(size=(40, 8))
    first, _ = figures.project_2d(vectors, "tsne", seed=0)
    cached = sorted((tmp_path / "projections").glob("tsne-*.npy"))
    assert len(cached) == 1
    again, _ = figures.project_2d(vectors, "tsne", seed=0)
    assert np.array_equal(first, again)
    figures.project_2d(vectors, "tsne", seed=1)
    figures.project_2d(vectors + 1e-3, "tsne", seed=0)
    assert len(list((tmp_path / "projections").glob("tsne-*.npy"))) == 3
    np.save(cached[0], np.zeros_like(first))  # what is in the cache is what a second call returns
    assert np.array_equal(figures.project_2d(vectors, "tsne", seed=0)[0], np.zeros_like(first))
