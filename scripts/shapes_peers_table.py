"""Generate results/shapes_peers.{md,json} and results/shapes_peers_expected.yaml: CaR and the peer
methods (MaskCLIP, SCLIP, ClearCLIP, NACLIP) on the offline shapes world with the tiny CLIP.

    python scripts/shapes_peers_table.py                  # 200 val images + the CI subset
    python scripts/shapes_peers_table.py --num-images 50  # quicker; writes shapes_peers_50.* instead

Every row is one `python -m car.run.compare` run (dataset=shapes backbone=tiny, one `evaluate` per
method). The CI subset (fewer images, every method) is stored as expected values and re-run by
tests/test_shapes_peers_table.py, checked through `python -m car.reporting.report` within the tolerance.
The peers' input sizes are their papers' values scaled to the tiny CLIP's 64-px training size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from car.reporting.compare import markdown
from car.run.experiments import run_methods
from car.settings import PEER_METHODS

# The methods that run on the tiny CLIP itself (GroupViT brings its own model, none exists for shapes).
METHODS = ("car",) + PEER_METHODS

CI_IMAGES = 40
CI_TOLERANCE = 1.0  # mIoU points: CPU float differences across machines move a few pixels, not points
BASE = ["dataset=shapes", "backbone=tiny", "num_overlays=0", "trainer.enable_progress_bar=false"]


def expected_key(method: str) -> str:
    return f"shapes_peers_{method}"


def run(num_images: int, runs_dir: Path) -> list[dict]:
    """Every method on the first `num_images` shapes val images; each run keyed for car.reporting.report."""
    return run_methods(BASE + [f"dataset.loader.num_images={num_images}"], list(METHODS), runs_dir,
                       per_method=lambda m: [f"dataset.published_key={expected_key(m)}"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--out", type=Path, default=REPO / "results")
    args = p.parse_args()
    command = "python scripts/shapes_peers_table.py" + (
        "" if args.num_images == 200 else f" --num-images {args.num_images}")
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        full = run(args.num_images, Path(tmp) / "full")
        ci = run(CI_IMAGES, Path(tmp) / "ci")
    failed = [r["method"] for r in full + ci if r["error"]]
    if failed:
        sys.exit(f"error: {failed} could not run; nothing written")
    for rows in (full, ci):
        for r in rows:
            r.pop("run_dir")
    name = "shapes_peers" if args.num_images == 200 else f"shapes_peers_{args.num_images}"
    payload = {"command": command, "num_images": args.num_images, "ci_images": CI_IMAGES, "rows": full,
               "ci_rows": ci, "minutes": round((time.time() - start) / 60, 1)}
    (args.out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    rule = "gt_present/with_background"
    expected = {"semantic": {expected_key(r["method"]): {"miou": round(r["all_rules"][rule], 2),
                                                         "tolerance": CI_TOLERANCE}
                             for r in ci}}
    header = (f"# Expected mIoU ({rule}) of every method on the first {CI_IMAGES} shapes val images, backbone=tiny,\n"
              f"# written by {command}. Checked by tests/test_shapes_peers_table.py through "
              f"`python -m car.reporting.report`.\n")
    (args.out / f"{name}_expected.yaml").write_text(header + yaml.safe_dump(expected, sort_keys=False))
    md = [markdown(full, "shapes", command).replace("# Methods compared on shapes",
                                                    "# CaR and its peers in miniature: the shapes world"),
          f"dataset=shapes ({args.num_images} procedural val images, every class queried for every image), "
          f"backbone=tiny",
          "(our CLIP trained on the shapes train split, car/assets/tiny_clip.md); the peers' input sizes are their",
          "papers' values scaled to the tiny CLIP's 64-px training size. A demo and test fixture, not a benchmark of",
          f"any paper. {payload['minutes']} min on this machine.", "",
          f"## CI subset ({CI_IMAGES} images; re-run by tests/test_shapes_peers_table.py)", "",
          markdown(ci, "shapes", command).split("\n\n", 2)[-1]]
    (args.out / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
