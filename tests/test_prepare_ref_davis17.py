"""datasets/ref_davis17/prepare.py: extracts the two downloads safely and refuses partial or broken
trees (the 30 val videos, one annotation per frame, parsable expression files), one line each."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, load_script
from tests.ref_davis17_helpers import make_tree, write_expressions

prepare = load_script(REPO / "datasets" / "ref_davis17" / "prepare.py", "prepare_ref_davis17")
VAL = list(prepare.VAL_VIDEOS)
SETS = ("annot1", "annot1_full_video", "annot2", "annot2_full_video")


def lines_for(videos: list[str]) -> dict[str, list[str]]:
    return {s: [f'{v} 1 "the thing in {v} ({s}, ü)"' for v in videos] for s in SETS}


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(prepare, "VAL_FRAMES", 2 * len(VAL))  # two frames a video here (the real set: 1,999)
    videos = {v: (2, 1) for v in VAL} | {"classic-car": (1, 1)}
    return make_tree(tmp_path / "ref_davis17", videos, VAL, ["classic-car"], lines_for(VAL))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = prepare.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_complete_tree_verifies(tree, capsys):
    code, out, err = run(capsys, "--root", tree)
    assert code == 0, err
    assert out.startswith(f"OK: Ref-DAVIS17 val at {tree}: 30 videos, 60 frames with annotations, 4 expression sets "
                          f"(120 expressions of val videos)")


def test_partial_tree_is_refused_unless_allowed(tree, capsys):
    listing = tree / "DAVIS" / "ImageSets" / "2017" / "val.txt"
    listing.write_text("\n".join(VAL[:29]) + "\n")
    code, out, err = run(capsys, "--root", tree)
    assert code == 1 and "lists 29 of 30 val videos" in err and "--allow-subset" in err and err.count("\n") == 1
    code, out, err = run(capsys, "--root", tree, "--allow-subset")
    assert code == 0 and "29 videos" in out and "(subset allowed)" in out
    listing.write_text("\n".join(VAL[:29] + ["motorbike"]) + "\n")
    code, out, err = run(capsys, "--root", tree, "--allow-subset")
    assert code == 1 and "'motorbike', which is not a DAVIS-2017 val video" in err


def test_a_frame_count_other_than_the_val_sets_is_refused(tree, capsys):
    for t in (0, 1):
        (tree / f"DAVIS/JPEGImages/480p/pigs/{t:05d}.jpg").unlink()
        (tree / f"DAVIS/Annotations_unsupervised/480p/pigs/{t:05d}.png").unlink()
    code, out, err = run(capsys, "--root", tree)
    assert code == 1 and "video pigs has 0 frames" in err
    (tree / "DAVIS/JPEGImages/480p/judo/00001.jpg").rename(tree / "DAVIS/JPEGImages/480p/pigs/00000.jpg")
    (tree / "DAVIS/Annotations_unsupervised/480p/judo/00001.png").rename(
        tree / "DAVIS/Annotations_unsupervised/480p/pigs/00000.png")
    code, out, err = run(capsys, "--root", tree)
    assert code == 1 and "its 30 val videos hold 58 frames, not 60" in err and "--allow-subset" in err
    code, out, err = run(capsys, "--root", tree, "--allow-subset")
    assert code == 0 and "58 frames" in out


@pytest.mark.parametrize("damage, expected", [
    (lambda t: (t / "DAVIS/Annotations_unsupervised/480p/judo/00001.png").unlink(),
     "video judo has 2 frames in"),
    (lambda t: shutil.rmtree(t / "DAVIS/JPEGImages/480p/india"), "JPEGImages/480p/india does not exist"),
    (lambda t: (t / "DAVIS/Annotations_unsupervised/480p/goat/00000.png").write_bytes(b"broken"),
     "goat/00000.png cannot be read"),
    (lambda t: write_expressions(t, "annot2", [f'{v} 1 "x"' for v in VAL[1:]]),
     "Davis17_annot2.txt has no expression for video bike-packing"),
    (lambda t: write_expressions(t, "annot1", [f'{v} 1 ""' for v in VAL]),
     "Davis17_annot1.txt, line 1 has an empty expression"),
])
def test_broken_trees_give_one_error_line(tree, capsys, damage, expected):
    damage(tree)
    code, _, err = run(capsys, "--root", tree)
    assert code == 1 and expected in err and err.startswith("error: ") and err.count("\n") == 1


def _zip(folder: Path, zip_path: Path, under: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(under).as_posix())
    return zip_path


@pytest.mark.parametrize("text_in_folder", [True, False])
def test_downloads_are_extracted_then_verified(tree, tmp_path, capsys, text_in_folder):
    davis_zip = _zip(tree / "DAVIS", tmp_path / prepare.DAVIS_ZIP, tree)
    text_dir = tree / "davis_text_annotations"
    text_zip = _zip(text_dir, tmp_path / prepare.TEXT_ZIP, tree if text_in_folder else text_dir)
    target = tmp_path / "fresh" / "ref_davis17"
    code, out, err = run(capsys, "--root", target, "--davis-zip", davis_zip, "--text-zip", text_zip, "--sample", 1)
    assert code == 0, err
    assert (target / "davis_text_annotations" / "Davis17_annot2.txt").is_file() and "30 videos" in out
    assert "extracted" in err
    code, out, err = run(capsys, "--root", tmp_path / "other", "--text-zip", tmp_path / "missing.zip")
    assert code == 1 and "missing.zip" in err
