"""Overlay pictures: label maps painted on images, with the names written on their regions.

One drawing path for the run report's gallery, the overlay PNGs of a run and single-image tools:

* `overlay_labels(image, label_map, names)`: the masks in distinct colours on the image, each class
  (or phrase) name written on its region, the font scaled to the image;
* `overlay(image, target, pred, names)`: image | ground truth | prediction panels, small images
  upscaled (nearest neighbour) to at least `MIN_LONG_SIDE` px, titles above the panels and a legend
  of the classes shown, the ignore colour included where the ground truth has it;
* `label_png(label_map, palette)`: a palette PNG of a label map (the values are the class ids);
* `palette_for(names)`: the VOC colour map for VOC's label set, well-separated colours otherwise.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from car.outputs import id_path, save_image

IGNORE = 255
WIDE_IGNORE = 65535  # the ignore index of the 16-bit label spaces (ADE-847, Context-459)
IGNORE_COLOUR = (255, 255, 255)
MIN_LONG_SIDE = 384  # overlay panels are upscaled to at least this many px on the long side
ALPHA = 0.55  # weight of the label colour over the image
VOC_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor")
# Well-separated colours for the first classes after background (matplotlib's tab10, then the
# paired lighter tab20 shades); background is black, the ignore index white, as in VOC's map.
SEPARATED = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
             "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
             "#dbdb8d", "#9edae5")


def palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (bit-interleaved), [n, 3] uint8; index 255 (ignore) is white."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    if n > IGNORE:
        cmap[IGNORE] = IGNORE_COLOUR
    return cmap


voc_palette = palette  # label_png's default; its `palette` argument shadows the function


def separated_palette(n: int = 256) -> np.ndarray:
    """[n, 3] uint8: black background, `SEPARATED` for classes 1-20, then hues spaced by the golden
    angle at alternating lightness; index 255 (ignore) white."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(1, n):
        if i <= len(SEPARATED):
            hexa = SEPARATED[i - 1].lstrip("#")
            cmap[i] = [int(hexa[k:k + 2], 16) for k in (0, 2, 4)]
        else:
            hue = (i * 0.618033988749895) % 1.0
            light, sat = (0.45, 0.85) if i % 2 else (0.65, 0.7)
            cmap[i] = [round(255 * v) for v in colorsys.hls_to_rgb(hue, light, sat)]
    if n > IGNORE:
        cmap[IGNORE] = IGNORE_COLOUR
    return cmap


def is_voc_like(names: list[str]) -> bool:
    """VOC's label set (21 classes with background, or its 20 foreground classes)."""
    norm = [str(n).lower().replace(" ", "") for n in names]
    return norm in (list(VOC_NAMES), list(VOC_NAMES[1:]))


def palette_for(names: list[str]) -> np.ndarray:
    """The standard VOC colour map for VOC-like label sets, `separated_palette` for any other."""
    return palette() if is_voc_like(names) else separated_palette()


def colour_ids(labels) -> np.ndarray:
    """Palette index (0-255) of each label: the label itself below 255, 255 (white) for the ignore
    indices 255 and 65535, and the ids of label spaces above 255 (ADE-847, Context-459) wrapped
    around 1..254."""
    labels = np.asarray(labels).astype(np.int64)
    out = np.where(labels < IGNORE, labels, 1 + (labels - 1) % (IGNORE - 1))
    out[(labels == IGNORE) | (labels == WIDE_IGNORE)] = IGNORE
    return np.clip(out, 0, IGNORE).astype(np.uint8)


def colorize(labels: np.ndarray, colours: np.ndarray | None = None) -> np.ndarray:
    colours = palette() if colours is None else colours
    return colours[colour_ids(labels)]


