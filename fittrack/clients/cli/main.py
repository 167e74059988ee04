"""`fittrack`'s entry point: parse, run the command, and turn every failure into a message and an exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import grpc

from fittrack.clients.channel import explain_unavailable
from fittrack.clients.cli.context import Context
from fittrack.clients.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, CliError
from fittrack.clients.cli.parser import build_parser
from fittrack.clients.cli.terminal import Terminal


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    terminal = Terminal()
    ctx = Context(args, terminal)
    try:
        args.handler(ctx, args)
        return 0
    except CliError as error:
        terminal.error(str(error), error.hints)
        return error.exit_code
    except grpc.RpcError as error:
        terminal.error(*describe_rpc_error(ctx, error))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head`) has gone; point stdout at nothing so the exit-time flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    finally:
        ctx.close()


def describe_rpc_error(ctx: Context, error: grpc.RpcError) -> tuple[str, list[str]]:
    """The server's refusal in words, with what to do about it; gRPC's code names mean nothing to a person."""
    code, details = error.code(), error.details() or ""
    client = ctx.connected  # a call failed, so the command made one
    if code == grpc.StatusCode.UNAVAILABLE and client is not None:
        return explain_unavailable(client.address, client.security, details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the server did not answer within {ctx.args.timeout:g} s", ["try again, or give a larger --timeout"]
    if code == grpc.StatusCode.UNAUTHENTICATED and client is not None and client.session is not None:
        for advice in SESSION_OVER:
            if details.endswith(advice):
                # The hint says how to log in again, with the command; the server's advice would say it twice.
                return details[: -len(advice)], [f"log in again with `fittrack login {client.session.username}`"]
    # A status without details (a proxy's, say) is named in words: "the server answered: internal".
    return details or f"the server answered: {code.value[1]}", []


# How the server ends its refusals of a session that is over
# (fittrack.core.adapters.tokens, fittrack.core.services.accounts).
SESSION_OVER = ("; log in again", "; refresh it or log in again")
