"""One scrape of ``GET /metrics``, read sample by sample (docs/observability.md)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.checks import check_edge
from tests.support.service import Service


class Scrape:
    """One scrape of /metrics: ``scrape("name", label=value)`` is a sample's value (0 when absent)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


async def scrape(svc: Service) -> Scrape:
    response = await svc.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    check_edge(response)
    return Scrape(response.text)