def font(size: int):
    """Pillow's scalable default font (Pillow >= 10.1 with FreeType); the fixed bitmap one otherwise."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def font_size(height: int, width: int) -> int:
    return max(11, round(max(height, width) / 28))


def text_colour(rgb) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(fill, outline) readable on a background of colour `rgb`."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return ((0, 0, 0), (255, 255, 255)) if luminance > 150 else ((255, 255, 255), (0, 0, 0))


def label_anchors(mask: np.ndarray, min_area: int, most: int = 4) -> list[tuple[int, int]]:
    """(x, y) of the most interior pixel (farthest from the border) of the region's largest connected
    part and of up to `most` - 1 other parts of at least `min_area` pixels."""
    count, parts, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    chosen = [i for n, i in enumerate(order) if n == 0 or stats[i, cv2.CC_STAT_AREA] >= min_area][:most]
    anchors = []
    for i in chosen:
        dist = cv2.distanceTransform(np.pad(parts == i, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        anchors.append((int(x), int(y)))
    return anchors


def boundaries(label_map: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label."""
    edge = np.zeros(label_map.shape, bool)
    edge[:, :-1] |= label_map[:, 1:] != label_map[:, :-1]
    edge[:-1, :] |= label_map[1:, :] != label_map[:-1, :]
    return edge


