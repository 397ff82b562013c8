"""Structured JSON logs. Log calls name services, rules and decision ids, never patient data:
patient ids are hashed (`hash_patient_id`) before they reach a log line or the decision log."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # which worker, when there are several
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            if record.exc_info[1] is not None:
                entry.update(raised_at(record.exc_info[1]))
        try:
            return orjson.dumps(entry, default=str).decode()  # a line per hook call: the fast writer
        except TypeError:  # a key that is not a string
            return json.dumps(entry, default=str)


def raised_at(error: BaseException) -> dict[str, str]:
    """Where an exception was raised, as code locations only (module:function:line; never a message or a local
    value, which may hold patient data): the innermost frame, and the innermost frame of this service's own code
    when the exception came from inside a library."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append((str(tb.tb_frame.f_globals.get("__name__", "?")), tb.tb_frame.f_code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    if not frames:
        return {}
    where = {"raised_at": "{}:{}:{}".format(*frames[-1])}
    ours = [frame for frame in frames if frame[0] == "service" or frame[0].startswith("service.")]
    if ours and ours[-1] != frames[-1]:
        where["raised_in_service_at"] = "{}:{}:{}".format(*ours[-1])
    return where


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)


def hash_patient_id(patient_id: str, salt: str = "") -> str:
    """A stable pseudonym: the same patient gives the same hash, and the hash does not give the patient back."""
    return hashlib.sha256(f"{salt}:{patient_id}".encode()).hexdigest()[:16]


def log_refusal(service_id: str, status: int, reason: str, *, feedback: bool = False, check: str | None = None) -> None:
    """A refused hook call or feedback is logged with its reason: EHRs such as the CDS Hooks Sandbox show a 401 or
    412 as "no recommendations", so the log is where an integrator learns why. Reasons name settings, prefetch keys
    and token fields, never patient data."""
    fields = {"service": service_id, "status": status, "reason": reason, "feedback": feedback}
    if check is not None:  # the refused check's fixed word, as the metric labels it
        fields["check"] = check
    logging.getLogger("service.hooks").warning("call refused", extra={"fields": fields})
