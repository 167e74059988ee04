"""Commands about reports: a week or month against the goals, and long-range CSV or PDF downloads."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.context import Context
from fittrack.clients.cli.errors import CliError, UsageError
from fittrack.clients.cli.session import Metadata
from fittrack.clients.cli.terminal import message_dict, sparkline
from fittrack.clients.cli.vocabulary import Metric
from fittrack.generated.v1 import common_pb2, report_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands

REPORT_FORMATS = {"csv": report_pb2.REPORT_FORMAT_CSV, "pdf": report_pb2.REPORT_FORMAT_PDF}


def add_commands(commands: Commands) -> None:
    reports = commands.group("report", "week and month reports, downloads")
    view = commands.command(reports, "view", cmd_report_view, "a week or month against the goals")
    length = view.add_mutually_exclusive_group()
    length.add_argument("--week", action="store_true", help="a week (the default)")
    length.add_argument("--month", action="store_true", help="a calendar month")
    view.add_argument("--date", type=words.day, help="a day in the period (default: the last full one)")
    download = commands.command(reports, "download", cmd_report_download, "download daily values as CSV or PDF")
    download.add_argument("--from", dest="from_date", type=words.day, required=True, help="first day, YYYY-MM-DD")
    download.add_argument("--to", dest="to_date", type=words.day, required=True, help="last day, or today")
    download.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="file or directory to write to, - for stdout (default: the server's file name, here)",
    )
    download.add_argument(
        "--format",
        choices=sorted(REPORT_FORMATS),
        help="csv (daily values) or pdf (summary and charts); default: the output's extension, else csv",
    )


# --- view ---


def cmd_report_view(ctx: Context, args: argparse.Namespace) -> None:
    period = report_pb2.REPORT_PERIOD_MONTH if args.month else report_pb2.REPORT_PERIOD_WEEK
    request = report_pb2.ViewReportRequest(period=period)
    if args.date:
        request.anchor.CopyFrom(words.proto_date(ctx.day(args.date)))
    report = ctx.client.unary(ctx.client.reports.ViewReport, request)
    if args.json:
        ctx.terminal.json(report)
        return
    out = ctx.terminal
    span = "month" if period == report_pb2.REPORT_PERIOD_MONTH else "week"
    out.line(f"{span.capitalize()}ly report, {words.day_of(report.start)} to {words.day_of(report.end)}", style="bold")
    for section in report.metrics:
        metric = Metric.of_kind(section.metric)
        if metric is None:
            continue
        out.line()
        out.line(metric.heading, style="bold")
        if not any(day.has_data for day in section.days):
            out.line(f"  no data this {span}", style="dim")
            continue
        values = [day.value if day.has_data else None for day in section.days]
        rows = [("days", sparkline(values, floor=None if metric.averaged else 0))]
        if not metric.averaged:
            rows.append(("total", metric.amount(section.total)))
        rows.append(("average", metric.amount(section.average) + ("" if metric.averaged else " per day with data")))
        if section.HasField("best_day"):
            rows.append(("best day", f"{words.day_of(section.best_day)}: {metric.amount(section.best_value)}"))
        if section.daily_goal_target:
            rows.append(
                (
                    "goal met",
                    f"{section.days_goal_met} of {days_judged(section)} "
                    f"(daily goal {metric.amount(section.daily_goal_target)}), "
                    f"streak {words.plural(section.current_streak, 'day')}",
                )
            )
        if section.weekly_goal_target:
            rows.append(("weekly goal", metric.amount(section.weekly_goal_target)))
        if section.HasField("change_percent"):
            rows.append(("vs previous", f"{section.change_percent:+.1f}%"))
        else:
            rows.append(("vs previous", f"no data in the previous {span}"))
        out.fields((f"  {label}", value) for label, value in rows)


# --- download ---


class Destination:
    """Where a download goes, checked before anything is asked of the server.

    A regular file (new or existing, through any symlinks) is written aside and renamed at the end, so a
    broken download never looks like a complete file; anything else that is not a directory (a FIFO,
    /dev/stdout, a process substitution) is written in place, since renaming over it would replace it.
    """

    def __init__(self, output: str | None, requested_format: str | None) -> None:
        self.to_stdout = output == "-"
        self.directory: Path | None = None
        self.path: Path | None = None
        extension = ""
        if output and not self.to_stdout:
            path = Path(output).expanduser()
            if path.is_dir():
                self.directory = path  # the server's file name, in that directory
            elif output.endswith("/"):
                raise CliError(f"cannot write into {output}: there is no such directory", hint="create it first")
            else:
                self.path = path
                extension = path.suffix.lower().lstrip(".")
                if not _special(path):
                    _check_parent(path.resolve())
        if extension and extension not in REPORT_FORMATS and not requested_format:
            raise UsageError(
                f"cannot write {words.a_or_an(extension)} file: reports come as csv or pdf",
                hint=f"name the file .csv or .pdf, or give --format to write {output} anyway",
            )
        if requested_format and extension in REPORT_FORMATS and extension != requested_format:
            raise UsageError(
                f"--format {requested_format} does not match the file name {output}",
                hint=f"name it .{requested_format}, or leave out --format",
            )
        self.format = requested_format or (extension if extension in REPORT_FORMATS else "csv")
        # Like curl: binary output on a terminal would garble it, and the person surely meant a file.
        self.to_terminal = self.to_stdout and sys.stdout.isatty()
        if self.to_terminal and self.format == "pdf":
            raise UsageError(
                "a PDF is binary and -o - would write it to this terminal",
                hint="save it with -o FILE (e.g. -o report.pdf), or pipe it: `-o - | your-viewer`",
            )

    def file_for(self, suggested: str) -> Path | None:
        if self.to_stdout:
            return None
        if self.path is not None:
            return self.path
        # basename: the server suggests a name, it does not get to pick a directory.
        name = os.path.basename(suggested) or f"fittrack-report.{self.format}"
        return (self.directory or Path(".")) / name

    @contextlib.contextmanager
    def open(self, path: Path | None) -> Iterator[Callable[[bytes], object]]:
        """A writer for the bytes; on leaving without an error the file is complete where it was named."""
        if path is None:
            # Each chunk flushed as it comes: a reader (`| head`, a terminal) sees it at once, and the summary
            # line on stderr comes after the data, not before what sits in a buffer.
            def write_out(chunk: bytes) -> None:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()

            yield write_out
            return
        if _special(path):
            with _open(path) as sink:
                yield sink.write
            return
        final = path.resolve()  # through symlinks: the link stays, the file it names is replaced
        partial = final.with_name(final.name + ".part")
        try:
            with _open(partial, shown=path) as sink:
                yield sink.write
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)


def _special(path: Path) -> bool:
    """Something that exists and is neither a regular file nor a directory: write to it, never replace it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _check_parent(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        raise CliError(
            f"cannot write {path}: the directory {parent} does not exist", hint="create it, or choose another -o"
        )
    if not parent.is_dir():
        raise CliError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path}: the directory {parent} is not writable")


