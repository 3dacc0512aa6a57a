"""The published JSON Schemas match the payload models."""

from __future__ import annotations

import json
from pathlib import Path

from gridgov_common.events import REGISTRY, json_schemas

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def test_committed_schemas_are_current():
    for name, schema in json_schemas().items():
        if name.startswith("gridgov.commontest"):
            continue  # registered by these tests only
        path = DOCS / f"{name}.schema.json"
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert json.loads(path.read_text()) == json.loads(json.dumps(schema)), (
            f"{path} is stale: run `make schemas`"
        )


def test_every_event_type_is_namespaced_and_on_a_versioned_topic():
    for name, spec in REGISTRY.items():
        if spec.topic.startswith("commontest"):
            continue
        assert name.startswith("gridgov."), name
        assert spec.topic.rsplit(".", 1)[-1].startswith("v"), spec.topic


def test_every_event_type_is_in_the_catalogue_page():
    page = (DOCS.parent / "events.md").read_text()
    missing = [
        name
        for name in REGISTRY
        if not name.startswith("gridgov.commontest") and f"`{name}`" not in page
    ]
    assert missing == [], f"add these to docs/events.md: {missing}"
