"""The web demo's video part (car-demo): upload a clip, type phrases, get the overlay video back.

The clip runs through car-segment's video path (car/apps/segment_video.py: the phrases embedded
once, every frame segmented with the page's η, θ, λ and post-processing, per-frame label PNGs, an
H.264 yuv420p overlay mp4 that the browser plays, a JSON summary). The demo segments at most
DEMO_MAX_FRAMES frames of a clip so that the page answers in reasonable time; car-segment does whole
videos. Offline (the shapes profile) a short clip of sliding glyphs is offered as an example.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from car.errors import CarError

DEMO_MAX_FRAMES = 48  # frames segmented per uploaded clip (2 s at 24 frames/s)
EXAMPLE_FRAMES, EXAMPLE_FPS, EXAMPLE_SCALE = 12, 6.0, 6  # the shapes example: 2 s, 64 px scenes shown at 384 px
EXAMPLE_SCENE = 12  # the shapes val scene of the first image example (the tiny CLIP finds its glyphs)


def shapes_video_example(out_dir: Path) -> list[list]:
    """A shapes scene whose glyphs slide 2 px per frame, as an mp4, with the ten class names as phrases."""
    from car.data.shapes import CLASSES, render_scene, scene_seed
    from car.data.video_io import write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"shapes_val_{EXAMPLE_SCENE:05d}.mp4"
    if not path.is_file():
        image = render_scene(scene_seed("val", EXAMPLE_SCENE))["image"]  # [64, 64, 3]
        frames = [np.roll(image, 2 * t, axis=1) for t in range(EXAMPLE_FRAMES)]
        write_video(path, [np.kron(f, np.ones((EXAMPLE_SCALE, EXAMPLE_SCALE, 1), np.uint8)) for f in frames],
                    EXAMPLE_FPS)
    return [[str(path), ", ".join(CLASSES)]]


def phrase_rows(record: dict) -> list[list]:
    """phrase | frames kept | frames with pixels | mean final score: one row per phrase."""
    total = record["frames"]
    return [[p["text"], f"{p['frames_kept']} / {total}", f"{p['frames_present']} / {total}",
             "-" if p["mean_score"] is None else f"{p['mean_score']:.4f}"] for p in record["phrases"]]


def run_video(backend, video, phrases: str, eta: float, theta: float, lam: float, post: str):
    """-> (overlay mp4 path, phrase rows, download paths, a one-line summary)."""
    import json

    from car.apps.segment_video import save_video
    from car.data.video_io import open_video

    if not video:
        raise CarError("Upload a video first (or click the example).")
    texts = [t.strip() for t in (phrases or "").split(",") if t.strip()]
    if not texts:
        raise CarError('Type at least one phrase, e.g. "cat, dog" (comma-separated).')
    source = open_video(video)
    seg = backend.segmenter(eta, theta, lam, post)
    backend.count += 1
    out_dir = backend.out_root / f"{backend.count:04d}"
    stem = Path(video).stem
    files = save_video(seg, source, texts, out_dir, stem, {"settings": seg.settings()}, DEMO_MAX_FRAMES)
    masks = shutil.make_archive(str(out_dir / f"{stem}_masks"), "zip", files["masks"])  # the per-frame PNGs
    record = json.loads(Path(files["json"]).read_text())
    t = record["timings"]
    cut = "" if source.frame_count is None or source.frame_count <= DEMO_MAX_FRAMES else \
        f" (the first {DEMO_MAX_FRAMES} of {source.frame_count}; car-segment does whole videos)"
    height, width = record["size"]
    summary = (f"**{record['frames']} frames{cut}**, {width}x{height} at {record['fps']:g} frames/s: "
               f"{t['frames_per_second']:.2f} frames/s segmented, {t['total']:.1f} s in all (phrases embedded "
               f"once: {t['texts']:.2f} s).")
    summary += "".join(f"\n\nNote: {note}" for note in record["notes"])
    return files["overlay"], phrase_rows(record), [masks, files["json"]], summary


def video_section(backend, settings: list) -> None:
    """The video row of the page, inside the caller's gr.Blocks; `settings`: the page's η, θ, λ and
    post-processing inputs, shared with the image part."""
    import gradio as gr

    def run(video, phrases, eta, theta, lam, post):
        try:
            return run_video(backend, video, phrases, eta, theta, lam, post)
        except CarError as err:
            raise gr.Error(str(err)) from None

    gr.Markdown(f"### Video\nEvery frame is segmented with the phrases and the settings above (the first "
                f"{DEMO_MAX_FRAMES} frames of a longer clip); the overlay comes back as a video.")
    with gr.Row(elem_id="car-video-row"):
        with gr.Column():
            # format=None, include_audio=True: the upload as it is (PyAV decodes it; no ffmpeg command needed)
            video = gr.Video(sources=["upload"], format=None, include_audio=True, label="video",
                             elem_id="car-video", height=360)
            phrases = gr.Textbox(label="phrases (comma-separated)", elem_id="car-video-phrases",
                                 placeholder="the red car")
            button = gr.Button("Segment video", variant="primary", elem_id="car-video-run")
            if backend.base.cfg.dataset.name == "shapes":
                gr.Examples(shapes_video_example(backend.out_root.parent / "video_examples"), inputs=[video, phrases],
                            label="example (click it, then Segment video)", elem_id="car-video-examples")
        with gr.Column():
            overlay = gr.Video(format=None, label="overlay", elem_id="car-video-overlay", interactive=False,
                               loop=True, height=360)
            summary = gr.Markdown(elem_id="car-video-summary")
            rows = gr.Dataframe(headers=["phrase", "frames kept", "frames with pixels", "mean score"],
                                label="phrases over the frames", elem_id="car-video-scores", interactive=False)
            files = gr.File(label="per-frame label PNGs (.zip), JSON", file_count="multiple",
                            elem_id="car-video-files")
    button.click(run, inputs=[video, phrases, *settings], outputs=[overlay, rows, files, summary])
