"""The suite's error families, kept apart because each one ends a run differently.

    ConformanceError                 the tool itself could not do its job (never "the server is wrong")
    ├── UsageError                   the user misused or misconfigured the tool        → exit 2
    │   └── NotACustomCrm            the target answers, but nothing like a Custom CRM API (a static file
    │                                server, another API, a wrong path prefix)           → exit 2
    └── TransportError               the server could not be reached or talked to     → exit 2 when nothing
        │                            (refused, timeout, TLS, redirect off-host)          could be judged
        ├── ServerUnreachable        no connection could be made at all (refused, DNS, TLS, connect
        │                            timeout): the request never reached the server, so retrying is safe
        └── AnswerTimeout            the whole answer did not arrive within --timeout: what that request
                                     would have judged is not judged (the docs set no time limit)

    RuleViolation(AssertionError)    the server under test breaks a rule (conformance.results) → exit 1
                                     when the rule is MUST; a warning when it is SHOULD

Every message is one full sentence that says what happened and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AnswerTimeout",
    "ConformanceError",
    "NotACustomCrm",
    "ServerUnreachable",
    "TransportError",
    "UsageError",
]


class ConformanceError(Exception):
    """Root of the tool's own errors (not verdicts about the server)."""


class UsageError(ConformanceError):
    """The tool was misused: bad flag, unreadable config file, unknown rule id."""


class NotACustomCrm(UsageError):
    """The base URL answers, but not as a Custom CRM API: judging it would only list every rule as broken."""


class TransportError(ConformanceError):
    """The server could not be reached or did not answer in a usable way at the transport level."""


class ServerUnreachable(TransportError):
    """No connection could be made (refused, DNS, TLS, connect timeout): nothing reached the server.

    Kept apart from its parent because the two end a run differently: a request that reached the server
    and got no usable answer is evidence about that one rule, whereas a server that stops accepting
    connections mid-run leaves nothing further to judge.
    """


class AnswerTimeout(TransportError):
    """The request went out and its whole answer did not arrive within the request's deadline.

    The docs set no response time, so this is not a verdict on the rule the request judges: that rule
    is not judged (INCOMPLETE when it is a MUST), and the line says why.
    """
