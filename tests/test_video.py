"""Video parts on their own: the shapes_video clips, the merge rule, VideoCaR's text embeddings, the
per-set video metric and the DAVIS-layout writer."""

import numpy as np
import pytest
import torch
from PIL import Image

from car.data.shapes import CLASSES
from car.data.shapes_video import ShapesVideoDataset
from car.errors import CarError
from car.methods.car.video import merge_object_masks
from car.metrics.video import VideoMeasures
from car.run.davis_output import DavisWriter


def test_shapes_video_items_follow_the_agreed_format():
    data = ShapesVideoDataset(num_videos=3, num_frames=5, expression_sets=["name", "phrase"])
    assert len(data) == 6  # one item per (expression set, clip), set-major
    item = data[4]
    assert item["expression_set"] == "phrase" and item["video_id"] == "shapes_val_001"
    assert item["frames"].dtype == torch.uint8 and tuple(item["frames"].shape) == (5, 3, 64, 64)
    assert item["target"].dtype == torch.uint8 and tuple(item["target"].shape) == (5, 64, 64)
    assert item["frame_ids"] == ["00000", "00001", "00002", "00003", "00004"]
    ids = set(np.unique(item["target"].numpy()).tolist()) - {0, 255}
    assert ids <= set(item["expressions"]) and all(k >= 1 for k in item["expressions"])
    for text in item["expressions"].values():
        assert text.startswith("the ") and text[4:] in CLASSES
    assert data[1]["expressions"] == {k: v[4:] for k, v in item["expressions"].items()}  # same clip, set "name"


def test_shapes_video_is_seeded():
    a = ShapesVideoDataset(num_videos=2, num_frames=4, seed=3)
    b = ShapesVideoDataset(num_videos=2, num_frames=4, seed=3)
    other = ShapesVideoDataset(num_videos=2, num_frames=4, seed=4)
    assert torch.equal(a[1]["frames"], b[1]["frames"]) and torch.equal(a[1]["target"], b[1]["target"])
    assert not torch.equal(a[1]["frames"], other[1]["frames"])


def test_shapes_video_has_motion_entrances_and_davis_object_count():
    data = ShapesVideoDataset(num_videos=12, num_frames=8, expression_sets=["name"])
    entered = moved = 0
    for item in data:
        target = item["target"].numpy()
        first = set(np.unique(target[0]).tolist()) - {0, 255}
        # the DAVIS unsupervised protocol counts a sequence's objects as the highest id of its first frame
        assert max(first) == max(item["expressions"])
        later = set(np.unique(target).tolist()) - {0, 255}
        entered += bool(later - first)
        moved += not np.array_equal(target[0] == max(first), target[-1] == max(first))
    assert entered >= 3 and moved == len(data)


def test_shapes_video_refuses_an_unknown_expression_set():
    with pytest.raises(CarError, match="no expression set 'annot1'"):
        ShapesVideoDataset(expression_sets=["annot1"])


def test_merge_rule_higher_score_wins_then_map_then_lower_id():
    masks = np.zeros((3, 2, 4), bool)
    masks[0, :, :3] = True  # object 5
    masks[1, :, 1:] = True  # object 2
    masks[2, :, 3] = True   # object 9
    maps = np.zeros((3, 2, 4), np.float32)
    maps[0] = 0.9
    maps[1] = 0.1
    maps[2, 0] = 0.95
    label = merge_object_masks(masks, np.array([0.4, 0.7, 0.7]), [5, 2, 9], maps)
    # column 0: only 5; columns 1-2: 2 beats 5 on score; column 3: 2 and 9 tie on score, the map decides
    assert label.tolist() == [[5, 2, 2, 9], [5, 2, 2, 2]]
    maps[2, 1] = 0.1  # equal score and equal map: the lower id
    assert merge_object_masks(masks, np.array([0.4, 0.7, 0.7]), [5, 2, 9], maps)[1, 3] == 2
    assert merge_object_masks(np.zeros((0, 2, 4), bool), np.zeros(0), [], np.zeros((0, 2, 4))).sum() == 0


def test_video_car_embeds_each_text_once_per_run(tiny_video_car):
    segmenter, calls = tiny_video_car
    item = ShapesVideoDataset(num_videos=1, num_frames=4, expression_sets=["name"])[0]
    labels, info = segmenter(item)
    assert labels.dtype == np.uint8 and labels.shape == (4, 64, 64) and info["frames"] == 4
    assert set(np.unique(labels).tolist()) <= {0, *item["expressions"]}
    for role, texts in calls.items():  # each text encoder (proposal, classifier) embeds a string once per run
        flat = [t for batch in texts for t in batch if t]  # "" pads a batch to its fixed size (car/clip/text.py)
        assert len(flat) == len(set(flat)), role
    assert any(item["expressions"][1] in t for batch in calls["proposal"] for t in batch)


class CountingClip:
    """A ClipModel stand-in that records what its tokenizer is asked to embed."""

    def __init__(self, clip, calls: list):
        self._clip, self._calls = clip, calls

    def __getattr__(self, name):
        return getattr(self._clip, name)

    def tokenizer(self, texts, *args, **kwargs):
        self._calls.append(list(texts))
        return self._clip.tokenizer(texts, *args, **kwargs)


