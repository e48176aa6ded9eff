from __future__ import annotations


class InventoryError(Exception):
    """Bad input, with messages per field (`entries[2].qty`) that an API can return as-is."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def as_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class ValidationFailed(InventoryError):
    code = "validation_failed"


class IdempotencyConflict(InventoryError):
    status = 409
    code = "idempotency_conflict"


class NotFound(InventoryError):
    status = 404
    code = "not_found"


class AlreadyImported(InventoryError):
    """The same file (or batch key) was imported before; importing it again would double it."""

    status = 409
    code = "already_imported"
