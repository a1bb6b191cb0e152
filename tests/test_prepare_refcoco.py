"""datasets/refcoco/prepare.py: verify the sample, extract zips safely, refuse hostile input."""

from __future__ import annotations

import pickle
import shutil
import zipfile

import pytest

from car.data.refcoco import RefCOCO
from tests.conftest import load_script
from tests.refcoco_helpers import REPO, SAMPLE, TouchMarker, needs_sample

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")
PREPARE = REPO / "datasets" / "refcoco" / "prepare.py"


def _load_prepare():
    return load_script(PREPARE, "car_refcoco_prepare")


prepare = _load_prepare()

# ------------------------------------------------------------------------------------- prepare


@needs_sample
def test_prepare_verify_sample(capsys):
    assert prepare.main(["--data-root", str(SAMPLE), "--skip-counts"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("refcoco ok: refs(unc).p: 13 objects")
    # the official split sizes are checked by default; the sample fails them with one line
    assert prepare.main(["--data-root", str(SAMPLE), "--dataset", "refcoco"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the official file has 42404" in err[0]


@needs_sample
def test_prepare_extract_zips_then_verify(tmp_path, capsys):
    refzip, imgzip = tmp_path / "refcocog.zip", tmp_path / "train2014.zip"
    with zipfile.ZipFile(refzip, "w") as zf:
        for name in ("instances.json", "refs(umd).p"):
            zf.write(SAMPLE / "refcocog" / name, f"refcocog/{name}")
    with zipfile.ZipFile(imgzip, "w") as zf:
        for p in sorted((SAMPLE / "images" / "mscoco" / "images" / "train2014").iterdir()):
            zf.write(p, f"train2014/{p.name}")
    root = tmp_path / "root"
    code = prepare.main(["--data-root", str(root), "--zip", str(refzip), str(imgzip), "--skip-counts"])
    assert code == 0, capsys.readouterr().err
    assert len(RefCOCO(root, "refcocog", "umd", "test")) == 8


def test_prepare_rejects_unsafe_zip_and_bad_usage(tmp_path, capsys):
    bad = tmp_path / "refcoco.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("refcoco/instances.json", "{}")
        zf.writestr("refcoco/../../evil.txt", "x")
    assert prepare.main(["--data-root", str(tmp_path / "root"), "--zip", str(bad)]) == 1
    assert "'..' in path" in capsys.readouterr().err
    assert not (tmp_path / "evil.txt").exists()
    assert prepare.main(["--data-root", str(tmp_path / "nowhere")]) == 1
    with pytest.raises(SystemExit) as exc:
        prepare.main([])
    assert exc.value.code == 2


@needs_sample
def test_prepare_missing_image_and_hostile_refs(tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "refcoco", root / "refcoco")
    assert prepare.main(["--data-root", str(root), "--skip-counts"]) == 1
    assert "is missing or empty" in capsys.readouterr().err
    (root / "images").symlink_to(SAMPLE / "images", target_is_directory=True)
    marker = tmp_path / "pwned"
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([TouchMarker(marker)], protocol=2))
    assert prepare.main(["--data-root", str(root), "--skip-counts"]) == 1
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()
