"""What the queries take and return: SQL values, parameters, and one TypedDict per row shape.

Rows are plain dicts at run time (``dict(sqlite_row)``); the TypedDicts only tell the type
checker which keys a query returns. Column types follow the schema (``migrations/``): TEXT ->
str, INTEGER -> int (booleans are 0/1), REAL -> float, nullable columns ``| None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

SQLValue = str | int | float | bytes | None
"""A value SQLite stores (bool is an int)."""
Params = Sequence[object] | Mapping[str, object]
"""Positional (``?``) or named (``:name``) statement parameters. Values are ``object`` so that
callers' dicts fit; the driver accepts :data:`SQLValue` and raises on anything else."""
Row = dict[str, SQLValue]
"""A row of an ad-hoc query (column name -> value)."""

REGISTRATION_FIELDS: tuple[str, ...] = (
    "aor",
    "contact",
    "instance",
    "reg_id",
    "call_id",
    "cseq",
    "expires_at",
    "q",
    "source_transport",
    "source_host",
    "source_port",
    "local",
    "user_agent",
    "registered_at",
)
EXTENSION_FIELDS: tuple[str, ...] = (
    "number",
    "name",
    "realm",
    "ha1_md5",
    "ha1_sha256",
    "enabled",
    "created_at",
    "updated_at",
)
CALL_FIELDS: tuple[str, ...] = (
    "id",
    "sip_call_id",
    "direction",
    "caller_number",
    "caller_name",
    "callee_number",
    "callee_name",
    "did",
    "service_line",
    "extension",
    "queue",
    "agent",
    "offered_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "hangup_side",
    "hangup_cause",
    "disposition",
    "flags",
    "worker",
    "caller_kind",
)
RECORDING_FIELDS: tuple[str, ...] = (
    "call_id",
    "path",
    "status",
    "seconds",
    "sample_rate",
    "channels",
    "sha256",
    "bytes",
    "created_at",
    "detail",
)
AGENT_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "skills",
    "wrap_up",
    "extension",
    "state",
    "pause_reason",
    "state_since",
    "created_at",
    "updated_at",
)
CALLBACK_FIELDS: tuple[str, ...] = (
    "id",
    "number",
    "queue",
    "requested_at",
    "status",
    "attempts",
    "last_attempt_at",
    "call_id",
    "agent",
    "result",
    "merged_count",
)


# --------------------------------------------------------------------------- extensions, SIP
class ExtensionRow(TypedDict):
    number: str
    name: str
    realm: str
    ha1_md5: str
    ha1_sha256: str
    enabled: int
    created_at: float | None
    updated_at: float | None


class ExtensionPermissionRow(TypedDict):
    number: str
    classes: str
    max_outbound: int | None
    updated_at: float | None


class RegistrationRow(TypedDict):
    aor: str
    contact: str
    instance: str | None
    reg_id: int | None
    call_id: str | None
    cseq: int | None
    expires_at: float | None
    q: float | None
    source_transport: str | None
    source_host: str | None
    source_port: int | None
    local: str | None
    user_agent: str | None
    registered_at: float | None


class SecurityEventRow(TypedDict):
    ts: float | None
    kind: str | None
    ip: str | None
    detail: str | None


# --------------------------------------------------------------------------- calls
class CallRow(TypedDict):
    id: str
    sip_call_id: str | None
    direction: str
    caller_number: str | None
    caller_name: str | None
    callee_number: str | None
    callee_name: str | None
    did: str | None
    service_line: str | None
    extension: str | None
    queue: str | None
    agent: str | None
    offered_at: float
    answered_at: float | None
    ended_at: float | None
    ring_seconds: float | None
    talk_seconds: float | None
    hangup_side: str | None
    hangup_cause: str | None
    disposition: str
    flags: str
    worker: str | None
    caller_kind: str | None


class CallSearchRow(CallRow):
    """A call with its recording's columns (None without a recording)."""

    recording_path: str | None
    recording_status: str | None
    recording_seconds: float | None


class CallEventRow(TypedDict):
    seq: int
    ts: float
    kind: str
    detail: str


class RecordingRow(TypedDict):
    call_id: str
    path: str
    status: str
    seconds: float | None
    sample_rate: int | None
    channels: int | None
    sha256: str | None
    bytes: int | None
    created_at: float
    detail: str


