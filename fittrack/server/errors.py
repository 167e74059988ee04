"""One place where domain errors become gRPC status codes."""

from __future__ import annotations

import logging

import grpc

from fittrack.core.domain import errors
from fittrack.server.interception import HandlerWrapper

log = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def status_of(error: errors.DomainError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return grpc.StatusCode.INTERNAL


class ErrorInterceptor(HandlerWrapper):
    """A DomainError becomes its status with the error's message, which is
    written for the client; anything else becomes INTERNAL with a generic
    message and is logged with its traceback, so internals never leak."""

    async def on_error(self, method: str, context: grpc.aio.ServicerContext, error: Exception) -> None:
        if isinstance(error, errors.DomainError):
            await context.abort(status_of(error), str(error))
        if isinstance(error, grpc.aio.AbortError):
            raise error
        log.error("unexpected error in %s", method, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")
