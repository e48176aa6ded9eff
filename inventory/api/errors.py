"""Every API error is JSON `{"error": {"code", "message", "fields"?}}`, never an HTML page and
never a 500 for a state we know: bad input is a 400 naming the field, a missing balance table a
503 that says how to repair it, anything unexpected a 500 `internal_error` without a traceback."""

from __future__ import annotations

import logging

import psycopg.errors
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, IntegrityError, ProgrammingError
from django.http import Http404, HttpRequest, JsonResponse
from django.http.request import RawPostDataException
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from inventory.services.errors import InventoryError
from inventory.services.stock_policy import refusal_from

log = logging.getLogger(__name__)

# Union tags of the ledger body (schemas.PostingIn): not part of a field's name.
_TAGS = {"batch", "entry"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def json_error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    body = {"code": code, "message": message} | ({"fields": fields} if fields else {})
    return JsonResponse({"error": body}, status=status)


# A body refused as too large is still read (and dropped) up to this size before the 413 goes
# out: a server that answers and closes with the body unread resets the connection, and the
# client, still sending, gets a broken pipe instead of the answer (nginx's lingering close).
DRAIN_MAX_BYTES = 8 * 1024 * 1024


def body_too_large(request: HttpRequest, message: str = "The body is too large.") -> JsonResponse:
    stream = request.META.get("wsgi.input")
    try:
        left = min(int(request.META.get("CONTENT_LENGTH") or 0), DRAIN_MAX_BYTES)
    except ValueError:
        left = 0
    while stream is not None and left > 0:
        try:
            chunk = stream.read(min(left, 64 * 1024))
        except OSError:  # the client went away: nothing to answer
            break
        if not chunk:
            break
        left -= len(chunk)
    return json_error(413, "body_too_large", message)


def field_name(loc: tuple) -> str:
    """('body', 'payload', 'batch', 'entries', 2, 'qty') -> 'entries[2].qty'; a single entry's
    fields are named as the posting service names them (`entries[0].qty`)."""
    source, *parts = loc
    if source == "body":
        parts = parts[1:]  # the parameter's own name
        if parts and parts[0] in _TAGS:
            if parts[0] == "entry" and len(parts) > 1:
                parts = ["entries", 0, *parts[1:]]
            else:
                parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or ("body" if source == "body" else source)


def _message(err: dict) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("string_type", "string_sub_type"):
        return "must be a string"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind == "greater_than_equal":
        return f"at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"at most {ctx.get('le')}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else err["msg"]
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} item(s)"
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be an object"
    if kind == "list_type":
        return "must be a list"
    if kind == "value_error":
        return str(ctx.get("error") or err["msg"]).removeprefix("Value error, ")
    return err["msg"]


def validation_fields(errors: list[dict]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for err in errors:
        name = field_name(tuple(err["loc"]))
        message = _message(err)
        if name == "body" and err["type"] in ("model_type", "model_attributes_type"):
            message = 'send one entry object, or {"entries": [...]} for a batch'
        if message not in fields.setdefault(name, []):
            fields[name].append(message)
    return fields


def _undefined_object(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction)


def install_handlers(api) -> None:
    @api.exception_handler(ApiError)
    def _api_error(request: HttpRequest, exc: ApiError):
        if exc.code == "body_too_large":
            return body_too_large(request, exc.message)
        return json_error(exc.status, exc.code, exc.message, exc.fields)

    @api.exception_handler(InventoryError)
    def _inventory_error(request: HttpRequest, exc: InventoryError):
        return JsonResponse({"error": exc.as_dict()}, status=exc.status)

    @api.exception_handler(NinjaValidationError)
    def _validation_error(request: HttpRequest, exc: NinjaValidationError):
        fields = validation_fields(exc.errors)
        first = next(iter(fields.items()), ("input", ["invalid"]))
        message = f"Invalid input: {first[0]}: {first[1][0]}."
        if len(fields) > 1:
            message += f" ({len(fields)} fields are invalid; nothing was changed.)"
        return json_error(400, "validation_failed", message, fields)

    @api.exception_handler(AuthenticationError)
    def _unauthenticated(request: HttpRequest, exc: AuthenticationError):
        return json_error(401, "no_credentials", "Send an API key or sign in.")

    @api.exception_handler(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError):
        if isinstance(exc.__cause__, ApiError):  # ninja wraps what the body parser raises
            return _api_error(request, exc.__cause__)
        if exc.status_code == 403 and "CSRF" in exc.message:
            return json_error(
                403,
                "csrf_failed",
                "A signed-in session must send the CSRF token (X-CSRFToken); API keys need none.",
            )
        return json_error(exc.status_code, "http_error", exc.message)

    @api.exception_handler(RawPostDataException)
    def _form_body(request: HttpRequest, exc: RawPostDataException):
        # A multipart body was read as a form (by a middleware) before ninja asked for the body.
        message = "Send a JSON body with Content-Type: application/json."
        return json_error(400, "validation_failed", message, {"body": [message]})

    @api.exception_handler(RequestDataTooBig)
    def _too_big(request: HttpRequest, exc: RequestDataTooBig):
        return body_too_large(request)

    @api.exception_handler(Http404)
    def _not_found(request: HttpRequest, exc: Http404):
        return json_error(404, "not_found", "Not found.")

    @api.exception_handler(ProgrammingError)
    def _programming_error(request: HttpRequest, exc: ProgrammingError):
        # The guide's rollback (DROP TABLE / TRIGGER / FUNCTION by hand) leaves the migration
        # recorded as applied but the objects gone: a known state with a known repair.
        if _undefined_object(exc):
            schema = getattr(request.tenant, "schema_name", "?")
            log.warning("balances unavailable in schema %s: %s", schema, exc)
            if "inventory_balances" in str(exc) or "update_inventory_balance" in str(exc):
                return json_error(
                    503,
                    "balances_unavailable",
                    "balances are not available for this organisation; run "
                    f"`manage.py repair_balances --schema {schema}`",
                )
            return json_error(
                503,
                "schema_incomplete",
                "this organisation's tables are incomplete; run "
                f"`manage.py migrate_schemas --schema {schema}`",
            )
        return _internal_error(request, exc)

    @api.exception_handler(DataError)
    def _data_error(request: HttpRequest, exc: DataError):
        if isinstance(exc.__cause__, psycopg.errors.NumericValueOutOfRange):
            return json_error(
                400, "out_of_range", "A quantity or balance would exceed NUMERIC(18,6)."
            )
        return _internal_error(request, exc)

    @api.exception_handler(IntegrityError)
    def _integrity_error(request: HttpRequest, exc: IntegrityError):
        # The balance trigger's no-negative refusal, should it reach here untranslated.
        refusal = refusal_from(exc)
        if refusal is not None:
            return JsonResponse({"error": refusal.as_dict()}, status=refusal.status)
        return _internal_error(request, exc)

    @api.exception_handler(Exception)
    def _internal_error(request: HttpRequest, exc: Exception):
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
        return json_error(500, "internal_error", "Something went wrong on our side; it is logged.")


def handler400(request: HttpRequest, exception=None):
    from django.views import defaults

    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            return body_too_large(request)
        return json_error(400, "bad_request", "The request is malformed.")
    return defaults.bad_request(request, exception)


def handler500(request: HttpRequest):
    from django.views import defaults

    if request.path.startswith("/api/"):
        return json_error(500, "internal_error", "Something went wrong on our side; it is logged.")
    return defaults.server_error(request)
