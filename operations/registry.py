"""Job kinds that apps declare, and the one way every door runs them as recorded JobRuns.

An app declares a kind in its own `jobs.py` (imported from its AppConfig.ready()):

    @job_kind_register(JobRun.Kind.BACKFILL, options={"chunk_items": 500})
    def backfill(*, schema_name: str, progress: Progress, chunk_items: int = 500) -> JobResult:
        ...

The function takes keyword arguments only, `schema_name` first, then `progress(done, total,
message)`, then the options a start may pass (kept on `JobRun.params`, so a restart or a
re-delivered task runs with the same ones). It may also take `requested_by`. It returns a
`JobResult`: its `summary` is the one line the page shows (`JobRun.message`), the task returns
and the command prints after the schema's name.

`operations` runs, records, locks and reaps the runs (operations/jobs.py) without naming any
other app: the page (`dispatch.job_start`) queues `operations.tasks.job_run_task`, which calls
`job_run_registered`; a command calls `job_runs_for_command`."""

from __future__ import annotations

import getpass
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from operations.jobs import JobAlreadyRunning, job_run_create, job_run_execute
from operations.models import JobRun

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class JobResult:
    """What a job reports: one summary line for every door, `ok` (False: it ran, but what it
    found is wrong, e.g. a failed check; the command exits non-zero), and figures for the page."""

    summary: str
    data: dict = field(default_factory=dict)
    ok: bool = True

    def as_dict(self) -> dict:
        return {**self.data, "ok": self.ok, "summary": self.summary}


@dataclass(frozen=True)
class JobKind:
    kind: str
    func: Callable[..., JobResult]
    options: dict  # name -> default; the keyword options a start may pass
    known_errors: tuple[type[BaseException], ...]  # known states: one line, no traceback
    takes_requested_by: bool

    def params(self, given: dict) -> dict:
        unknown = set(given) - set(self.options)
        if unknown:
            raise TypeError(f"{self.kind} job: unknown option(s) {', '.join(sorted(unknown))}")
        return self.options | given

    def run(self, job: JobRun, progress: Progress) -> JobResult:
        options = {k: v for k, v in job.params.items() if k in self.options}
        if self.takes_requested_by:
            options["requested_by"] = job.requested_by
        return self.func(schema_name=job.schema_name, progress=progress, **options)


_KINDS: dict[str, JobKind] = {}


def job_kind_register(
    kind: str,
    *,
    options: dict | None = None,
    known_errors: tuple[type[BaseException], ...] = (),
):
    """Decorator: declare the function that runs `kind`. Registering a kind twice with another
    function is a mistake (two apps claiming one kind), so it raises."""

    def register(func):
        existing = _KINDS.get(kind)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"job kind {kind!r} is already registered by {existing.func}")
        _KINDS[kind] = JobKind(
            kind=kind,
            func=func,
            options=dict(options or {}),
            known_errors=known_errors,
            takes_requested_by="requested_by" in inspect.signature(func).parameters,
        )
        return func

    return register


def job_kind(kind: str) -> JobKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown job kind {kind!r}") from None


def job_kinds() -> list[str]:
    return sorted(_KINDS)


def job_run_registered(job_id: int) -> JobRun:
    """Run a recorded run with the function its kind was registered with."""
    with schema_context("public"):
        job = JobRun.objects.get(pk=job_id)
    spec = job_kind(job.kind)
    return job_run_execute(job_id, lambda progress: spec.run(job, progress).as_dict())


# --- the shell's door --------------------------------------------------------------------------


def cli_requested_by() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:150]
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return "cli"


class _KnownErrorFilter(logging.Filter):
    """A known broken state (say, no balance table) is one line on the console, not a
    traceback; anything unexpected keeps its traceback."""

    def __init__(self, known: tuple[type[BaseException], ...]):
        super().__init__()
        self.known = known

    def filter(self, record: logging.LogRecord) -> bool:
        if self.known and record.exc_info and isinstance(record.exc_info[1], self.known):
            record.exc_info = None
            record.exc_text = None
        return True


@dataclass
class CommandRuns:
    """What `job_runs_for_command` did: each schema's result, and the error line of each schema
    that did not run to the end (already running elsewhere, failed, not started)."""

    results: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def not_ok(self) -> list[str]:
        """Schemas that failed or whose job reported ok = False."""
        bad = [n for n, r in self.results.items() if not r.get("ok", True)]
        return list(self.errors) + bad


def job_runs_for_command(
    command: BaseCommand,
    *,
    kind: str,
    schemas: list[str],
    options: dict | None = None,
    requested_by: str | None = None,
    write: Callable[[str, dict], None] | None = None,
    write_errors: bool = True,
) -> CommandRuns:
    """Run `kind` for each schema ("" for a platform job) as a recorded JobRun, as a page's
    start would. A schema whose run is already queued or running elsewhere, or that fails, is
    reported in one line on stderr and skipped; the others still run. `write(schema, result)`
    prints a success (default: "schema: summary (job N)"; `result["job_id"]` is the run). The caller exits non-zero when
    `.errors` (or `.not_ok`) is not empty."""
    spec = job_kind(kind)
    params = spec.params(options or {})
    who = requested_by or cli_requested_by()
    runs = CommandRuns()

    def default_write(name: str, result: dict) -> None:
        line = f"{result['summary']} (job {result['job_id']})"
        command.stdout.write(f"{name}: {line}" if name else line)

    write = write or default_write
    log_filter = _KnownErrorFilter(spec.known_errors)
    jobs_log = logging.getLogger("operations.jobs")
    jobs_log.addFilter(log_filter)
    try:
        for name in schemas:
            line = _run_one(kind, name, params, who)
            if isinstance(line, str):
                runs.errors[name] = line
                if write_errors:
                    command.stderr.write(line)
                continue
            runs.results[name] = line
            write(name, line)
    finally:
        jobs_log.removeFilter(log_filter)
    return runs


def _run_one(kind: str, name: str, params: dict, who: str) -> dict | str:
    """The run's result, or the one line saying why there is none."""
    prefix = f"{name}: " if name else f"{kind} "
    try:
        job = job_run_create(kind=kind, schema_name=name, requested_by=who, params=params)
    except JobAlreadyRunning as err:  # one run per kind and schema, whichever door
        return f"{name}: {err}" if name else str(err)
    try:
        run = job_run_registered(job.id)
    except Exception as err:  # recorded on the JobRun by job_run_execute
        return f"{prefix}failed, {type(err).__name__}: {err} (job {job.id})".strip()
    if run.status != JobRun.Status.SUCCEEDED:  # not started: another session runs it
        return f"{prefix}not run (job {job.id} {run.status}): {run.error or run.message}"
    return run.result | {"job_id": job.id}
