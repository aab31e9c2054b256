"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json. A test walks the
app's route table against it both ways: a route missing here (or a path here with no route)
fails the build."""
from __future__ import annotations

from .. import __version__

_ERR = {"description": "an error: {\"error\": {\"status\", \"message\"}}, the message for a person",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _q(name, desc, schema=None):
    return {"name": name, "in": "query", "required": False, "description": desc,
            "schema": schema or {"type": "string"}}


def _p(name, desc, schema=None):
    return {"name": name, "in": "path", "required": True, "description": desc,
            "schema": schema or {"type": "string"}}


PAGE = [_q("limit", "items per page (1-200, default 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
        _q("cursor", "next_cursor of the previous page")]
NUMBER = _p("number", "the caller's number in E.164, e.g. +15125550188 (URL-encode the + as %2B if your client needs)")
ID = _p("id", "the numeric id", {"type": "integer"})


def _ok(schema_ref: str, status: str = "200", desc: str = "OK", page: bool = False):
    item = {"$ref": f"#/components/schemas/{schema_ref}"}
    if page:
        schema = {"type": "object", "properties": {"data": {"type": "array", "items": item},
                                                   "next_cursor": {"type": ["string", "null"]}}}
    else:
        schema = {"type": "object", "properties": {"data": item}}
    return {status: {"description": desc, "content": {"application/json": {"schema": schema}}},
            "400": _ERR, "401": _ERR, "403": _ERR, "404": _ERR, "429": _ERR}


def _body(props: dict, required: list[str]):
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": props, "required": required, "additionalProperties": True}}}}


def _op(summary, responses, params=(), body=None, write=False):
    op = {"summary": summary + (" (write token)" if write else ""), "parameters": list(params), "responses": responses}
    if body:
        op["requestBody"] = body
    return op


S = {"type": "string"}
NS = {"type": ["string", "null"]}
T = {"type": "string", "format": "date-time"}
TN = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS = {
    "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "status": {"type": "integer"}, "message": S}}}},
    "Call": {"type": "object", "properties": {
        "id": {"type": "integer"}, "call_id": S, "box": S, "number": S, "direction": S, "line": S,
        "missed": {"type": "boolean"}, "reason": S, "why": S, "answered": {"type": "boolean"},
        "voicemail_left": {"type": ["boolean", "null"]}, "recovered": {"type": "boolean"},
        "started_at": TN, "ended_at": TN, "duration_s": {"type": ["number", "null"]}}},
    "Message": {"type": "object", "properties": {
        "id": {"type": "integer"}, "number": S, "direction": {"enum": ["inbound", "outbound"]}, "kind": S,
        "line": S, "body": S, "state": S, "error": S, "note": S, "call": {"type": ["integer", "null"]},
        "created_at": T, "updated_at": T}},
    "Conversation": {"type": "object", "properties": {
        "number": S, "state": {"enum": ["open", "snoozed", "done"]}, "owner": S, "line": S,
        "waiting": {"type": "boolean"}, "missed_calls": {"type": "integer"}, "replies": {"type": "integer"},
        "last_contact_at": T, "waiting_since": TN, "snoozed_until": TN,
        "recent_messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "recent_calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}}}},
    "Contact": {"type": "object", "properties": {
        "number": S, "consent": {"enum": ["none", "conversational", "opted-out", "opted-in"]}, "since": TN,
        "source": S, "can_text": {"type": "boolean"}, "confirmation_queued": {"type": "boolean"},
        "history": {"type": "array", "items": {"type": "object"}}}},
}


def document() -> dict:
    b = "/api/v1"
    paths = {
        f"{b}/openapi.json": {"get": _op("this document", {"200": {"description": "OpenAPI 3.1"}})},
        f"{b}/calls": {"get": _op("calls, newest first", _ok("Call", page=True), PAGE + [
            _q("missed", "true: only missed calls; false: only the others", {"enum": ["true", "false"]}),
            _q("number", "only calls from or to this number (E.164)")])},
        f"{b}/calls/{{id}}": {"get": _op("one call", _ok("Call"), [ID])},
        f"{b}/conversations": {"get": _op("conversations, most recent contact first", _ok("Conversation", page=True), PAGE + [
            _q("view", "open (default), needs-reply, snoozed, done or all",
               {"enum": ["open", "needs-reply", "snoozed", "done", "all"]}),
            _q("owner", "only those assigned to this inbox user ('' = unassigned)")])},
        f"{b}/conversations/{{number}}": {"get": _op("one conversation with its recent calls and messages",
                                                      _ok("Conversation"), [NUMBER])},
        f"{b}/conversations/{{number}}/assign": {"post": _op(
            "assign to an inbox user, or unassign with \"\"", _ok("Conversation"), [NUMBER],
            _body({"owner": S}, ["owner"]), write=True)},
        f"{b}/conversations/{{number}}/state": {"post": _op(
            "open, snooze (until the caller writes, or snooze_minutes) or close (done)", _ok("Conversation"),
            [NUMBER], _body({"state": {"enum": ["open", "snoozed", "done"]},
                             "snooze_minutes": {"type": "number"}}, ["state"]), write=True)},
        f"{b}/messages": {
            "get": _op("texts out and replies in, newest first", _ok("Message", page=True), PAGE + [
                _q("number", "only those to or from this number (E.164)"),
                _q("direction", "inbound or outbound", {"enum": ["inbound", "outbound"]})]),
            "post": _op("send a text as an agent would: refused (409) for an opted-out or "
                        "not-allowed number; queued (202) otherwise",
                        {**_ok("Message", "202", "queued in the outbox"), "409": _ERR, "503": _ERR}, [],
                        _body({"to": S, "body": S, "agent": {"type": "string", "description":
                               "an inbox user the text is sent as (optional)"},
                               "confirm": {"type": "boolean", "description":
                                           "send although another agent is replying (409 without it)"}},
                              ["to", "body"]), write=True)},
        f"{b}/messages/{{id}}": {"get": _op("one message (poll its state: pending, sent, delivered, failed…)",
                                            _ok("Message"), [ID])},
        f"{b}/contacts/{{number}}": {"get": _op("a number's consent state and history", _ok("Contact"), [NUMBER])},
        f"{b}/contacts/{{number}}/opt-out": {"post": _op(
            "record an opt-out (texts waiting for the number are cancelled)", _ok("Contact"), [NUMBER],
            _body({"reason": S, "confirm": {"type": "boolean", "description": "text the confirmation (default true)"}},
                  ["reason"]), write=True)},
        f"{b}/contacts/{{number}}/opt-in": {"post": _op(
            "record an opt-in", _ok("Contact"), [NUMBER],
            _body({"reason": S, "confirm": {"type": "boolean"}}, ["reason"]), write=True)},
        f"{b}/reports": {"get": _op("the manager's numbers: the report of `pbx-textback report --json` as data "
                                    "(README \"Reports, metrics and e-mail to staff\")",
                                    {"200": {"description": "the report as JSON"}, "400": _ERR, "401": _ERR},
                                    [_q("from", "first day, YYYY-MM-DD (default: last week)"),
                                     _q("to", "last day, YYYY-MM-DD, included"),
                                     _q("by", "grouping", {"type": "string", "enum": ["line", "agent", "campaign",
                                                                                      "day", "week"]})])},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "pbx-textback API", "version": __version__,
                     "description": "Token auth: `Authorization: Bearer <token>` (`pbx-textback token add`). "
                                    "Lists are newest first; pass next_cursor back as cursor."},
            "servers": [{"url": "/"}],
            "security": [{"bearer": []}],
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                           "schemas": SCHEMAS},
            "paths": paths}
