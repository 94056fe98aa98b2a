"""The report renders in a real browser: headless Chromium screenshots the page."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report_screenshot.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium on PATH"
)


def test_chromium_screenshots_the_report(pipeline_root, tmp_path):
    shot = tmp_path / "report.png"
    pinsage = Path(sys.executable).with_name("pinsage")
    done = subprocess.run(
        [str(SCRIPT), str(pipeline_root), str(shot)],
        env=os.environ | {"PINSAGE": str(pinsage)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(shot)
    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        # Not a blank page: the page background, tables and figures differ.
        assert len(image.convert("L").getcolors(maxcolors=256) or ()) > 10
