"""A third-party kperf plugin: a CLI command and a request type, registered like the built-ins."""

from __future__ import annotations

import attrs
import click

from kperf_core import hookimpl
from kperf_core.cli import plugin_manager
from kperf_core.request_types import RequestType, WireRequest


@click.command("hello")
@click.argument("who", default="kperf")
def hello(who: str) -> None:
    """Greet, and show which plugins this kperf loaded."""
    names = sorted(info.name for info in plugin_manager().plugins())
    click.echo(f"hello {who} from a third-party plugin; loaded plugins: {', '.join(names)}")


@attrs.frozen(kw_only=True)
class DiscoveryConfig:
    #: which discovery document to read
    path: str = attrs.field(default="/version")

    @path.validator
    def _starts_with_slash(self, attribute, value):
        if not value.startswith("/"):
            from kperf_core.profile import InvalidField

            raise InvalidField(attribute.name, f"must start with / (got {value!r})")


class DiscoveryGet(RequestType):
    """GET a discovery document (/version, /apis, …): what every client does on start-up."""

    name = "discoveryGet"
    config_type = DiscoveryConfig

    def build(self) -> WireRequest:
        path = self.config.path
        return WireRequest("GET", path, f"DISCOVERY {path}", headers=(self.context.accept_header,))


@hookimpl
def kperf_register_commands(commands):
    commands.add(hello)


@hookimpl
def kperf_register_request_types(registry):
    registry.add(DiscoveryGet)
