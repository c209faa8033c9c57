"""Load profiles and runner-group specs: attrs models, one cattrs converter, YAML via ruamel.

The schema is upstream kperf's ``LoadProfile`` v1 (``version``, ``description``, ``specs``) plus
the older single ``spec:`` form, accepted and normalised to ``specs: [spec]``. Python attributes
are snake_case; YAML keys are upstream's camelCase (``contentType``, ``disableHTTP2``, …).

Every problem in a file is collected and reported at once, each with its line and YAML path::

    profile.yaml:12: specs[0].requests[1].patch.keySpaceSize: must be > 0 (got 0)

Request-type configs come from plugins: an item's type key (``staleList``, ``patch``, or a
third-party key) is looked up in the request-type registry and structured into that type's
``config_type``. Config classes validate with the helpers below (``positive``, ``one_of``, …), whose
errors carry the field name so the message can name the exact YAML path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from kperf_core.errors import ConfigError

# dns_label, in_range, non_empty and required are re-exported: plugins import them from here.
from kperf_core.validators import (
    InvalidField,
    dns_label,  # noqa: F401
    in_range,  # noqa: F401
    key_of,
    non_empty,  # noqa: F401
    non_negative,
    one_of,
    positive,
    required,  # noqa: F401
    yaml_key,
)

if TYPE_CHECKING:
    from kperf_core.registry import Registry
    from kperf_core.request_types import RequestType

T = TypeVar("T")

CONTENT_TYPES = ("json", "protobuf")
ARRIVAL_MODES = ("closed", "constant", "poisson")

# -------------------------------------------------------------------------------------------------
# Models
# -------------------------------------------------------------------------------------------------


@attrs.frozen
class WeightedRequest:
    """One ``requests:`` item: a request type, its config, and its weight."""

    shares: int
    kind: str
    config: Any


@attrs.frozen
class LoadProfileSpec:
    """One phase of a profile; ``specs`` run back to back."""

    requests: tuple[WeightedRequest, ...]
    rate: float = attrs.field(default=0.0, validator=non_negative())
    total: int = attrs.field(default=0, validator=non_negative())
    duration: float = attrs.field(default=0.0, validator=non_negative())
    conns: int = attrs.field(default=1, validator=positive())
    client: int = attrs.field(default=1, validator=positive())
    content_type: str = attrs.field(default="json", validator=one_of(*CONTENT_TYPES))
    disable_http2: bool = attrs.field(default=False, metadata=yaml_key("disableHTTP2"))
    max_retries: int = attrs.field(default=0)
    # kperf additions (absent from upstream profiles):
    #: closed = upstream's closed loop with a rate cap; constant/poisson = open-loop arrivals at
    #: ``rate``, latency measured from the intended send time.
    arrival: str = attrs.field(default="closed", validator=one_of(*ARRIVAL_MODES))
    #: Client-side deadline per request, in seconds (upstream sends the server hint timeout=1m0s).
    timeout: float = attrs.field(default=60.0, validator=positive())


@attrs.frozen
class LoadProfile:
    version: int = attrs.field(validator=one_of(1))
    specs: tuple[LoadProfileSpec, ...]
    description: str = ""


@attrs.frozen
class RunnerGroupSpec:
    """A runner group: ``count`` runners, each executing ``load_profile``."""

    count: int = attrs.field(validator=positive())
    load_profile: LoadProfile
    node_affinity: dict[str, tuple[str, ...]] | None = None
    service_account: str | None = None
    owner_reference: str | None = None


# -------------------------------------------------------------------------------------------------
# Problems, with YAML paths and lines
# -------------------------------------------------------------------------------------------------

PathPart = str | int


@attrs.frozen
class Problem:
    path: tuple[PathPart, ...]
    message: str

    def render(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return f"{text or '(top level)'}: {self.message}"


class _Problems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _strict_scalar(tp: type[T]) -> Callable[[Any, Any], T]:
    # cattrs would turn "yes" into True and 1.5 into 1; a profile deserves better.
    def structure(value: Any, _type: Any) -> T:
        ok = (
            isinstance(value, bool)
            if tp is bool
            else isinstance(value, (int, float)) and not isinstance(value, bool)
            if tp is float
            else isinstance(value, tp) and not isinstance(value, bool)
        )
        if not ok:
            raise TypeError(f"must be {_type_name(tp)} (got {value!r})")
        return tp(value)  # type: ignore[call-arg]

    return structure


def _yaml_name(cl: type[Any] | None, attribute: str) -> str:
    """The YAML key of ``cl``'s attribute (messages speak the profile's language)."""
    if cl is not None and attrs.has(cl):
        field = attrs.fields_dict(cl).get(attribute)
        if field is not None:
            return key_of(field)
    return attribute


def _problems_from(
    exc: BaseException, path: tuple[PathPart, ...], cl: type[Any] | None = None
) -> list[Problem]:
    """Flatten cattrs' exception groups into problems with full paths."""
    if isinstance(exc, _Problems):
        return [Problem(path + p.path, p.message) for p in exc.problems]
    if isinstance(exc, cattrs.ClassValidationError | cattrs.IterableValidationError):
        owner = getattr(exc, "cl", None)
        found: list[Problem] = []
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, cattrs.AttributeValidationNote):
                    sub_path = (*path, _yaml_name(owner, note.name))
                elif isinstance(note, cattrs.IterableValidationNote):
                    sub_path = (*path, note.index)
            found.extend(_problems_from(sub, sub_path, owner))
        return found
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        allowed = ", ".join(key_of(a) for a in attrs.fields(exc.cl))
        return [
            Problem((*path, key), f"unknown key (allowed: {allowed})")
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, InvalidField):
        return [Problem((*path, _yaml_name(cl, exc.field)), exc.message)]
    if isinstance(exc, KeyError):
        return [Problem(path, "required")]
    return [Problem(path, str(exc))]


