"""Reading Prometheus text in tests: sample values by name and labels, and bounded labels."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

# A uuid, or any long run of hex digits: an id that must never be a label value.
ID_LIKE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}|[0-9a-fA-F]{16,}")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
    return sum(
        v
        for n, sample_labels, v in samples(text)
        if n == name and all(sample_labels.get(k) == want for k, want in labels.items())
    )


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def id_like_labels(text: str) -> list[tuple[str, str, str]]:
    """(sample, label, value) for every label value that looks like an id."""
    return [
        (name, key, label)
        for name, labels, _ in samples(text)
        for key, label in labels.items()
        if ID_LIKE.search(label)
    ]
