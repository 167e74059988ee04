"""Errors the domain and service layer raise for a caller's mistake or a backend outage.

Each maps to one gRPC status in fittrack/server/errors.py; the message must tell the
client what to fix, because it is shown to them verbatim.
"""


class DomainError(Exception):
    """Base class: a request that cannot be served as asked."""


class InvalidArgument(DomainError):
    """The request itself is malformed or out of range."""


class Unauthenticated(DomainError):
    """The caller did not prove who they are."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class NotFound(DomainError):
    """The thing asked for does not exist (or is not the caller's)."""


class AlreadyExists(DomainError):
    """Creating something that exists already."""


class FailedPrecondition(DomainError):
    """The request is valid but the system is not in a state that allows it."""


class ResourceExhausted(DomainError):
    """A limit was reached; the message says which."""


class Unavailable(DomainError):
    """A backend is down; the same request may succeed later."""


class Unimplemented(DomainError):
    """The capability exists in the contract but not in this build."""
