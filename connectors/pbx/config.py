"""Where the PBX's manager interface is: ``ami://user:secret@host:port`` parsed into ``AmiConfig``.

Optional query parameters set what the ``pbx.originate`` operation dials:
``?context=from-internal`` (dialplan context of the customer leg) and
``&agent_channel=PJSIP/{extension}`` (how an agent's extension is rung; ``Local/{extension}@agents``
and ``SIP/{extension}`` are other common forms). Imports nothing from Flask or the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 5038
DEFAULT_CONTEXT = "from-internal"
DEFAULT_AGENT_CHANNEL = "PJSIP/{extension}"


@dataclass(frozen=True)
class AmiConfig:
    """Connection settings of one Asterisk manager account; the secret stays out of ``repr``."""

    host: str
    username: str
    secret: str = field(repr=False)
    port: int = DEFAULT_PORT
    context: str = DEFAULT_CONTEXT
    agent_channel: str = DEFAULT_AGENT_CHANNEL

    def agent_channel_for(self, extension: str) -> str:
        """The channel that rings an agent's extension, e.g. ``PJSIP/8001``."""
        return self.agent_channel.format(extension=extension)


def parse_ami_url(url: str) -> AmiConfig:
    """Parse ``ami://user:secret@host[:port][?context=…&agent_channel=…]``; raise ``ValueError``
    naming what is wrong (never echoing the secret)."""
    if not url or not isinstance(url, str):
        raise ValueError("AMI URL is empty; expected ami://user:secret@host:port")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "ami":
        raise ValueError(f"AMI URL must start with ami:// (got scheme {parts.scheme or 'none'!r})")
    if not parts.hostname:
        raise ValueError("AMI URL has no host; expected ami://user:secret@host:port")
    if not parts.username:
        raise ValueError("AMI URL has no user name; expected ami://user:secret@host:port")
    if parts.password is None or parts.password == "":
        raise ValueError("AMI URL has no secret; expected ami://user:secret@host:port")
    try:
        port = parts.port  # urlsplit raises ValueError for non-numeric or out-of-range ports
    except ValueError:
        raise ValueError("AMI URL has an invalid port; expected a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("AMI URL has an invalid port; expected a number from 1 to 65535")
    if parts.path not in ("", "/"):
        raise ValueError(f"AMI URL takes no path (got {parts.path!r})")
    options = {"context": DEFAULT_CONTEXT, "agent_channel": DEFAULT_AGENT_CHANNEL}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in options:
            raise ValueError(f"AMI URL has an unknown option {key!r} (known: context, agent_channel)")
        if not values[-1]:
            raise ValueError(f"AMI URL option {key!r} is empty")
        options[key] = values[-1]
    if "{extension}" not in options["agent_channel"]:
        raise ValueError("AMI URL option 'agent_channel' must contain {extension}, e.g. PJSIP/{extension}")
    return AmiConfig(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        username=unquote(parts.username),
        secret=unquote(parts.password),
        context=options["context"],
        agent_channel=options["agent_channel"],
    )