def _open(path: Path, shown: Path | None = None):
    """`path` opened for writing; a failure names `shown`, the file the user asked for (not the .part aside)."""
    try:
        return open(path, "wb")  # noqa: SIM115 - the caller's with-block closes it
    except IsADirectoryError:
        raise CliError(f"cannot write {shown or path}: a directory has that name") from None
    except OSError as error:
        raise CliError(f"cannot write {shown or path}: {error.strerror}") from None


def cmd_report_download(ctx: Context, args: argparse.Namespace) -> None:
    destination = Destination(args.output, args.format)
    client = ctx.client
    start, end = ctx.date_range(args.from_date, args.to_date, up_to_today=True)
    range_ = common_pb2.DateRange(start=words.proto_date(start), end=words.proto_date(end))
    request = report_pb2.DownloadReportRequest(range=range_, format=REPORT_FORMATS[destination.format])

    def download(auth: Metadata) -> tuple[report_pb2.ReportFileInfo, Path | None]:
        responses = client.reports.DownloadReport(request, metadata=auth, timeout=client.timeout)
        first = next(responses, None)
        if first is None or first.WhichOneof("part") != "info":
            raise CliError("the server did not describe the file before sending it")
        info = first.info
        path = destination.file_for(info.filename)
        received = 0
        # The bar names the file only: a long path would leave no room for the rate and time left.
        progress = ctx.terminal.progress(
            path.name if path else info.filename or "download", info.total_bytes, draw=not destination.to_terminal
        )
        with destination.open(path) as write:
            try:
                for response in responses:
                    write(response.chunk)
                    received += len(response.chunk)
                    progress.update(received)
            except BrokenPipeError:
                progress.finish(summary=False)  # the reader has gone, and has all it wanted
                raise
            except BaseException:
                progress.finish()
                raise
            progress.finish()
            if received != info.total_bytes:
                raise CliError(f"the download stopped at {received:,} of {info.total_bytes:,} bytes; try again")
        return info, path

    try:
        info, path = client.call(download)
    except BrokenPipeError:
        raise  # the reader of stdout has gone: main ends quietly
    except OSError as error:
        raise CliError(f"cannot write the report: {error.strerror}") from None
    if path is None:
        return
    if args.json:
        ctx.terminal.json({"file": str(path), "info": message_dict(info)})
    else:
        ctx.terminal.line(f"Saved {path} ({info.total_bytes:,} bytes, {info.content_type}).")


def days_judged(section) -> str:
    """'7 days' for a period that has ended; '3 days so far' for one still in progress."""
    so_far = section.days_so_far
    if so_far and so_far < len(section.days):
        return f"{words.plural(so_far, 'day')} so far"
    return words.plural(len(section.days), "day")
