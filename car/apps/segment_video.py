"""`car-segment` on videos: a video file (clip.mp4) or, with --video, a folder of frames.

    car-segment clip.mp4 --texts "the red car" --out seg/
    car-segment frames/ --video --fps 24 --texts "circle,heart" --out seg/

For every video it writes into --out:
  <name>/<frame>.png    one palette PNG per frame whose pixel values are the label ids (0 background,
                        k the k-th phrase), DAVIS-style (a results folder of one sub-folder per video;
                        frames 00000.png, 00001.png ... of a file, the frame files' stems of a folder)
  <name>_overlay.mp4    the masks and phrase names over the frames, H.264 yuv420p at the clip's rate
                        (browsers play it; small frames enlarged like the image overlays)
  <name>.json           per frame the phrases' final scores (null: pruned) and pixels, per phrase its
                        frames kept / present and mean score, frames/s, the settings
Frames stream from the decoder to the outputs (a long clip is never held in memory); the outputs are
written into a temporary folder and take their final names only when the whole video is done. An
earlier run's outputs under the same names are refused unless --overwrite (car/outputs.py), and a
mask folder that would hold or replace the input itself always is.
Videos need PyAV (the `video` extra): pip install "car-bench[video]".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from car.api.video import VideoSummary, iter_frames
from car.data.video_io import VideoSource, VideoWriter, is_video_file, open_video
from car.errors import CarError
from car.outputs import check_output_dir, refuse_existing, write_error, write_json


def add_video_arguments(parser) -> None:
    group = parser.add_argument_group("videos (files with a video suffix, e.g. .mp4; frame folders with --video)")
    group.add_argument("--video", action="store_true",
                       help="read each folder argument as the frames of one video (natural order), not as images")
    group.add_argument("--fps", type=float, help="frame rate of a frame folder's overlay video (default 24), or a "
                       "video file's new rate")
    group.add_argument("--max-frames", type=int, metavar="N", help="segment only the first N frames of each video")


def split_inputs(specs: list[str], folders_are_videos: bool) -> tuple[list[str], list[str]]:
    """Command-line inputs -> (videos, images): files with a video suffix, and folders under --video."""
    videos, images = [], []
    for spec in specs:
        path = Path(spec).expanduser()
        is_video = (is_video_file(path) and not path.is_dir()) or (folders_are_videos and path.is_dir())
        (videos if is_video else images).append(spec)
    return videos, images


class VideoInputs:
    """The videos among car-segment's inputs, checked (first frame decoded, frame headers read) before
    any model loads; `images` are the other inputs, for the image path."""

    def __init__(self, specs: list[str], folders_are_videos: bool = False, fps: float | None = None,
                 max_frames: int | None = None, overwrite: bool = False):
        if max_frames is not None and max_frames < 1:
            raise CarError(f"--max-frames must be at least 1, got {max_frames}.")
        video_specs, self.images = split_inputs(specs, folders_are_videos)
        self.videos = [open_video(spec, fps) for spec in video_specs]
        self.max_frames, self.overwrite = max_frames, overwrite

    @classmethod
    def from_args(cls, args) -> VideoInputs:
        return cls(args.images, args.video, args.fps, args.max_frames, getattr(args, "overwrite", False))

    def __len__(self) -> int:
        return len(self.videos)

    def name_paths(self) -> list[Path]:
        """Paths whose stems are the videos' output names (for car.apps.segment.output_stems, which
        keeps names unique across videos and images)."""
        return [Path(f"{video.name}.video") for video in self.videos]

    def check_outputs(self, out_dir: Path, stems: list[str]) -> None:
        for video, stem in zip(self.videos, stems):
            check_destination(video, output_paths(out_dir, stem), self.overwrite)

    def run(self, seg, phrases: list[str], out_dir: Path, stems: list[str], record: dict) -> None:
        from tqdm import tqdm

        for video, stem in zip(self.videos, stems):
            total = video.frame_count if self.max_frames is None else min(self.max_frames,
                                                                          video.frame_count or self.max_frames)
            with tqdm(total=total, unit="frame", desc=f"car-segment {video.name}") as progress:
                files = save_video(seg, video, phrases, out_dir, stem, record, self.max_frames, progress,
                                   self.overwrite)
            said = set(seg.phrase_notes(phrases))  # car-segment prints those once, before every input
            for note in json.loads(Path(files["json"]).read_text())["notes"]:
                if note not in said:
                    print(f"note: {note}", file=sys.stderr)


def output_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    return {"masks": out_dir / stem, "overlay": out_dir / f"{stem}_overlay.mp4", "json": out_dir / f"{stem}.json"}


def check_destination(video: VideoSource, files: dict[str, Path], overwrite: bool = False) -> None:
    """Refuse outputs that would replace an earlier run's (unless `overwrite`) or the input itself."""
    masks, source = files["masks"].resolve(), video.path.resolve()
    if masks == source or masks in source.parents or source in masks.parents:
        raise CarError(f"The mask folder {files['masks']} would hold or replace the input {video.path}; "
                       f"choose another --out.")
    if masks.exists() and not masks.is_dir():
        raise CarError(f"{files['masks']} is a file where the video's mask folder goes; choose another --out.")
    if not overwrite:
        refuse_existing(files.values(), "pass --overwrite to replace them, or choose another --out")


