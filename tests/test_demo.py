"""`car-demo` (issue #19): the page's handler on the tiny CLIP (a phone photo included), and the real
page in a headless Chromium: open it, run an example, see the overlay and the score table.

The browser test needs Debian's chromium and chromium-driver (`.ci/run` installs them) and the
`dev` extra (gradio, selenium); without them it skips, naming what is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from car.config import REPO_ROOT
from car.data.shapes import CLASSES
from tests.photo_helpers import PHONE_SIZE, phone_jpeg, scene

SCREENSHOT = REPO_ROOT / "results" / "demo.png"  # rewritten only with CAR_UPDATE_SCREENSHOTS=1


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from car.api import CarSegmenter
    from car.apps.demo import DemoBackend

    return DemoBackend(CarSegmenter.from_profile("shapes"), tmp_path_factory.mktemp("demo"))


def test_examples_are_shapes_scenes(tmp_path):
    from car.apps.demo import EXAMPLE_SCALE, SHAPES_EXAMPLES, shapes_examples

    examples = shapes_examples(tmp_path)
    assert len(examples) == len(SHAPES_EXAMPLES)
    for path, phrases in examples:
        assert Image.open(path).size == (64 * EXAMPLE_SCALE, 64 * EXAMPLE_SCALE)
        assert phrases.split(", ") == CLASSES


def test_handler_on_a_phone_photo(backend, tmp_path):
    from car.apps.demo import DISPLAY_MAX_PIXELS

    path = phone_jpeg(tmp_path / "IMG_0002.jpg")
    overlay, scores, trace, files, summary = backend.run(str(path), "circle, heart, ring", 0.4, 0.6, 0.4, "crf")
    shown = Image.open(overlay)
    assert shown.size[0] * shown.size[1] <= DISPLAY_MAX_PIXELS
    labels = Image.open(files[0])
    assert labels.size == PHONE_SIZE  # the downloadable label map is full size
    assert [row[0] for row in scores] == ["circle", "heart", "ring"]
    assert trace[0][:2] == [1, "circle"] and {row[3] for row in trace} <= {"kept", "pruned"}
    assert "6000x4000" in summary and "masks at full size" in summary


def test_handler_settings_and_errors(backend):
    from car.errors import CarError

    image = scene()["image"]
    backend.run(image, "circle, ring", 0.4, 0.3, 0.4, "none")
    seg = backend.segmenter(0.4, 0.3, 0.4, "none")
    assert seg.cfg.car.theta == 0.3 and not seg.cfg.car.crf.enabled and seg.clips is backend.base.clips
    assert backend.segmenter(0.4, 0.6, 0.4, "crf") is backend.base  # the profile's own settings
    with pytest.raises(CarError, match="at least one phrase"):
        backend.run(image, " , ", 0.4, 0.6, 0.4, "crf")
    with pytest.raises(CarError, match="Upload an image"):
        backend.run(None, "circle", 0.4, 0.6, 0.4, "crf")


# --- the page in a real browser --------------------------------------------------------------------

def _browser_missing() -> str | None:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver; .ci/run does)"
    for module in ("gradio", "selenium"):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"car-demo exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"car-demo did not answer at {url} within {timeout} s")


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_demo_in_a_browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    proc = subprocess.Popen([sys.executable, "-m", "car.apps.demo", "--port", str(port)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, proc, timeout=300)
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"):
            options.add_argument(arg)
        options.binary_location = shutil.which("chromium")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.get(url)
        wait = WebDriverWait(driver, 180)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#car-examples [data-testid="dataset-cell-0-0"]')).click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#car-phrases textarea").get_attribute("value"))
        driver.find_element(By.ID, "car-run").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#car-overlay img[src]"))
        wait.until(lambda d: "kept" in d.find_element(By.ID, "car-scores").text)
        scores = driver.find_element(By.ID, "car-scores").text
        assert all(name in scores for name in CLASSES)  # one row per phrase
        trace = driver.find_element(By.ID, "car-trace").text
        assert "pruned" in trace and "kept" in trace
        assert "phrases kept" in driver.find_element(By.ID, "car-summary").text
        img = driver.find_element(By.CSS_SELECTOR, "#car-overlay img[src]")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) >= 384
        shot = SCREENSHOT if os.environ.get("CAR_UPDATE_SCREENSHOTS") == "1" else tmp_path / "demo.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        assert Image.open(shot).size[0] >= 1000
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