class SurveyRow(TypedDict):
    seq: int
    call_id: str
    agent: str | None
    queue: str | None
    score: int
    ts: float


# --------------------------------------------------------------------------- ACD
class QueueRow(TypedDict):
    name: str
    config: str
    created_at: float | None
    updated_at: float | None


class QueueNumberRow(TypedDict):
    name: str
    number: str


class AgentRow(TypedDict):
    id: str
    name: str
    skills: str
    wrap_up: float | None
    extension: str | None
    state: str
    pause_reason: str | None
    state_since: float | None
    created_at: float | None
    updated_at: float | None


class AgentEventRow(TypedDict):
    seq: int
    ts: float
    agent: str
    kind: str
    detail: str


class QueueEventRow(TypedDict):
    seq: int
    ts: float
    queue: str | None
    call_id: str | None
    agent: str | None
    kind: str
    data: str


class CallbackRow(TypedDict):
    id: int
    number: str
    queue: str
    requested_at: float
    status: str
    attempts: int
    last_attempt_at: float | None
    call_id: str | None
    agent: str | None
    result: str | None
    merged_count: int


class AcdStateRow(TypedDict):
    key: str
    value: str
    updated_at: float | None


# --------------------------------------------------------------------------- front line
class ScheduleRow(TypedDict):
    name: str
    tz: str
    week: str
    holidays: str
    updated_at: float | None


class IvrMenuRow(TypedDict):
    name: str
    number: str | None
    config: str
    updated_at: float | None


class RingGroupRow(TypedDict):
    name: str
    members: str
    strategy: str
    ring_time: float
    then_dest: str
    created_at: float | None


class CallerRow(TypedDict):
    number: str
    name: str | None
    patient_id: str | None
    first_seen: float | None
    last_seen: float | None
    calls: int
    last_outcome: str | None
    last_agent: str | None
    last_call_id: str | None
    imported_at: float | None


class WebhookRow(TypedDict):
    id: int
    url: str
    events: str
    secret: str
    created_at: float
    failing_since: float | None
    last_error: str | None
    last_ok_at: float | None


class VoicemailBoxRow(TypedDict):
    box: str
    number: str | None
    on_no_answer: int
    max_seconds: float
    created_at: float | None
    email: str


class VoicemailRow(TypedDict):
    id: str
    box: str
    caller: str | None
    did: str | None
    call_id: str | None
    received_at: float
    seconds: float | None
    path: str
    heard: int
    deleted_at: float | None


class NotificationRow(TypedDict):
    id: int
    kind: str
    channel: str
    target: str
    payload: str
    status: str
    created_at: float
    attempts: int
    next_attempt_at: float
    sent_at: float | None
    last_error: str | None


# --------------------------------------------------------------------------- trunks, DIDs, routes
class TrunkRow(TypedDict):
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    password: str | None
    auth_username: str | None
    domain: str | None
    register: int
    expires: int
    priority: int
    caller_id: str | None
    number_format: str
    strip_prefix: str
    add_prefix: str
    max_channels: int
    inbound_ips: str
    enabled: int
    tls_verify: int
    created_at: float | None
    updated_at: float | None


class DidRow(TypedDict):
    number: str
    destination: str
    service_line: str
    trunk: str | None
    created_at: float | None
    known_dest: str | None
    new_dest: str | None


class RouteRow(TypedDict):
    name: str
    tz: str
    created_at: float | None


class RouteRuleRow(TypedDict):
    route: str
    position: int
    conditions: str
    destination: str
    options: str


# --------------------------------------------------------------------------- reasons (pypbx.reasons)
class ReasonRow(TypedDict):
    code: str
    label: str
    digit: str | None
    notify: str
    created_at: float
    updated_at: float | None
    retired_at: float | None


class CallReasonRow(TypedDict):
    """A reason set for a call, with the call's columns the reports need."""

    seq: int
    call_id: str
    code: str
    agent: str | None
    extension: str | None
    via: str
    set_at: float
    offered_at: float | None
    service_line: str | None
    did: str | None
    queue: str | None
    call_agent: str | None


class CommentedSurveyRow(SurveyRow):
    """A survey answer with its recorded comment (None when the caller left none)."""

    comment_path: str | None
    comment_seconds: float | None
    caller_number: str | None