def save_video(seg, video: VideoSource, phrases: list[str], out_dir: Path, stem: str, record: dict,
               max_frames: int | None = None, progress=None, overwrite: bool = False) -> dict:
    """Segment every frame and write the three outputs; returns {kind: path}. Everything is written
    into a temporary folder first and takes its final name only once the whole video is done."""
    from car.apps.overlay import overlay_image
    from car.reporting.viz import label_png, palette_for

    files = output_paths(check_output_dir(out_dir), stem)
    check_destination(video, files, overwrite)
    colours = palette_for(["background"] + list(phrases))
    summary, timings = VideoSummary(phrases), {}
    start, write = time.perf_counter(), 0.0
    try:
        partial = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{stem}.", suffix=".partial"))
    except OSError as err:
        raise write_error(out_dir, err) from None
    try:
        (partial / "masks").mkdir()
        with VideoWriter(partial / "overlay.mp4", video.fps) as overlay, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)  # notes (a truncated file ...): into the JSON, said once
            for name, result in iter_frames(seg, video, phrases, max_frames, timings):
                tick = time.perf_counter()
                png = partial / "masks" / f"{name}.png"
                try:
                    label_png(result.label_map.astype("uint8"), colours).save(png)  # [H, W] label ids
                except OSError as err:
                    raise write_error(files["masks"] / png.name, err) from None
                overlay.write(overlay_image(result))
                summary.add(name, result)
                write += time.perf_counter() - tick
                if progress is not None:
                    progress.update(1)
        total = time.perf_counter() - start
        timings.update(write=round(write, 4), total=round(total, 4),
                       frames_per_second_end_to_end=round(len(summary.per_frame) / max(total, 1e-9), 3))
        payload = {**record, "video": str(video.path), "fps": video.fps, "frames_declared": video.frame_count,
                   **summary.to_json(), "timings": timings,
                   "notes": list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning))),
                   "files": {k: str(v) for k, v in files.items()}}
        _commit(video, partial, files, payload, overwrite)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {k: str(v) for k, v in files.items()}


def _commit(video: VideoSource, partial: Path, files: dict[str, Path], payload: dict, overwrite: bool) -> None:
    """Three renames and the JSON: the mask folder, the overlay, then the summary (written last)."""
    check_destination(video, files, overwrite)  # again: another run may have written meanwhile
    try:
        if files["masks"].exists():
            os.replace(files["masks"], partial / "replaced")  # removed with the temporary folder
        os.replace(partial / "masks", files["masks"])
        os.replace(partial / "overlay.mp4", files["overlay"])
    except OSError as err:
        raise write_error(files["masks"], err) from None
    write_json(files["json"], payload, overwrite=True, indent=2)
