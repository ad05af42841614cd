"""The API's OpenAPI 3 description, served at /api/v1/openapi.json. Built from the route
table (pypbx.web.routes: paths, methods, summaries, who may call) plus the request bodies
written here; a test checks that its paths are exactly the router's /api/v1/ routes."""

from __future__ import annotations

from pypbx import __version__
from pypbx.web.routes import ROUTES

_BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/api/v1/agents/{agent}/pause"): {
        "reason": {"type": "string", "enum": ["break", "lunch", "admin", "other"]}
    },
    ("POST", "/api/v1/agents/{agent}/login"): {"extension": {"type": "string"}},
    ("POST", "/api/v1/missed/{task}/close"): {"outcome": {"type": "string"}},
    ("POST", "/api/v1/missed/{task}/call"): {"extension": {"type": "string"}},
    ("POST", "/api/v1/recordings/{call}/review"): {
        "answers": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "comment": {"type": "string"},
    },
    ("PUT", "/api/v1/quality/checklist"): {"items": {"type": "array", "items": {"type": "string"}}},
    ("POST", "/api/v1/voicemail/{msg}/heard"): {"heard": {"type": "boolean"}},
    ("POST", "/api/v1/agents/{agent}/call"): {"number": {"type": "string"}},
    ("POST", "/api/v1/calls/{call}/reason"): {"code": {"type": "string"}},
    ("POST", "/api/v1/calls/{call}/note"): {"text": {"type": "string", "maxLength": 500}},
    # the Settings pages (pypbx.web.settings); a refused value answers 400 {"error", "field"}
    ("POST", "/api/v1/settings/extensions"): {"number": {"type": "string"}, "name": {"type": "string"}},
    ("POST", "/api/v1/settings/agents/{agent}/skills"): {"skills": {"type": "string"}},
    ("POST", "/api/v1/settings/hours/{name}"): {"week": {"type": "string"}, "tz": {"type": "string"}},
    ("POST", "/api/v1/settings/hours/{name}/holidays"): {
        "date": {"type": "string"},
        "ranges": {"type": "string"},
        "remove": {"type": "boolean"},
    },
    ("POST", "/api/v1/settings/queues/{name}"): {
        "overflow_after": {"type": "string"},
        "overflow_to": {"type": "string"},
        "callback_allowed": {"type": "boolean"},
        "auto_callback": {"type": "boolean"},
        "callback_max_attempts": {"type": "string"},
        "callback_retry_delay": {"type": "string"},
        "callback_hours": {"type": "string"},
    },
}


def spec() -> dict[str, object]:
    paths: dict[str, dict[str, object]] = {}
    for r in ROUTES:
        if not r.path.startswith("/api/v1/"):
            continue
        op: dict[str, object] = {
            "summary": r.summary,
            "x-roles": sorted(role.value for role in r.roles),
            "responses": {
                "200": {"description": "OK"},
                "401": {"description": "no session or token"},
                "403": {"description": "not allowed for this role, or CSRF token missing"},
            },
        }
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in r.path.split("/")
            if part.startswith("{")
        ]
        if params:
            op["parameters"] = params
        body = _BODIES.get((r.method, r.path))
        if body:
            op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object", "properties": body}}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "pypbx web desk API", "version": f"1 (pypbx {__version__})"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "pypbx token add --role R"},
                "session": {"type": "apiKey", "in": "cookie", "name": "pypbx_session"},
            }
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
    }
