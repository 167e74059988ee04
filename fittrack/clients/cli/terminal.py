"""Everything the CLI shows: tables, lines, sparklines, progress and errors, through Rich.

stdout carries results (or JSON with --json, and nothing else); stderr carries progress, notes, warnings
and errors, so `fittrack report download -o - > file` and `| jq` stay clean. Colour only on a terminal,
never when NO_COLOR is set (Rich reads NO_COLOR and FORCE_COLOR itself).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from fittrack.clients.cli.vocabulary import ENUM_WORDS

SPARK_BARS = "▁▂▃▄▅▆▇█"
# Spaces at the end of a line, before any closing style codes.
_TRAILING_SPACE = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")
# Piped output is read by programs and people's scrollback, not wrapped to an 80-column guess.
PIPE_WIDTH = 1000


class Terminal:
    """The two streams, each a Rich console; user-supplied text is never read as Rich markup."""

    def __init__(self) -> None:
        self.out = Console(file=sys.stdout, highlight=False, markup=False, emoji=False)
        self.err = Console(file=sys.stderr, highlight=False, markup=False, emoji=False)
        for console in (self.out, self.err):
            if not console.is_terminal:
                console.width = PIPE_WIDTH

    # --- results, on stdout ---

    def line(self, text: str | Text = "", style: str | None = None) -> None:
        self.out.print(text, style=style, soft_wrap=True)

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[str | Text]],
        right: Sequence[int] = (),
        whole: Sequence[int] = (),
    ) -> None:
        """Aligned columns under a bold header, as gh prints lists; `right` names the numeric columns, and
        `whole` the ones never shortened on a narrow terminal (ids people copy)."""
        rows = list(rows)
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
        for index, column in enumerate(columns):
            widest = max((len(str(row[index])) for row in rows), default=0)
            table.add_column(
                column,
                justify="right" if index in right else "left",
                no_wrap=True,
                min_width=max(widest, len(column)) if index in whole else None,
            )
        for row in rows:
            table.add_row(*row)
        self._print_block(table)

    def fields(self, rows: Iterable[tuple[str, str]]) -> None:
        """label: value pairs, the values aligned."""
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for label, value in rows:
            table.add_row(label, value or "-")
        self._print_block(table)

    def _print_block(self, renderable) -> None:
        """Print without the spaces Rich pads a table's last column with: they are noise in files and diffs."""
        with self.out.capture() as captured:
            self.out.print(renderable)
        lines = (_TRAILING_SPACE.sub(r"\1", line) for line in captured.get().split("\n"))
        self.out.file.write("\n".join(lines))
        self.out.file.flush()

    def json(self, value: Message | dict | list) -> None:
        # Plain print, not Rich: JSON must never be wrapped or coloured.
        print(json.dumps(message_dict(value) if isinstance(value, Message) else value, indent=2, ensure_ascii=False))

    def json_line(self, value: Message | dict) -> None:
        shown = message_dict(value) if isinstance(value, Message) else value
        print(json.dumps(shown, ensure_ascii=False), flush=True)

    # --- everything else, on stderr ---

    def note(self, text: str) -> None:
        self.err.print(text, style="dim", soft_wrap=True)

    def warning(self, text: str) -> None:
        self.err.print(Text.assemble(("warning: ", "yellow bold"), text), soft_wrap=True)

    def error(self, message: str, hints: Sequence[str] = ()) -> None:
        self.err.print(Text.assemble(("error: ", "red bold"), message), soft_wrap=True)
        for hint in hints:
            self.err.print(Text.assemble(("hint: ", "cyan"), hint), soft_wrap=True)

    def progress(self, description: str, total: int, draw: bool = True) -> Transfer:
        return Transfer(self.err, description, total, draw)


class Transfer:
    """Bytes received, as a bar with rate and time left on a terminal, else one summary line at the end.

    `draw` off keeps the bar away even from a terminal: when the data itself goes to that terminal, a bar
    redrawn over it would garble both."""

    def __init__(self, console: Console, description: str, total: int, draw: bool = True) -> None:
        self.console = console
        self.description = description
        self.total = total
        self.done = 0
        self._bar: Progress | None = None
        if console.is_terminal and draw:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(elapsed_when_finished=True),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task(description, total=total)
            self._bar.start()

    def update(self, done: int) -> None:
        self.done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done)

    def finish(self, summary: bool = True) -> None:
        if self._bar is not None:
            task = self._bar.tasks[0]
            # The rate over the whole transfer: Rich's own estimate needs two updates, so a file that came
            # in one chunk would show "?".
            if self.done and task.elapsed:
                task.finished_speed = self.done / task.elapsed
            self._bar.stop()  # draws the bar once more as it stands, and leaves a newline behind
            return
        if summary:
            # Rounded down: 99.6% received is not 100%.
            share = int(self.done * 100 / self.total) if self.total else 100
            self.console.print(f"{self.description}: received {self.done:,} of {self.total:,} bytes ({share}%)")


def message_dict(message: Message) -> dict[str, Any]:
    shown = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        # Counts are uint64 on the wire; scripts want numbers, not the strings proto3 JSON allows for them.
        unquote_int64_if_possible=True,
    )
    _in_cli_words(message, shown)
    return shown


def _in_cli_words(message: Message, shown: dict[str, Any]) -> None:
    """Replace, in place, the enum names the CLI has its own words for (vocabulary.ENUM_WORDS)."""
    for field in message.DESCRIPTOR.fields:
        value = shown.get(field.name)
        if value is None:
            continue
        repeated = field.is_repeated
        if field.enum_type is not None:
            words = ENUM_WORDS.get(field.enum_type.full_name)
            if words:
                shown[field.name] = [words.get(v, v) for v in value] if repeated else words.get(value, value)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            inner = getattr(message, field.name)
            for sub_message, sub_shown in zip(inner, value, strict=True) if repeated else [(inner, value)]:
                if isinstance(sub_shown, dict):  # well-known types (Timestamp) are shown as strings
                    _in_cli_words(sub_message, sub_shown)


def sparkline(values: Sequence[float | None], floor: float | None = None) -> str:
    """One bar per value, scaled from `floor` (default: the smallest value) to the largest.

    A day without data is a `·`, so it never reads as a zero."""
    present = [v for v in values if v is not None]
    if not present:
        return "·" * len(values)
    low = min(present) if floor is None else floor
    span = max(present) - low
    bars = []
    for value in values:
        if value is None:
            bars.append("·")
        elif span <= 0:
            bars.append(SPARK_BARS[-1] if value > 0 else SPARK_BARS[0])
        else:
            bars.append(SPARK_BARS[min(len(SPARK_BARS) - 1, int((value - low) / span * len(SPARK_BARS)))])
    return "".join(bars)
