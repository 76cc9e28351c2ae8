"""Fixtures of the differential tests: the corpus and a live Elasticsearch (ESTROM_ES_URL), then the
same tests again against a live OpenSearch (ESTROM_OPENSEARCH_URL)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from tests.differential.es import Es, es_url

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "recentchange.ndjson"
EDGE_DOCS = Path(__file__).with_name("edge_docs.ndjson")


def read_ndjson(path: Path) -> List[Dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="session")
def corpus() -> List[Dict[str, Any]]:
    """recentchange.ndjson (all, or ESTROM_DIFF_SAMPLE random ones, seeded) followed by the edge cases."""
    documents = read_ndjson(CORPUS)
    sample = int(os.environ.get("ESTROM_DIFF_SAMPLE", "0") or 0)
    if 0 < sample < len(documents):
        chosen = sorted(random.Random(20180307).sample(range(len(documents)), sample))
        documents = [documents[i] for i in chosen]
    return documents + read_ndjson(EDGE_DOCS)


@pytest.fixture(scope="session", params=["elasticsearch", "opensearch"])
def es(request: pytest.FixtureRequest) -> Iterator[Es]:
    """A client of the cluster named by ESTROM_ES_URL, then of the one named by ESTROM_OPENSEARCH_URL
    (the test fails if there is none)."""
    client = Es(es_url(request.param))
    yield client
    client.close()
