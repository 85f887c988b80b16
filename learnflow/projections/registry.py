"""Every read-model projection, in the order the projector applies them to each event."""

from __future__ import annotations

from learnflow.projections.accounts import AuditTrail, UserProfiles
from learnflow.projections.base import Projection
from learnflow.projections.catalog import Catalog
from learnflow.projections.certificates import Certificates
from learnflow.projections.discussion import Discussion
from learnflow.projections.learning import Progress


def all_projections() -> list[Projection]:
    # Order matters within one event: Catalog writes the course before Progress reads it.
    return [UserProfiles(), AuditTrail(), Catalog(), Progress(), Discussion(), Certificates()]
