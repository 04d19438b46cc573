"""Screenshots of the layout, taken only when PORTAL_SHOTS names a folder (to look at, never compared)."""
from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page

SHOTS = os.environ.get("PORTAL_SHOTS")


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as PORTAL_SHOTS/name, if PORTAL_SHOTS is set."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)
