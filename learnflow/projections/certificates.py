"""Read model of completion certificates: `certificates` (`_id` the public certificate id),
written once per certificate.issued and read by GetCertificate by `_id` only."""

from __future__ import annotations

from learnflow.events import CERTIFICATE_ISSUED
from learnflow.projections.base import Batch, Event, Projection, on, stale


class Certificates(Projection):
    name = "certificates"

    @on(CERTIFICATE_ISSUED)
    async def issued(self, batch: Batch, event: Event) -> None:
        p = event.payload
        doc = await batch.get("certificates", p["id"])
        if stale(doc, event):
            return
        batch.put(
            "certificates",
            {
                "_id": p["id"],
                "user_id": p["user_id"],
                "course_id": p["course_id"],
                "learner_name": p["learner_name"],
                "course_title": p["course_title"],
                "instructor_name": p["instructor_name"],
                "completed_at": p["completed_at"],
                "issued_at": p["issued_at"],
                "v": event.version,
            },
        )
