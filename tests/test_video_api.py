"""CarSegmenter.video (issue #27): CaR on a list of frames, a video file or a frame folder, with the
phrases embedded once per video and every frame segmented exactly as the same picture as an image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from car.api import CarSegmenter, compose_profile
from car.errors import CarError
from tests.video_helpers import clip_frames, save_clip, save_frame_folder

PHRASES = ["circle", "heart", "ring", "square"]


@pytest.fixture(scope="module")
def seg():
    return CarSegmenter.from_profile("shapes", overrides=["car.crf.enabled=false"])


def test_frames_match_the_image_path(seg):
    """Same settings as images: frame t's label map and scores are those of seg(frame t)."""
    frames = clip_frames(3)
    video = seg.video(frames, PHRASES, fps=5)
    assert video.fps == 5.0 and video.frame_names == ["00000", "00001", "00002"] and video.source is None
    assert video.label_maps.shape == (3, 64, 64) and video.label_maps.dtype == np.int64
    for frame, result in zip(frames, video.frames):
        alone = seg(frame, PHRASES)
        assert np.array_equal(result.label_map, alone.label_map) and result.scores == alone.scores
    assert video.label_maps.any()  # the tiny CLIP finds the glyphs: not an all-background clip
    record = json.loads(json.dumps(video.to_json()))  # JSON-ready
    assert record["frames"] == 3 and record["texts"] == PHRASES and record["size"] == [64, 64]
    assert [f["scores"] for f in record["per_frame"]] == video.scores
    for k, phrase in enumerate(record["phrases"]):
        kept = [s[k] for s in video.scores if s[k] is not None]
        assert phrase["frames_kept"] == len(kept)
        assert phrase["frames_present"] == int(sum((m == k + 1).any() for m in video.label_maps))
        assert phrase["mean_score"] == (pytest.approx(np.mean(kept), abs=1e-6) if kept else None)
    assert record["timings"]["frames_per_second"] > 0


def test_text_embeddings_once_per_video(seg, monkeypatch):
    """Every text is encoded before the first frame (CaR.embed_texts); no frame encodes any text."""
    cfg = compose_profile("shapes", overrides=["car.crf.enabled=false", "paths.cache_dir=null"])
    fresh = CarSegmenter(cfg, clips=seg.clips)  # empty text caches (none on disk either), same CLIPs
    calls: list[tuple[int, int]] = []  # (frames whose CaR run had started, texts encoded)
    started = {"frames": 0}
    proposals = fresh.segmenter.car.proposals
    encode_image = proposals.encode

    def counting_image(*args, **kwargs):  # the first thing CaR does on a frame
        started["frames"] += 1
        return encode_image(*args, **kwargs)

    monkeypatch.setattr(proposals, "encode", counting_image)
    clips = {id(c): c for c in (fresh.segmenter.car.text.clip, fresh.segmenter.car.classifier.clip)}
    for clip in clips.values():
        original = clip.model.encode_text

        def counting(tokens, *args, _original=original, **kwargs):
            calls.append((started["frames"], int(tokens.shape[0])))
            return _original(tokens, *args, **kwargs)

        monkeypatch.setattr(clip.model, "encode_text", counting)
    from car.api.video import iter_frames, video_source

    assert sum(1 for _ in iter_frames(fresh, video_source(clip_frames(3)), PHRASES)) == 3
    assert started["frames"] == 3 and calls
    assert all(frames == 0 for frames, _ in calls), calls  # all before the first frame


def test_video_file_and_frame_folder(seg, tmp_path):
    frames = clip_frames(4)
    path = save_clip(tmp_path / "clip.mp4", frames, fps=6)
    video = seg.video(path, PHRASES, max_frames=2)
    assert video.source == str(path) and video.fps == 6.0 and video.frame_names == ["00000", "00001"]
    save_frame_folder(tmp_path / "frames", frames[:2], pattern="img{}.png")
    folder = seg.video(str(tmp_path / "frames"), PHRASES)
    assert folder.fps == 24.0 and folder.frame_names == ["img0", "img1"]
    for t in range(2):  # PNG frames are the pictures themselves
        assert np.array_equal(folder.label_maps[t], seg(frames[t], PHRASES).label_map)
    stacked = seg.video(np.stack(frames[:2]), PHRASES)  # a [T, H, W, 3] array
    assert np.array_equal(stacked.label_maps, folder.label_maps)


def test_bad_video_inputs(seg, tmp_path):
    with pytest.raises(CarError, match="frame list is empty"):
        seg.video([], PHRASES)
    with pytest.raises(CarError, match="Frame 1 is 128x128 but frame 0 is 64x64"):
        seg.video([clip_frames(1)[0], clip_frames(1, scale=2)[0]], PHRASES)
    with pytest.raises(CarError, match="phrase list is empty"):
        seg.video(clip_frames(1), [" "])
    with pytest.raises(CarError, match="max_frames must be at least 1"):
        seg.video(clip_frames(1), PHRASES, max_frames=0)
    with pytest.raises(CarError, match="does not exist"):
        seg.video(tmp_path / "nope.mp4", PHRASES)
    with pytest.raises(CarError, match="a path .* or a list of frames"):
        seg.video(42, PHRASES)


def test_profiles_are_the_semantic_configs():
    """The video and referring benchmarks (shapes_video, ref_davis17, refcoco*) are not offered as
    profiles: every listed profile composes as a semantic config, every other dataset config does not."""
    from car.api import profiles
    from car.config import CONFIG_DIR, compose

    listed = set(profiles())
    assert {"shapes", "voc"} <= listed
    for path in sorted((CONFIG_DIR / "dataset").glob("*.yaml")):
        task = compose([f"dataset={path.stem}"]).dataset.get("task", "semantic")
        assert (task == "semantic") == (path.stem in listed), path.stem
    with pytest.raises(CarError, match="Unknown profile 'shapes_video'"):
        compose_profile("shapes_video")
