"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from spoonprint.domain.job import Job, JobEvent, JobState
from spoonprint.domain.receipt import AMOUNT_AS_FLOAT, EXAMPLE, Receipt

MAX_TEXT = 20_000


class PrintRequest(BaseModel):
    """An order to print: plain ``text`` or a ``receipt`` object (exactly one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Hello World Test"},
                {"order_id": "A-1023", "receipt": EXAMPLE},
            ]
        },
    )

    text: str | None = Field(None, max_length=MAX_TEXT, description="Plain text, one line each")
    receipt: Receipt | None = Field(
        None,
        description="An order as a structured receipt; printed as a kitchen ticket or a "
        "customer receipt, as the printer's `style` says",
    )
    printer: str | None = Field(None, description="Printer name; the first printer if omitted")
    copies: int = Field(1, ge=1, le=10)
    order_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="The shop's order id; sending the same id again returns the first job",
    )

    @field_validator("text")
    @classmethod
    def _something_to_print(cls, text: str | None) -> str | None:
        # A blank ticket tells the kitchen nothing, and looks like a printer fault.
        if text is not None and not text.strip():
            raise PydanticCustomError("empty_text", "text is empty: send something to print")
        return text

    @model_validator(mode="after")
    def _one_content(self) -> PrintRequest:
        if (self.text is None) == (self.receipt is None):
            raise ValueError("give exactly one of 'text' or 'receipt'")
        return self

    def payload(self) -> dict[str, Any]:
        if self.receipt is not None:
            return {"receipt": self.receipt.model_dump(mode="json", exclude_defaults=True)}
        return {"text": self.text}


def parse_order(body: bytes) -> PrintRequest:
    """The order in ``body`` (JSON), its amounts exact. pydantic's JSON parser, the fast one,
    makes a JSON number a float, which may have lost digits: an order with an amount sent as a
    number is read again with numbers as decimals, from their text."""
    try:
        return PrintRequest.model_validate_json(body)
    except ValidationError as exc:
        if all(error["type"] != AMOUNT_AS_FLOAT for error in exc.errors()):
            raise
        first = exc
    try:
        data = json.loads(body, parse_float=Decimal)
    except ValueError:  # beyond what the standard parser takes (e.g. an int of 5,000 digits)
        raise first from None
    return PrintRequest.model_validate(data)


class TestPrintRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    printer: str | None = None


class EventOut(BaseModel):
    at: datetime
    from_state: JobState | None
    to_state: JobState
    detail: str

    @classmethod
    def of(cls, event: JobEvent) -> EventOut:
        return cls(
            at=_time(event.at),
            from_state=event.from_state,
            to_state=event.to_state,
            detail=event.detail,
        )


class JobOut(BaseModel):
    id: int
    state: JobState
    printer: str
    copies: int
    order_id: str | None
    created_at: datetime
    updated_at: datetime
    printed_at: datetime | None
    attempts: int = Field(
        description="Delivery attempts started, as the history numbers them; waiting for "
        "paper or a closed cover is not an attempt"
    )
    last_error: str | None
    maybe_printed: bool = Field(description="An earlier attempt may have printed it: REPRINT")
    original_printer: str | None = Field(description="Set when moved to a backup printer")
    reprint_of: int | None
    events: list[EventOut] | None = None

    @classmethod
    def of(cls, job: Job, events: list[JobEvent] | None = None) -> JobOut:
        return cls(
            id=job.id,
            state=job.state,
            printer=job.printer,
            copies=job.copies,
            order_id=job.order_id,
            created_at=_time(job.created_at),
            updated_at=_time(job.updated_at),
            printed_at=_time(job.printed_at) if job.printed_at else None,
            attempts=job.attempts,
            last_error=job.last_error,
            maybe_printed=job.maybe_printed,
            original_printer=job.original_printer,
            reprint_of=job.reprint_of,
            events=[EventOut.of(e) for e in events] if events is not None else None,
        )


class AcceptedOut(BaseModel):
    job_id: int
    state: JobState
    printer: str
    duplicate: bool = Field(description="True when this order was already accepted earlier")

    @classmethod
    def of(cls, job: Job, *, duplicate: bool) -> AcceptedOut:
        return cls(job_id=job.id, state=job.state, printer=job.printer, duplicate=duplicate)


class PublicPrinterOut(BaseModel):
    name: str
    online: bool | None = Field(description="None until the printer has been tried")
    problem: str | None = Field(description="What is wrong, in plain words")
    advice: list[str] = Field(
        default_factory=list, description="What staff should do, from the health monitor"
    )
    breaker: str = Field(
        description="closed: tickets go out; open: pausing after failures; half-open: trying again"
    )
    queued: int


class PrinterOut(PublicPrinterOut):
    retry_at: datetime | None = Field(
        None, description="While the breaker is open (resting after failures): the next try"
    )
    uri: str
    protocol: str
    style: str
    default: bool
    backup: str | None
    last_error: str | None
    last_error_at: datetime | None
    down_since: datetime | None


class StatusOut(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="ok: every printer can print; degraded: some can; down: none can. A "
        "printer cannot print when its last try failed or the health monitor found a problem"
    )
    version: str | None = Field(None, description="Only for a valid key or allowed_networks")
    uptime_seconds: float | None = Field(
        None, description="Only for a valid key or allowed_networks"
    )
    queue_depth: int
    printers: list[PublicPrinterOut]


class ErrorOut(BaseModel):
    error: str
    detail: Any = None


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
