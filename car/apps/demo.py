"""`car-demo`: CaR in the browser (Gradio). Upload an image, type phrases, move η, θ, λ, choose the
post-processing, and see the overlay, each phrase's final score and the recurrence trace (which
phrase was pruned at which step). A video (upload a clip) comes back as an overlay video
(car/apps/demo_video.py).

    car-demo                                   # offline: the embedded tiny CLIP, shapes examples
    car-demo --profile voc --backbone vitb16 --weights /models/ViT-B-16.pt    # real photos
    car-demo --profile voc                     # the paper's ViT-B/16 + ViT-L/14 pair (open_clip 'openai')

The segmenter is car.api.CarSegmenter (the configs and builders of evaluate.py); a slider change
recomposes the config with the new values and rebuilds CaR around the already loaded CLIPs. Large
photos run on a copy within car.max_pixels; the downloadable label PNG and masks are full size.
Needs the `demo` extra: pip install "car-bench[demo]".
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from car.api import DEFAULT_PROFILE, CarSegmenter, Segmentation, backbones, profiles
from car.apps.demo_video import video_section
from car.apps.segment import POST_CHOICES, save_segmentation, setting_overrides
from car.errors import CarError

SHAPES_EXAMPLES = (12, 18, 16)  # shapes val scenes shown as examples (the tiny CLIP finds most of their glyphs)
EXAMPLE_SCALE = 6  # 64x64 scenes enlarged (nearest) to 384x384 for display; CaR's budget shrinks them back
DISPLAY_MAX_PIXELS = 2_000_000  # the overlay shown in the page; the downloads are full size


def shapes_examples(out_dir: Path) -> list[list]:
    """A few shapes val scenes as PNGs (64x64 enlarged for display) with all ten class names as phrases."""
    from PIL import Image

    from car.data.shapes import CLASSES, render_scene, scene_seed

    out_dir.mkdir(parents=True, exist_ok=True)
    examples = []
    for i in SHAPES_EXAMPLES:
        path = out_dir / f"shapes_val_{i:05d}.png"
        if not path.is_file():
            image = render_scene(scene_seed("val", i))["image"]
            big = np.repeat(np.repeat(image, EXAMPLE_SCALE, axis=0), EXAMPLE_SCALE, axis=1)
            Image.fromarray(big).save(path)
        examples.append([str(path), ", ".join(CLASSES)])
    return examples


def folder_examples(folder: Path, phrases: str) -> list[list]:
    from car.apps.segment import expand_images

    return [[str(p), phrases] for p in expand_images([str(folder)])]


def score_rows(result: Segmentation) -> list[list]:
    """phrase | final score | status | area: one row per phrase."""
    rows = []
    for p in result.phrases():
        status = "kept" if p["kept"] else f"pruned at step {p['pruned_at_step']}"
        score = f"{p['score']:.4f}" if p["score"] is not None else f"({p['last_score']:.4f})"
        rows.append([p["text"], score, status, f"{100 * p['area']:.1f} %"])
    return rows


def trace_rows(result: Segmentation) -> list[list]:
    """step | phrase | score | decision: one row per phrase alive at each step."""
    rows = []
    for step in result.trace:
        for text, score in zip(step["live"], step["scores"] or [None] * len(step["live"])):
            decision = "pruned" if text in step["pruned"] else "kept"
            rows.append([step["step"], text, "-" if score is None else f"{score:.4f}", decision])
    return rows


class DemoBackend:
    """The segmenter behind the page: one CarSegmenter per setting, sharing the loaded CLIPs."""

    def __init__(self, seg: CarSegmenter, out_root: Path, cache_size: int = 4):
        self.base = seg
        self.out_root = out_root
        self.cache: OrderedDict[tuple, CarSegmenter] = OrderedDict()
        self.cache_size = cache_size
        self.count = 0

    def defaults(self) -> dict:
        s = self.base.settings()
        post = "sam" if s["postprocess"] == "sam" else ("crf" if s["crf"] else "none")
        return {"eta": s["eta"], "theta": s["theta"], "lam": s["lambda"], "post": post}

    def segmenter(self, eta: float, theta: float, lam: float, post: str) -> CarSegmenter:
        d = self.defaults()
        if (eta, theta, lam, post) == (d["eta"], d["theta"], d["lam"], d["post"]):
            return self.base
        key = (round(float(eta), 4), round(float(theta), 4), round(float(lam), 4), post)
        if key not in self.cache:
            self.cache[key] = self.base.with_overrides(setting_overrides(key[1], key[0], key[2], post))
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        return self.cache[key]

    def run(self, image, phrases: str, eta: float, theta: float, lam: float, post: str):
        """-> (overlay PNG path, score rows, trace rows, download paths, a one-line summary)."""
        if image is None:
            raise CarError("Upload an image first (or click one of the examples).")
        texts = [t.strip() for t in (phrases or "").split(",") if t.strip()]
        if not texts:
            raise CarError('Type at least one phrase, e.g. "cat, dog" (comma-separated).')
        try:
            seg = self.segmenter(eta, theta, lam, post)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the phrase notes: shown in the summary
                result = seg(image, texts)
            self.count += 1
            stem = Path(image).stem if isinstance(image, (str, Path)) else "image"
            out_dir = self.out_root / f"{self.count:04d}"
            record = {"image": Path(image).name if isinstance(image, (str, Path)) else None,
                      "settings": seg.settings()}
            files = save_segmentation(result, out_dir, stem, record, overlay_max_pixels=DISPLAY_MAX_PIXELS)
        except CarError as err:
            raise CarError(self.public(str(err), image)) from None
        h, w = result.label_map.shape
        size = f"{w}x{h}"
        if result.resized:
            small = result.resized["resized_to"]
            size += f" (CaR ran on {small[1]}x{small[0]}; masks at full size)"
        kept = sum(s is not None for s in result.scores)
        summary = (f"**{kept} of {len(texts)} phrases kept** after {len(result.trace)} steps, image {size}, "
                   f"{result.timings['total']:.2f} s (CLIPs {result.timings['car']:.2f} s, "
                   f"{post} {result.timings['post']:.2f} s).")
        summary += "".join(f"\n\nNote: {note}" for note in result.notes)
        return (files["overlay"], score_rows(result), trace_rows(result),
                [files["labels"], files["masks"], files["json"]], summary)

    def public(self, message: str, image) -> str:
        """`message` without the server's folders: an upload's temporary path becomes its file name."""
        if isinstance(image, (str, Path)):
            message = message.replace(str(Path(image)), Path(image).name)
        return message.replace(str(self.out_root), "the demo's result folder")


def build_app(backend: DemoBackend, examples: list[list]):
    import gradio as gr

    d = backend.defaults()
    settings = backend.base.settings()
    arch = settings["backbone"]["proposal"]["arch"], settings["backbone"]["classifier"]["arch"]

    def run(image, phrases, eta, theta, lam, post):
        try:
            return backend.run(image, phrases, eta, theta, lam, post)
        except CarError as err:
            raise gr.Error(str(err)) from None

    with gr.Blocks(title="CaR: CLIP as RNN", analytics_enabled=False) as app:
        gr.Markdown(f"## CaR (CLIP as RNN): segment anything you can name\nProfile **{settings['profile']}**, "
                    f"CLIPs **{arch[0]}** (proposals) and **{arch[1]}** (classifier). Each step CaR makes a "
                    "mask per phrase and prunes the phrases whose masked image scores at or below θ, until "
                    "nothing is pruned.")
        with gr.Row():
            with gr.Column():
                # image_mode=None: the uploaded file as it is (no re-encoding of a phone photo; car.api reads it,
                # EXIF orientation included)
                image = gr.Image(type="filepath", image_mode=None, label="image", elem_id="car-image", height=360)
                phrases = gr.Textbox(label="phrases (comma-separated)", elem_id="car-phrases",
                                     placeholder="cat, dog, sofa")
                with gr.Row():
                    eta = gr.Slider(0.0, 1.0, value=d["eta"], step=0.05, label="η (prompt mask threshold)",
                                    elem_id="car-eta")
                    theta = gr.Slider(0.0, 1.0, value=d["theta"], step=0.05, label="θ (pruning threshold)",
                                      elem_id="car-theta")
                    lam = gr.Slider(0.0, 1.0, value=d["lam"], step=0.05, label="λ (affinity box threshold)",
                                    elem_id="car-lambda")
                post = gr.Radio(list(POST_CHOICES), value=d["post"], label="post-processing (sam needs SAM weights)",
                                elem_id="car-post")
                button = gr.Button("Segment", variant="primary", elem_id="car-run")
                if examples:
                    gr.Examples(examples, inputs=[image, phrases], label="examples (click one, then Segment)",
                                elem_id="car-examples")
            with gr.Column():
                overlay = gr.Image(label="overlay", type="filepath", format="png", elem_id="car-overlay",
                                   interactive=False, height=360)
                summary = gr.Markdown(elem_id="car-summary")
                scores = gr.Dataframe(headers=["phrase", "final score", "status", "area"], label="phrases",
                                      elem_id="car-scores", interactive=False)
                trace = gr.Dataframe(headers=["step", "phrase", "score", "decision"],
                                     label="recurrence trace (score ≤ θ: pruned)", elem_id="car-trace",
                                     interactive=False)
                files = gr.File(label="full-size label PNG, masks (.npz), JSON", file_count="multiple",
                                elem_id="car-files")
        button.click(run, inputs=[image, phrases, eta, theta, lam, post],
                     outputs=[overlay, scores, trace, files, summary])
        video_section(backend, [eta, theta, lam, post])  # car/apps/demo_video.py: upload a clip, overlay video back
    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="car-demo", description=__doc__.split("\n\n")[0],
                                     epilog="Profiles: " + ", ".join(profiles()) + ". Backbones: "
                                     + ", ".join(backbones()) + ".")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"dataset profile (default {DEFAULT_PROFILE})")
    parser.add_argument("--backbone", help="conf/backbone name (default: the profile's)")
    parser.add_argument("--weights", help="CLIP weights for both CLIPs: a local checkpoint file or an open_clip tag")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--examples", metavar="DIR", help="a folder of example images (default: shapes scenes "
                        "for the shapes profile)")
    parser.add_argument("--example-texts", default="", help="the phrases filled in with --examples images")
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    return parser


def check_port(host: str, port: int) -> None:
    """CarError unless `host:port` can be served (checked before any model loads)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a listener still blocks it
        try:
            probe.bind((host, port))
        except OSError as err:
            why = "already in use" if err.errno == errno.EADDRINUSE else (err.strerror or str(err)).lower()
            raise CarError(f"Cannot serve on {host}:{port}: {why}; choose another --port (or stop the program "
                           f"using it).") from None


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM); the temporary folder of results is removed on the way out."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry or version check
    work = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a plain kill also cleans up
    try:
        try:
            import gradio as gr
        except ImportError:
            raise CarError('car-demo needs Gradio: pip install "car-bench[demo]".') from None
        check_port(args.host, args.port)
        seg = CarSegmenter.from_profile(args.profile, args.backbone, args.set, args.weights, args.device)
        work = Path(tempfile.mkdtemp(prefix="car-demo-"))
        if args.examples:
            examples = folder_examples(Path(args.examples), args.example_texts)
        elif seg.cfg.dataset.name == "shapes":
            examples = shapes_examples(work / "examples")
        else:
            examples = []
        app = build_app(DemoBackend(seg, work / "results"), examples)
        theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],  # no web fonts: works offline
                                  font_mono=["ui-monospace", "monospace"])
        try:
            _, url, _ = app.queue().launch(server_name=args.host, server_port=args.port, share=False, theme=theme,
                                           show_error=True, ssr_mode=False, allowed_paths=[str(work)],
                                           footer_links=[], prevent_thread_lock=True, quiet=True)
        except OSError as err:  # the port was taken between the check and the launch
            raise CarError(f"Cannot serve on {args.host}:{args.port} ({str(err).splitlines()[0]}); choose "
                           f"another --port.") from None
        print(f"car-demo: {url.rstrip('/')}", flush=True)  # the address the server actually owns
        app.block_thread()  # until Ctrl-C / SIGTERM
    except CarError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