@pytest.fixture
def tiny_video_car():
    from car.config import compose
    from car.run.build import build_segmenter, load_backbones
    from car.settings import validate

    cfg = validate(compose(["dataset=shapes_video", "paths.cache_dir=null"]))  # no text cache: count every embedding
    segmenter = build_segmenter(cfg, *load_backbones(cfg))
    calls: dict[str, list] = {"proposal": [], "classifier": []}
    segmenter.car.text.clip = CountingClip(segmenter.car.text.clip, calls["proposal"])
    segmenter.car.classifier.text.clip = CountingClip(segmenter.car.classifier.text.clip, calls["classifier"])
    return segmenter, calls


def test_video_measures_score_each_set_and_average():
    gt = np.zeros((3, 8, 8), np.uint8)
    gt[:, 2:6, 2:6] = 1
    measures = VideoMeasures()
    measures.update(torch.from_numpy(gt.copy()), torch.from_numpy(gt), sequence="a", expression_set="s1")
    measures.update(np.zeros_like(gt), gt, sequence="a", expression_set="s2")
    scores = measures.compute()
    assert scores["expression_sets"]["s1"]["j_and_f"] == pytest.approx(100.0)
    assert scores["expression_sets"]["s2"]["j_and_f"] == pytest.approx(0.0)
    assert scores["j_and_f"] == pytest.approx(50.0) and scores["num_videos"] == 1
    assert scores["expression_sets"]["s1"]["per_video"]["a"]["j"] == pytest.approx(100.0)
    with pytest.raises(CarError, match="differ in shape"):
        measures.update(gt[:2], gt, sequence="b", expression_set="s1")
    with pytest.raises(CarError, match="appears twice"):
        measures.update(gt, gt, sequence="a", expression_set="s1")


def test_davis_writer_writes_whole_palette_videos(tmp_path):
    labels = np.zeros((2, 6, 7), np.uint8)
    labels[1, 1:3, 2:5] = 3
    sample = {"video_id": "clip-1", "expression_set": "annot1", "frame_ids": ["00000", "00001"],
              "target": labels}
    writer = DavisWriter(tmp_path / "davis", tmp_path / "root")
    folder = writer.write(sample, labels)
    assert folder == tmp_path / "davis" / "annot1" / "clip-1"
    with Image.open(folder / "00001.png") as png:
        assert png.mode == "P" and np.array_equal(np.array(png), labels[1])
    assert (tmp_path / "root" / "ImageSets" / "2017" / "val.txt").read_text() == "clip-1\n"
    assert (tmp_path / "root" / "Annotations_unsupervised" / "480p" / "clip-1" / "00000.png").is_file()
    assert not [p for p in (tmp_path / "davis" / "annot1").iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(CarError, match="frame id '../x'"):  # never a path out of the run directory
        writer.write({**sample, "frame_ids": ["00000", "../x"]}, labels)
    with pytest.raises(CarError, match="2 frame ids but 1 predicted"):
        writer.write(sample, labels[:1])


@pytest.mark.bad_input("dataset.loader._target_ naming a loader this installation lacks", "car-evaluate")
def test_a_loader_this_installation_lacks_is_one_sentence(answer):
    from car.config import compose
    from car.data.build import build_dataset
    from car.run.inputs import dataset_problem
    from car.settings import validate

    settings = validate(compose(["dataset=shapes_video", "dataset.loader._target_=car.data.no_such_module.Loader"]))
    with pytest.raises(CarError, match="names car.data.no_such_module.Loader, which this installation does not have"):
        build_dataset(settings)
    assert "does not have" in dataset_problem(settings)
    answer(dataset_problem(settings))


def test_separately_runs_one_unpruned_car_per_expression():
    from car.config import compose
    from car.run.build import build_segmenter, load_backbones
    from car.settings import validate

    cfg = validate(compose(["dataset=shapes_video", "dataset.video.expressions=separately"]))
    segmenter = build_segmenter(cfg, *load_backbones(cfg))
    item = ShapesVideoDataset(num_videos=1, num_frames=2, expression_sets=["name"])[0]
    labels, info = segmenter(item)
    ids = sorted(item["expressions"])
    assert labels.shape == (2, 64, 64) and set(np.unique(labels).tolist()) <= {0, *ids}
    for kept, scores in zip(info["kept"], info["scores"]):  # K = 1: never pruned, every final score 1
        assert kept == ids and all(score == pytest.approx(1.0) for score in scores.values())


def test_an_unknown_expression_set_is_one_sentence():
    from car.data.shapes_video import ShapesVideoDataset
    from car.errors import CarError

    with pytest.raises(CarError, match=r"^shapes_video has no expression set 'colour'; its sets are name, phrase\.$"):
        ShapesVideoDataset(expression_sets=["name", "colour"])
    assert ShapesVideoDataset(num_videos=1, num_frames=1).expression_sets == ["name", "phrase"]