def make_converter(request_types: Registry[type[RequestType]]) -> cattrs.Converter:
    """The profile converter: camelCase keys, unknown keys refused, plugin request types."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for scalar in (int, float, bool, str):
        converter.register_structure_hook(scalar, _strict_scalar(scalar))
    converter.register_structure_hook_factory(attrs.has, partial(_attrs_structure, converter))
    converter.register_structure_hook(
        WeightedRequest, partial(_structure_weighted_request, converter, request_types)
    )
    return converter


def _attrs_structure(converter: cattrs.Converter, cl: type[Any]) -> Callable[[Any, Any], Any]:
    """The structure hook of one attrs class: every problem of the value at once, located."""
    attrs.resolve_types(cl)
    fn = make_dict_structure_fn(
        cl,
        converter,
        _cattrs_forbid_extra_keys=True,
        **{a.name: override(rename=key_of(a)) for a in attrs.fields(cl)},  # type: ignore[arg-type]
    )

    def structure(value: Any, tp: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"must be a mapping (got {value!r})")
        try:
            return fn(value, tp)
        except cattrs.ClassValidationError as exc:
            problems = _problems_from(exc, ())
            problems += _sibling_problems(converter, cl, value, problems)
            raise _Problems(problems) from None

    return structure


def _sibling_problems(
    converter: cattrs.Converter, cl: type[Any], value: Mapping[str, Any], known: list[Problem]
) -> list[Problem]:
    # When one field fails, attrs never runs the class's validators, so the other fields'
    # problems would surface one run at a time. Check each remaining field on its own.
    failing = {p.path[0] for p in known if p.path}
    found = []
    for field in attrs.fields(cl):
        key = key_of(field)
        if field.validator is None or key in failing or key not in value:
            continue
        try:
            field.validator(None, field, converter.structure(value[key], field.type))
        except InvalidField as exc:
            found.append(Problem((key,), exc.message))
        except Exception:
            continue
    return found


def _structure_weighted_request(
    converter: cattrs.Converter,
    request_types: Registry[type[RequestType]],
    value: Any,
    _tp: Any,
) -> WeightedRequest:
    """One item of ``requests``: ``shares`` and exactly one registered request type."""
    if not isinstance(value, Mapping):
        raise _Problems([Problem((), "must be a mapping with `shares` and one request type")])
    shares = value.get("shares", 0)
    problems = _shares_problems(shares)
    kinds = [k for k in value if k != "shares"]
    known = ", ".join(request_types.names()) or "(none registered)"
    if not kinds:
        problems.append(Problem((), f"needs one request type (one of: {known})"))
    elif len(kinds) > 1:
        problems.append(
            Problem((), f"has {len(kinds)} request types ({', '.join(kinds)}); use one per item")
        )
    elif (request_type := request_types.get(kinds[0])) is None:
        problems.append(Problem((kinds[0],), f"unknown request type (known: {known})"))
    else:
        try:
            config = converter.structure(value[kinds[0]] or {}, request_type.config_type)
        except Exception as exc:
            problems.extend(_problems_from(exc, (kinds[0],)))
    if problems:
        raise _Problems(problems)
    return WeightedRequest(shares=shares, kind=kinds[0], config=config)


def _shares_problems(shares: Any) -> list[Problem]:
    if isinstance(shares, bool) or not isinstance(shares, int):
        return [Problem(("shares",), f"must be an integer (got {shares!r})")]
    if shares < 0:
        return [Problem(("shares",), f"must be >= 0 (got {shares})")]
    return []


def _spec_problems(
    profile: Mapping[str, Any], request_types: Registry[type[RequestType]]
) -> list[Problem]:
    """Rules that span fields (the converter checks single fields)."""
    problems: list[Problem] = []
    for i, spec in enumerate(profile.get("specs") or ()):
        if not isinstance(spec, Mapping):
            continue
        requests = spec.get("requests")
        if not requests:
            problems.append(Problem(("specs", i, "requests"), "needs at least one request"))
            continue
        shares, background = [], False
        for j, item in enumerate(requests):
            if not isinstance(item, Mapping):
                continue
            kinds = [request_types.get(k) for k in item if k != "shares"]
            if len(kinds) == 1 and kinds[0] is not None and kinds[0].background:
                background = True
                if item.get("shares", 0) != 0:
                    problems.append(
                        Problem(
                            ("specs", i, "requests", j, "shares"),
                            f"{kinds[0].name} runs beside the load (its own sessions), so it "
                            f"takes no shares (got {item['shares']!r})",
                        )
                    )
            else:
                shares.append(item.get("shares", 0))
        if all(isinstance(s, int) for s in shares) and sum(shares) <= 0 and not background:
            problems.append(Problem(("specs", i, "requests"), "shares must add up to more than 0"))
    return problems


# -------------------------------------------------------------------------------------------------
# Loading
# -------------------------------------------------------------------------------------------------


def _read_yaml(text: str, source: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: invalid YAML: {exc.problem}") from None
    except YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


def _line_of(document: Any, path: tuple[PathPart, ...]) -> int | None:
    """1-based line of the deepest node of ``path`` that exists in the round-trip document (the
    document's first line for a missing top-level key)."""
    lc = getattr(document, "lc", None)
    line: int | None = lc.line + 1 if lc is not None else None
    node = document
    for part in path:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(part, int):
                position = lc.item(part) if lc is not None else None
                node = node[part]
            else:
                position = lc.key(part) if lc is not None else None
                node = node[part]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
        if position is not None:
            line = position[0] + 1
    return line


def _normalise_profile(data: Any, prefix: tuple[PathPart, ...]) -> list[Problem]:
    """Accept upstream's older single ``spec:`` key as ``specs: [spec]`` (upstream now crashes)."""
    if not isinstance(data, dict):
        return []
    if "spec" in data:
        if "specs" in data:
            return [Problem((*prefix, "spec"), "use either `spec` (old form) or `specs`, not both")]
        data["specs"] = [data.pop("spec")]
    if "specs" not in data:
        return [Problem((*prefix, "specs"), "required: a list of specs")]
    if not isinstance(data["specs"], list) or not data["specs"]:
        return [Problem((*prefix, "specs"), "must be a non-empty list of specs")]
    return []


def _structure(
    document: Any,
    target: type[T],
    source: str,
    request_types: Registry[type[RequestType]],
    profile_path: tuple[PathPart, ...],
) -> T:
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: must be a YAML mapping (got {type(document).__name__})")
    profile = document
    for part in profile_path:
        profile = profile.get(part) if isinstance(profile, Mapping) else None  # type: ignore[assignment]
    problems = _normalise_profile(profile, profile_path)
    if isinstance(profile, Mapping):
        problems += [
            Problem(profile_path + p.path, p.message)
            for p in _spec_problems(profile, request_types)
        ]
    # Structure even when a cross-field rule failed, so that one message lists every problem.
    try:
        structured = make_converter(request_types).structure(document, target)
    except Exception as exc:
        reported = {problem.path for problem in problems}
        problems += [
            problem
            for problem in _problems_from(exc, ())
            if not any(problem.path[: len(path)] == path for path in reported)
        ]
    else:
        load_profile = (
            structured.load_profile if isinstance(structured, RunnerGroupSpec) else structured
        )
        assert isinstance(load_profile, LoadProfile)
        problems += profile_problems(load_profile, request_types, profile_path)
    if problems:
        raise _config_error(problems, document, source)
    return structured


def profile_problems(
    profile: LoadProfile,
    request_types: Registry[type[RequestType]],
    prefix: tuple[PathPart, ...] = (),
) -> list[Problem]:
    """The rules over a whole structured spec (the converter checks single fields): run at load
    and again after command-line overrides, so that every rule holds before the first request
    of the first spec — none is left to fail when spec N starts, after specs 1..N-1 ran.

    * open-loop arrivals need a rate;
    * a spec whose requests all run in the background (watch) has only its duration to end it;
    * each request type's own rules for the spec it is in (``paginate`` needs json, …), which it
      raises when made (``InvalidField`` for one of its fields, ``ConfigError`` for the item).
    """
    from kperf_core.request_types import BuildContext

    problems = []
    for i, spec in enumerate(profile.specs):
        at = (*prefix, "specs", i)
        if spec.arrival != "closed" and spec.rate <= 0:
            problems.append(
                Problem(
                    (*at, "rate"),
                    f"must be > 0 for arrival {spec.arrival!r} (open-loop arrivals come at "
                    f"`rate`; got {spec.rate:g})",
                )
            )
        has_background = any(request_types[item.kind].background for item in spec.requests)
        if has_background and not any(item.shares for item in spec.requests) and spec.duration <= 0:
            problems.append(
                Problem(
                    (*at, "duration"),
                    "required: every request of this spec runs in the background (watch), so "
                    "only a duration ends it",
                )
            )
        context = BuildContext(content_type=spec.content_type)
        for j, item in enumerate(spec.requests):
            where = (*at, "requests", j, item.kind)
            try:
                request_types[item.kind](item.config, context)
            except InvalidField as exc:
                config_type = request_types[item.kind].config_type
                problems.append(Problem((*where, _yaml_name(config_type, exc.field)), exc.message))
            except ConfigError as exc:
                problems.append(Problem(where, str(exc)))
    return problems


#: The name this had before it checked every spec rule.
construction_problems = profile_problems


@attrs.frozen(eq=False)
class ProfileFile:
    """A load profile as read from a file (or from a runner-group spec's ``loadProfile``), with
    what it takes to locate problems found later: :meth:`check` runs the rules again on the
    profile after command-line overrides and names file, line and YAML path."""

    profile: LoadProfile
    source: str
    document: Any
    prefix: tuple[PathPart, ...] = ()

    def check(
        self, profile: LoadProfile, request_types: Registry[type[RequestType]], note: str = ""
    ) -> None:
        problems = profile_problems(profile, request_types, self.prefix)
        if problems:
            raise _config_error(problems, self.document, self.source, note)


def read_profile_file(
    text: str, source: str, request_types: Registry[type[RequestType]]
) -> ProfileFile:
    """A load profile, or a runner-group spec whose ``loadProfile`` is used."""
    document = _read_yaml(text, source)
    if isinstance(document, Mapping) and "loadProfile" in document:
        spec = _structure(document, RunnerGroupSpec, source, request_types, ("loadProfile",))
        return ProfileFile(spec.load_profile, source, document, ("loadProfile",))
    profile = _structure(document, LoadProfile, source, request_types, ())
    return ProfileFile(profile, source, document)


def _config_error(
    problems: Iterable[Problem], document: Any, source: str, note: str = ""
) -> ConfigError:
    located = sorted(
        ((_line_of(document, problem.path) or 0, problem.render()) for problem in problems),
        key=lambda item: item[0],
    )
    suffix = f" ({note})" if note else ""
    lines = [
        f"{source}{f':{line}' if line else ''}: {message}{suffix}" for line, message in located
    ]
    if len(lines) == 1:
        return ConfigError(lines[0])
    return ConfigError(f"{len(lines)} problems:\n  " + "\n  ".join(lines))


def parse_profile(
    text: str, source: str, request_types: Registry[type[RequestType]]
) -> LoadProfile:
    """Parse a load profile from YAML text; ``source`` names it in error messages."""
    return _structure(_read_yaml(text, source), LoadProfile, source, request_types, ())


def parse_runner_group_spec(
    text: str, source: str, request_types: Registry[type[RequestType]]
) -> RunnerGroupSpec:
    """Parse a runner-group spec (``count``, ``loadProfile``, ``nodeAffinity``, …)."""
    return _structure(
        _read_yaml(text, source), RunnerGroupSpec, source, request_types, ("loadProfile",)
    )


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_profile(path: str | Path, request_types: Registry[type[RequestType]]) -> LoadProfile:
    return parse_profile(_read(path), str(path), request_types)


def load_runner_group_spec(
    path: str | Path, request_types: Registry[type[RequestType]]
) -> RunnerGroupSpec:
    return parse_runner_group_spec(_read(path), str(path), request_types)


# -------------------------------------------------------------------------------------------------
# Writing (reports embed the profile they ran)
# -------------------------------------------------------------------------------------------------


def profile_to_dict(profile: LoadProfile) -> dict[str, Any]:
    """The profile with upstream's keys, as a report's ``loadSpec`` shows it."""

    def dump(obj: Any) -> Any:
        if isinstance(obj, WeightedRequest):
            return {obj.kind: dump(obj.config), "shares": obj.shares}
        if attrs.has(type(obj)):
            return {key_of(a): dump(getattr(obj, a.name)) for a in attrs.fields(type(obj))}
        if isinstance(obj, tuple | list):
            return [dump(v) for v in obj]
        if isinstance(obj, dict):
            return {k: dump(v) for k, v in obj.items()}
        return obj

    result: dict[str, Any] = dump(profile)
    return result
