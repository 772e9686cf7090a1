"""A declarative field mapping: add a log format from configuration, without code.

A ``FieldMapping`` says where each AuditEvent field comes from in the source record, as a
JSON Pointer (RFC 6901): ``""`` is the whole record, ``/a/b`` the member ``b`` of member
``a``, ``/items/0`` the first array element; ``~1`` stands for ``/`` and ``~0`` for ``~``
inside a name (§3, §4). A pointer that does not resolve leaves the field unset (§4's "error
condition" is treated as "absent", since log records routinely omit fields).

Configuration (``from_config``; every error names the key at fault)::

    {
      "name": "gateway",                       # the format name (?format=gateway)
      "fields": {                              # AuditEvent field path -> JSON pointer
        "time": "/ts", "user": "/principal/email", "client_id": "/oauth/client_id",
        "token.id": "/oauth/jti", "source.ip": "/remote_addr",
        "scopes": "/oauth/scope", "attributes.route": "/route"
      },
      "constants": {"tenant": "acme"},         # AuditEvent field path -> fixed value
      "action_pointer": "/kind",               # where the source says what happened
      "action_map": {"token_minted": "token.issued", "call": "token.used"},
      "ignore_unmapped_actions": true,         # other kinds: ignored, not rejected
      "outcome_pointer": "/status",            # optional, with outcome_map
      "outcome_map": {"ok": "success", "denied": "failure"},
      "time_format": "epoch_ms",               # rfc3339 | epoch_s | epoch_ms
      "match": {"/source": "gateway"},         # pointer -> value, for format detection
      "keep_original": true                    # the record (bounded) -> attributes[name]
    }

Field paths: ``id``, ``time``, ``tenant``, ``action``, ``user``, ``agent``,
``client_id``, ``audience``, ``scopes``, ``destination``, ``outcome``, ``token.id``,
``token.parent_id``, ``token.family_id``, ``token.type``, ``source.ip``, ``source.asn``,
``source.user_agent``, and ``attributes.<name>``. The action comes from
``constants.action`` or from ``action_pointer`` through ``action_map`` (whose values must
be known actions). ``time`` must be mapped. Without ``match`` a mapping is never
auto-detected; it is used when named explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ingest.event import is_known_action
from ingest.normalizers._fields import bounded, ident, integer, pick_tenant, scope_list
from ingest.normalizers.base import NormalizeError

TimeFormat = Literal["rfc3339", "epoch_s", "epoch_ms"]
TIME_FORMATS: frozenset[str] = frozenset({"rfc3339", "epoch_s", "epoch_ms"})
SCALAR_PATHS = frozenset(
    {
        "id",
        "time",
        "tenant",
        "action",
        "user",
        "agent",
        "client_id",
        "audience",
        "destination",
        "outcome",
        "token.id",
        "token.parent_id",
        "token.family_id",
        "token.type",
        "source.ip",
        "source.user_agent",
    }
)
FIELD_PATHS = SCALAR_PATHS | {"scopes", "source.asn"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ATTR = re.compile(r"attributes\.[A-Za-z0-9_.-]{1,64}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_CONFIG_KEYS = frozenset(
    {
        "name",
        "fields",
        "constants",
        "action_pointer",
        "action_map",
        "ignore_unmapped_actions",
        "outcome_pointer",
        "outcome_map",
        "time_format",
        "match",
        "keep_original",
    }
)
_MISSING = object()


class MappingConfigError(ValueError):
    """A mapping configuration error; ``key`` is the dotted path of the bad key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON Pointer (§3, §4 unescaping)."""
    if not isinstance(pointer, str):
        raise ValueError("a JSON pointer must be a string")
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer[:40]!r} must be empty or start with '/'")
    tokens = []
    for raw in pointer[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise ValueError(f"JSON pointer {pointer[:40]!r}: '~' must be '~0' or '~1'")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def resolve(document: Any, tokens: tuple[str, ...]) -> Any:
    """The value ``tokens`` point at, or ``_MISSING``."""
    value = document
    for token in tokens:
        if isinstance(value, Mapping):
            if token not in value:
                return _MISSING
            value = value[token]
        elif isinstance(value, list):
            if not _INDEX.fullmatch(token) or int(token) >= len(value):
                return _MISSING
            value = value[int(token)]
        else:
            return _MISSING
    return value


def _valid_path(path: Any) -> bool:
    return isinstance(path, str) and (path in FIELD_PATHS or _ATTR.fullmatch(path) is not None)


@dataclass(frozen=True, slots=True, eq=False)
class FieldMapping:
    """A declarative normalizer (see the module docstring); validated when constructed."""

    name: str
    fields: Mapping[str, str]
    constants: Mapping[str, Any] = field(default_factory=dict)
    action_pointer: str | None = None
    action_map: Mapping[str, str] = field(default_factory=dict)
    ignore_unmapped_actions: bool = False
    outcome_pointer: str | None = None
    outcome_map: Mapping[str, str] = field(default_factory=dict)
    time_format: TimeFormat = "rfc3339"
    match: Mapping[str, Any] = field(default_factory=dict)
    keep_original: bool = True
    _compiled: tuple[tuple[str, tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False
    )
    _action: tuple[str, ...] | None = field(init=False, repr=False, compare=False)
    _outcome: tuple[str, ...] | None = field(init=False, repr=False, compare=False)
    _match: tuple[tuple[tuple[str, ...], Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise MappingConfigError(
                "name", "must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting alnum"
            )
        if not isinstance(self.fields, Mapping):
            raise MappingConfigError("fields", "must be an object of field path -> JSON pointer")
        if not isinstance(self.constants, Mapping):
            raise MappingConfigError("constants", "must be an object of field path -> value")
        compiled = []
        for path, pointer in self.fields.items():
            if not _valid_path(path):
                raise MappingConfigError(f"fields.{path}", _PATH_HELP)
            if path in self.constants:
                raise MappingConfigError(f"fields.{path}", "also set in constants; set it once")
            compiled.append((path, _pointer(f"fields.{path}", pointer)))
        for path, value in self.constants.items():
            if not _valid_path(path):
                raise MappingConfigError(f"constants.{path}", _PATH_HELP)
            if value is None:
                raise MappingConfigError(f"constants.{path}", "must not be null")
            if path in SCALAR_PATHS and (isinstance(value, bool) or not isinstance(value, str)):
                raise MappingConfigError(f"constants.{path}", "must be a string")
            if path == "scopes" and scope_list(value) is None:
                raise MappingConfigError(f"constants.{path}", "must be a string or string array")
            if path == "source.asn" and integer(value) is None:
                raise MappingConfigError(f"constants.{path}", "must be a non-negative integer")
        if "time" not in self.fields:
            raise MappingConfigError("fields.time", "required: where the event time is")
        if self.time_format not in TIME_FORMATS:
            raise MappingConfigError("time_format", f"must be one of {sorted(TIME_FORMATS)}")
        object.__setattr__(self, "_compiled", tuple(compiled))

        const_action = self.constants.get("action")
        action: tuple[str, ...] | None = None
        if self.action_pointer is not None:
            action = _pointer("action_pointer", self.action_pointer)
            if "action" in self.fields or const_action is not None:
                raise MappingConfigError("action_pointer", "use either action_pointer or action")
            if not isinstance(self.action_map, Mapping) or not self.action_map:
                raise MappingConfigError("action_map", "required with action_pointer")
            for source, target in self.action_map.items():
                if not isinstance(target, str) or not is_known_action(target):
                    raise MappingConfigError(f"action_map.{source}", f"unknown action {target!r}")
        elif const_action is not None:
            if not isinstance(const_action, str) or not is_known_action(const_action):
                raise MappingConfigError("constants.action", f"unknown action {const_action!r}")
        elif "action" not in self.fields:
            raise MappingConfigError("action_pointer", "required (or constants.action)")
        if action is None and self.action_map:
            raise MappingConfigError("action_map", "needs action_pointer")
        object.__setattr__(self, "_action", action)

        outcome: tuple[str, ...] | None = None
        if self.outcome_pointer is not None:
            outcome = _pointer("outcome_pointer", self.outcome_pointer)
            if "outcome" in self.fields or "outcome" in self.constants:
                raise MappingConfigError("outcome_pointer", "use either outcome_pointer or outcome")
            if not isinstance(self.outcome_map, Mapping) or not self.outcome_map:
                raise MappingConfigError("outcome_map", "required with outcome_pointer")
            for source, target in self.outcome_map.items():
                if target not in ("success", "failure"):
                    raise MappingConfigError(
                        f"outcome_map.{source}", "must be 'success' or 'failure'"
                    )
        elif self.outcome_map:
            raise MappingConfigError("outcome_map", "needs outcome_pointer")
        object.__setattr__(self, "_outcome", outcome)

        if not isinstance(self.match, Mapping):
            raise MappingConfigError("match", "must be an object of JSON pointer -> value")
        object.__setattr__(
            self,
            "_match",
            tuple((_pointer(f"match.{p}", p), v) for p, v in self.match.items()),
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FieldMapping:
        """A mapping from a configuration object; ``MappingConfigError`` names the bad key."""
        if not isinstance(config, Mapping):
            raise MappingConfigError("(mapping)", "must be an object")
        for key in config:
            if key not in _CONFIG_KEYS:
                raise MappingConfigError(str(key), f"unknown key; known: {sorted(_CONFIG_KEYS)}")
        for key in ("name", "fields"):
            if key not in config:
                raise MappingConfigError(key, "required")
        for key in ("fields", "constants", "action_map", "outcome_map", "match"):
            if key in config and not isinstance(config[key], Mapping):
                raise MappingConfigError(key, "must be an object")
        for key in ("ignore_unmapped_actions", "keep_original"):
            if key in config and not isinstance(config[key], bool):
                raise MappingConfigError(key, "must be true or false")
        for key in ("action_pointer", "outcome_pointer"):
            if config.get(key) is not None and not isinstance(config[key], str):
                raise MappingConfigError(key, "must be a JSON pointer string")
        fmt = config.get("time_format", "rfc3339")
        if fmt not in TIME_FORMATS:
            raise MappingConfigError("time_format", f"must be one of {sorted(TIME_FORMATS)}")
        return cls(
            name=config["name"],
            fields=dict(config["fields"]),
            constants=dict(config.get("constants") or {}),
            action_pointer=config.get("action_pointer"),
            action_map={str(k): v for k, v in (config.get("action_map") or {}).items()},
            ignore_unmapped_actions=bool(config.get("ignore_unmapped_actions", False)),
            outcome_pointer=config.get("outcome_pointer"),
            outcome_map={str(k): v for k, v in (config.get("outcome_map") or {}).items()},
            time_format=cast(TimeFormat, fmt),
            match=dict(config.get("match") or {}),
            keep_original=bool(config.get("keep_original", True)),
        )

    # -- the Normalizer protocol ---------------------------------------------------------

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not self._match or not isinstance(record, Mapping):
            return False
        return all(resolve(record, tokens) == value for tokens, value in self._match)

    def normalize(self, record: Mapping[str, Any], *, tenant: str | None) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for path, value in self.constants.items():
            _put(out, path, value)
        for path, tokens in self._compiled:
            value = resolve(record, tokens)
            if value is _MISSING or value is None:
                continue
            _put(out, path, self._convert(path, value))
        if "time" not in out:
            raise NormalizeError(f"time: nothing at {self.fields['time']!r}", code="missing_field")
        if self._action is not None:
            source = resolve(record, self._action)
            key = _key(source)
            action = self.action_map.get(key) if key is not None else None
            if action is None:
                if self.ignore_unmapped_actions and key is not None:
                    return None
                shown = repr(source)[:60] if source is not _MISSING else "nothing"
                raise NormalizeError(
                    f"action: {shown} at {self.action_pointer!r} is not in action_map",
                    code="bad_field",
                )
            out["action"] = action
        if self._outcome is not None:
            key = _key(resolve(record, self._outcome))
            mapped = self.outcome_map.get(key) if key is not None else None
            if mapped is not None:
                out["outcome"] = mapped
        own = out.get("tenant") if isinstance(out.get("tenant"), str) else None
        out["tenant"] = pick_tenant(own, tenant, prefer_record=True, where="tenant")
        attributes = out.setdefault("attributes", {})
        attributes.setdefault("vendor", self.name)
        if self.keep_original:
            attributes[self.name] = bounded(record)
        return out

    def _convert(self, path: str, value: Any) -> Any:
        if path == "time":
            return _time(value, self.time_format)
        if path == "scopes":
            scopes = scope_list(value)
            if scopes is None:
                raise NormalizeError("scopes: expected a string or an array of strings")
            return scopes
        if path == "source.asn":
            asn = integer(value)
            if asn is None:
                raise NormalizeError("source.asn: expected a non-negative integer")
            return asn
        if path in SCALAR_PATHS:
            found = ident(value)
            if found is None:
                raise NormalizeError(f"{path}: expected a string, got {_kind(value)}")
            return found
        return bounded(value)  # attributes.<name>


def _put(out: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        out.setdefault(head, {})[rest] = value
    else:
        out[head] = value


def _key(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _time(value: Any, fmt: str) -> str | float:
    if fmt == "rfc3339":
        if isinstance(value, str):
            return value
        raise NormalizeError(f"time: expected an RFC 3339 string, got {_kind(value)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormalizeError(f"time: expected a number ({fmt}), got {_kind(value)}")
    seconds = value / 1000.0 if fmt == "epoch_ms" else float(value)
    if not 0 <= seconds < 32_503_680_000:
        raise NormalizeError(f"time: {fmt} value out of range")
    return seconds


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _pointer(key: str, pointer: Any) -> tuple[str, ...]:
    if not isinstance(pointer, str):
        raise MappingConfigError(key, "must be a JSON pointer string")
    try:
        return parse_pointer(pointer)
    except ValueError as exc:
        raise MappingConfigError(key, str(exc)) from None


_PATH_HELP = f"not an AuditEvent field path; use one of {sorted(FIELD_PATHS)} or attributes.<name>"