def overlay_labels(image: np.ndarray, label_map: np.ndarray, names: list[str], palette: np.ndarray | None = None,
                   label_background: bool = False, alpha: float = ALPHA) -> np.ndarray:
    """[H, W, 3] uint8: `label_map`'s regions painted over `image` in `palette`'s colours (default
    `palette_for(names)`), boundaries in full colour, and each class's name written on its
    largest interior point; label 0 named "background" is painted but not named unless
    `label_background`; the ignore index is painted white and not named."""
    colours = palette_for(names) if palette is None else palette
    labels = np.asarray(label_map)
    painted = colorize(labels, colours).astype(np.float32)
    background = (labels == 0)[..., None] if names and names[0] == "background" else False
    weight = np.where(background, alpha / 2, alpha)  # the background class darkens the image less
    out = (1 - weight) * image.astype(np.float32) + weight * painted
    edge = boundaries(labels)
    out[edge] = painted[edge]
    canvas = Image.fromarray(out.round().astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    h, w = labels.shape
    size = font_size(h, w)
    face = font(size)
    for c in (int(v) for v in np.unique(labels)):
        if c in (IGNORE, WIDE_IGNORE) or (c == 0 and not label_background and names and names[0] == "background"):
            continue
        name = names[c] if 0 <= c < len(names) else str(c)
        left, top, right, bottom = draw.textbbox((0, 0), name, font=face)
        fill, outline = text_colour(colours[colour_ids(c)])
        for x, y in label_anchors(labels == c, min_area=4 * size * size):
            tx = min(max(x - (right - left) // 2, 0), max(w - (right - left), 0)) - left
            ty = min(max(y - (bottom - top) // 2, 0), max(h - (bottom - top), 0)) - top
            draw.text((tx, ty), name, font=face, fill=fill, stroke_width=max(1, size // 10), stroke_fill=outline)
    return np.asarray(canvas)


def label_png(label_map: np.ndarray, palette: np.ndarray | None = None) -> Image.Image:
    """A palette ("P" mode) PNG image of a label map: pixel values are the class ids (0-255), shown in
    `palette`'s colours (default: VOC's)."""
    labels = np.asarray(label_map)
    if labels.ndim != 2 or labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"label_png needs a 2-D label map with values 0-255, got shape {labels.shape}")
    colours = voc_palette() if palette is None else np.asarray(palette, dtype=np.uint8)
    table = np.zeros((256, 3), np.uint8)
    table[: min(len(colours), 256)] = colours[:256]
    img = Image.frombytes("P", (labels.shape[1], labels.shape[0]), np.ascontiguousarray(labels, np.uint8).tobytes())
    img.putpalette(table.ravel().tolist())
    return img


def upscale_factor(height: int, width: int, min_long: int = MIN_LONG_SIDE) -> int:
    """The integer factor that brings the long side to at least `min_long` px (1 if it already is)."""
    return max(1, -(-min_long // max(height, width)))


def enlarge(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (labels stay labels)."""
    return array if factor == 1 else np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def legend_entries(names: list[str], maps: list[np.ndarray], colours: np.ndarray) -> list[tuple[str, tuple]]:
    """(text, colour) of every class in `maps`, in class order, then the ignore colour if present."""
    present = sorted(set().union(*(np.unique(m).tolist() for m in maps)))
    entries = [(f"{c}: {names[c] if c < len(names) else c}", tuple(int(v) for v in colours[colour_ids(c)]))
               for c in present if c not in (IGNORE, WIDE_IGNORE)]
    for ignore in (IGNORE, WIDE_IGNORE):
        if ignore in present:
            entries.append((f"{ignore}: ignore (not scored)", IGNORE_COLOUR))
    return entries


def draw_legend(draw: ImageDraw.ImageDraw, entries: list, x0: int, y0: int, width: int, size: int) -> int:
    """Swatch + text entries flowing left to right, wrapped at `width`; returns the bottom y."""
    face, box, gap = font(size), size, size
    x, y = x0, y0
    for text, colour in entries:
        text_w = draw.textlength(text, font=face)
        if x > x0 and x + box + 6 + text_w > x0 + width:
            x, y = x0, y + round(1.6 * size)
        draw.rectangle([x, y, x + box, y + box], fill=colour, outline=(90, 90, 90))
        draw.text((x + box + 6, y + box // 2), text, font=face, fill=(0, 0, 0), anchor="lm"
                  if isinstance(face, ImageFont.FreeTypeFont) else None)
        x += box + 6 + int(text_w) + 2 * gap
    return y + round(1.6 * size)


def legend_height(entries: list, width: int, size: int) -> int:
    return draw_legend(ImageDraw.Draw(Image.new("RGB", (1, 1))), entries, 0, 0, width, size)


def overlay(image: np.ndarray, target: np.ndarray, pred: np.ndarray, class_names: list[str],
            colours: np.ndarray | None = None, title: str | None = None) -> Image.Image:
    """image | ground truth | prediction, upscaled to a readable size, titled, with a legend of the
    classes shown (and of the ignore colour where the ground truth has it)."""
    colours = palette_for(class_names) if colours is None else colours
    k = upscale_factor(*image.shape[:2])
    img, gt, pr = enlarge(image, k), enlarge(np.asarray(target), k), enlarge(np.asarray(pred), k)
    panels = [img, overlay_labels(img, gt, class_names, colours), overlay_labels(img, pr, class_names, colours)]
    h, w = img.shape[:2]
    size = max(14, font_size(h, w))
    margin, gap, title_h = size // 2 + 4, size, round(1.8 * size)
    width = 3 * w + 2 * gap + 2 * margin
    head = round(1.8 * size) if title else 0
    entries = legend_entries(class_names, [gt, pr], colours)
    legend_h = legend_height(entries, width - 2 * margin, size)
    canvas = Image.new("RGB", (width, margin + head + title_h + h + margin + legend_h + margin), "white")
    draw = ImageDraw.Draw(canvas)
    face = font(size)
    if title:
        draw.text((margin, margin), title, font=face, fill=(60, 60, 60))
    top = margin + head
    for i, (panel, name) in enumerate(zip(panels, ["image", "ground truth", "prediction"])):
        x = margin + i * (w + gap)
        text_w = draw.textlength(name, font=face)
        draw.text((x + (w - text_w) / 2, top + title_h * 0.15), name, font=face, fill=(0, 0, 0))
        canvas.paste(Image.fromarray(panel), (x, top + title_h))
    draw_legend(draw, entries, margin, top + title_h + h + margin, width - 2 * margin, size)
    return canvas


def save_overlays(examples: list[dict], class_names: list[str], out_dir: str | Path) -> list[Path]:
    """One image | ground truth | prediction PNG per example, written atomically under `out_dir`; an id
    with '/' (Cityscapes' `city/stem`) is a sub-folder."""
    out_dir = Path(out_dir)
    colours = palette_for(class_names)
    paths = []
    for ex in examples:
        path = id_path(out_dir, str(ex["image_id"]), ".png")
        names, title = class_names, str(ex["image_id"])
        if ex.get("sentences"):  # referring: the referred object is named by its first sentence
            phrase = str(ex["sentences"][0])
            names = [class_names[0], phrase if len(phrase) <= 40 else phrase[:39] + "…"]
            title += ": " + " | ".join(map(str, ex["sentences"]))
        save_image(overlay(ex["image"], ex["target"], ex["pred"], names, colours, title=title[:160]), path)
        paths.append(path)
    return paths
