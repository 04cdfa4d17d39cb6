"""routeway's OpenAPI document built in-process, for tests that need it before any server runs
(schemathesis generates its tests at collection time). The routes do not depend on the config, so this
is the document every server serves; tests/test_openapi.py checks that."""

from __future__ import annotations

import tempfile
from typing import Any

from routeway.api.openapi import build_document
from routeway.app import App
from routeway.config import load_settings


def routeway_app() -> App:
    with tempfile.TemporaryDirectory() as data_dir:  # nothing is written there: the store opens at start-up
        return App(load_settings(env={"ROUTEWAY_ADMIN_KEY": "unused"}, data_dir=data_dir))


def routeway_document() -> dict[str, Any]:
    return build_document(routeway_app().router.table)
