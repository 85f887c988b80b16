"""Certificate queries: one public completion record by its unguessable id."""

from __future__ import annotations

import re

from learnflow.context import Ctx
from learnflow.errors import FieldViolation, InvalidArgument, NotFound
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import learning_pb2, learning_pb2_grpc
from learnflow.values import parse_timestamp

CERTIFICATE_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")


class CertificateQueries(learning_pb2_grpc.CertificateServiceServicer):
    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    async def GetCertificate(
        self, request: learning_pb2.GetCertificateRequest, context: Ctx = None
    ) -> learning_pb2.GetCertificateResponse:
        certificate_id = request.certificate_id
        if not CERTIFICATE_ID.fullmatch(certificate_id):
            raise InvalidArgument(
                [
                    FieldViolation(
                        "certificate_id", "must be a certificate id (22 or more of A-Z a-z 0-9 _ -)"
                    )
                ]
            )
        db = await self.read_models.database()
        doc = await self.read_models.get(db, "certificates", certificate_id)
        if doc is None:
            raise NotFound("certificate", f"certificates/{certificate_id}")
        self.read_models.shareable(context)
        # Neither the learner's id nor their email: the record names them, nothing more.
        return learning_pb2.GetCertificateResponse(
            certificate=learning_pb2.Certificate(
                id=doc["_id"],
                course_id=doc["course_id"],
                course_title=doc["course_title"],
                learner_name=doc["learner_name"],
                instructor_name=doc["instructor_name"],
                complete_time=parse_timestamp(doc.get("completed_at")),
            )
        )
