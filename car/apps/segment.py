"""`car-segment`: CaR on your own images, from the command line.

    car-segment photo.jpg more/ "shots/*.png" --texts "Batman,Superman" --out seg/
    car-segment img.jpg --texts "cat,dog" --profile voc --backbone vitb16 --theta 0.5 --post none --out seg/

For every image it writes into --out: <name>_overlay.png (the masks in distinct colours over the
image, each phrase written on its region), <name>_labels.png (a palette PNG whose pixel values are
the label ids: 0 background, k the k-th phrase), <name>_masks.npz (`masks` [K, H, W] bool, `texts`,
`scores`) and <name>.json (per-phrase scores, the recurrence trace, the settings, timings). Label
map and masks are at the image's own size, whatever car.max_pixels shrank CaR's copy to.

A video file (clip.mp4 ...; with --video, a folder of frames) gives per-frame label PNGs, an overlay
mp4 and a JSON summary instead (car/apps/segment_video.py; needs pip install "car-bench[video]").

IMAGE may be a file, a folder (its images, not recursive) or a glob ("photos/**/*.jpg"). The
profile, backbone and every car.* setting come from the same configs as evaluate.py
(car/api/ builds the segmenter with car.run.build). Bad inputs stop with one sentence and exit 2,
before any model loads: every image is decoded first, --out is created and written to, and files of an
earlier run under the same names are refused unless --overwrite is given. Each file is written
atomically (a temporary name, then a rename), so a full disk leaves no half-written result.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from car.api import (
    DEFAULT_PROFILE,
    CarSegmenter,
    Segmentation,
    backbones,
    clean_phrases,
    profiles,
    read_image,
)
from car.apps.overlay import OVERLAY_MAX_PIXELS, overlay_image
from car.apps.segment_video import VideoInputs, add_video_arguments
from car.errors import CarError
from car.outputs import (
    check_output_dir,
    refuse_existing,
    save_image,
    save_npz,
    write_json,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
POST_CHOICES = ("crf", "sam", "none")


def post_overrides(post: str | None) -> list[str]:
    """--post: crf = the dense CRF (the paper's CaR), sam = CRF then SAM's masks (CaR + SAM), none = raw."""
    if post is None:
        return []
    if post not in POST_CHOICES:
        raise CarError(f"--post must be one of {', '.join(POST_CHOICES)}, got '{post}'.")
    return {"crf": ["car.crf.enabled=true", "postprocess=none"], "sam": ["car.crf.enabled=true", "postprocess=sam"],
            "none": ["car.crf.enabled=false", "postprocess=none"]}[post]


def setting_overrides(theta=None, eta=None, lam=None, post=None, max_pixels=None) -> list[str]:
    """The command's and the demo's named settings as Hydra overrides (same keys as evaluate.py)."""
    out = [f"car.{key}={value}" for key, value in (("theta", theta), ("eta", eta), ("lambda", lam),
                                                   ("max_pixels", max_pixels)) if value is not None]
    return out + post_overrides(post)


def expand_images(specs: list[str]) -> list[Path]:
    """Files, folders (their images) and globs -> image paths, in order, without repeats."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if any(ch in spec for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise CarError(f"No image matches '{spec}' (looked for {', '.join(IMAGE_SUFFIXES)} files).")
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CarError(f"Folder '{spec}' holds no image ({', '.join(IMAGE_SUFFIXES)} files).")
        elif path.is_file():
            files = [path]
        else:
            raise CarError(f"Image '{spec}' does not exist.")
        found += files
    return list(dict.fromkeys(found))


def check_readable(paths: list[Path]) -> None:
    """Decode every image fully through the one image reader (car/data/images.py) before any model
    loads, so a truncated file, a float image outside [0, 1] or NaN pixels stop the batch within
    seconds, not after the images before it ran."""
    for path in paths:
        read_image(path)


def output_stems(paths: list[Path]) -> list[str]:
    """One output name per image: the file's stem, made unique with -2, -3 ... across folders."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def image_outputs(out_dir: Path, stem: str) -> dict[str, Path]:
    """The four files car-segment writes for one image."""
    return {"overlay": out_dir / f"{stem}_overlay.png", "labels": out_dir / f"{stem}_labels.png",
            "masks": out_dir / f"{stem}_masks.npz", "json": out_dir / f"{stem}.json"}


def save_segmentation(result: Segmentation, out_dir: Path, stem: str, record: dict,
                      overlay_max_pixels: int = OVERLAY_MAX_PIXELS, overwrite: bool = True) -> dict:
    """Write the four files of one image, each atomically (car/outputs.py); returns {kind: path} (also
    stored in the JSON). overwrite=False never replaces an existing file. The overlay of an image above
    `overlay_max_pixels` is drawn shrunk; labels and masks are full size."""
    from PIL import Image

    from car.reporting.viz import label_png, palette_for

    start = time.perf_counter()
    files = image_outputs(out_dir, stem)
    save_image(Image.fromarray(overlay_image(result, overlay_max_pixels)), files["overlay"], overwrite)
    save_image(label_png(result.label_map.astype(np.uint8), palette_for(["background"] + list(result.texts))),
               files["labels"], overwrite)
    scores = np.array([np.nan if s is None else s for s in result.scores], dtype=np.float32)
    save_npz(files["masks"], overwrite, masks=result.masks, texts=np.array(result.texts), scores=scores)
    payload = {**record, **result.to_json(), "files": {k: str(v) for k, v in files.items()}}
    payload["timings"] = {**payload["timings"], "write": round(time.perf_counter() - start, 4)}
    write_json(files["json"], payload, overwrite, indent=2)
    return {k: str(v) for k, v in files.items()}


def phrases_from(texts: list[str] | None, text: list[str] | None) -> list[str]:
    """--texts "a,b,c" (comma-separated, repeatable) and --text "one phrase, commas kept" (repeatable)."""
    phrases = [p for group in texts or [] for p in group.split(",")] + list(text or [])
    if not any(p.strip() for p in phrases):
        raise CarError('No phrase given: pass the phrases to find, e.g. --texts "cat,dog".')
    return clean_phrases(phrases)  # at most 254, each once


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="car-segment", description=__doc__.split("\n\n")[0],
                                     epilog="Profiles: " + ", ".join(profiles()) + ". Backbones: "
                                     + ", ".join(backbones()) + ".")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs; video files "
                        "(.mp4 ...) and, with --video, frame folders (car/apps/segment_video.py)")
    parser.add_argument("--texts", action="append", metavar="A,B,...", help="comma-separated phrases (repeatable)")
    parser.add_argument("--text", action="append", metavar="PHRASE",
                        help="one phrase, commas kept (CaR reads 'person,people' as synonyms); repeatable")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created); files of an earlier "
                        "run with the same names are never replaced unless --overwrite is given")
    parser.add_argument("--overwrite", action="store_true", help="replace the files an earlier run wrote under the "
                        "same names (without it, car-segment refuses before any model loads)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"dataset profile for thresholds, prompts, background words (default {DEFAULT_PROFILE})")
    parser.add_argument("--backbone", help="conf/backbone name (default: the profile's)")
    parser.add_argument("--weights", help="CLIP weights for both CLIPs: a local checkpoint file or an open_clip tag")
    parser.add_argument("--theta", type=float, help="θ: a phrase survives a step if its score is above θ")
    parser.add_argument("--eta", type=float, help="η: binarises a proposal map for its visual prompt")
    parser.add_argument("--lam", type=float, help="λ: box threshold of the attention-affinity refinement")
    parser.add_argument("--post", choices=POST_CHOICES, help="crf (default of the profiles), sam (needs SAM weights) "
                        "or none")
    parser.add_argument("--max-pixels", type=int, help="pixel budget: larger images run on a shrunk copy")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other override of the configs, e.g. car.prompts=[circle,blur] (repeatable)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    add_video_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    written = 0
    try:
        phrases = phrases_from(args.texts, args.text)
        videos = VideoInputs.from_args(args)  # video files (and --video folders), checked before the model loads
        paths = expand_images(videos.images)
        check_readable(paths)
        out_dir = check_output_dir(args.out, "--out", create=False)  # a file in the way, read-only, full: now
        stems = output_stems(videos.name_paths() + paths)
        videos.check_outputs(out_dir, stems)  # a video's earlier outputs: refused unless --overwrite
        if not args.overwrite:
            earlier = [p for stem in stems[len(videos):] for p in image_outputs(out_dir, stem).values()]
            refuse_existing(earlier, "pass --overwrite to replace them, or choose another --out")
        overrides = setting_overrides(args.theta, args.eta, args.lam, args.post, args.max_pixels) + list(args.set)
        seg = CarSegmenter.from_profile(args.profile, args.backbone, overrides, args.weights, args.device)
        from tqdm import tqdm

        for note in seg.phrase_notes(phrases):  # said once here, not once per image
            print(f"note: {note}", file=sys.stderr)
        settings = seg.settings()
        record = {"settings": settings, "model_load_seconds": round(seg.load_seconds, 3)}
        videos.run(seg, phrases, out_dir, stems, record)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the API's per-call phrase notes, printed above
            for path, stem in zip(tqdm(paths, unit="image", desc="car-segment", disable=not paths),
                                  stems[len(videos):]):
                result = seg(path, phrases)
                save_segmentation(result, out_dir, stem, {"image": str(path), "settings": settings,
                                                          "model_load_seconds": round(seg.load_seconds, 3)},
                                  overwrite=args.overwrite)
                written += 1
    except CarError as err:
        done = f" ({written} of {len(paths)} images were written before it)." if written else ""
        print(f"error: {str(err).rstrip('.') + done if done else err}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} image(s){f' and {len(videos)} video(s)' if len(videos) else ''} into {out_dir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
