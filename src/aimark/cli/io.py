"""Shared CLI plumbing: input reading, one-line errors, progress display (all on stderr)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Human output and progress go to stderr, so stdout stays machine-readable.
console = Console(stderr=True)

MAX_INPUT_BYTES = 64 * 1024 * 1024


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit (never a traceback)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)  # one line, whatever the width
    raise typer.Exit(code)


def read_trust_anchors(path) -> bytes | None:
    """PEM trust anchors from `path` (None: no anchors), or a one-line error."""
    if path is None:
        return None
    try:
        anchors = path.read_bytes()
    except OSError as err:
        fail(f"cannot read trust anchors {path}: {err.strerror}")
    if b"-----BEGIN CERTIFICATE-----" not in anchors:
        fail(f"{path} holds no PEM certificate")
    return anchors


def guarded(command: Callable) -> Callable:
    """Turn every error into a one-line message and exit code 2 (aimark's own with their message)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        # KeyFileError, DetectionInputError, TokenizerMismatchError are ValueErrors;
        # ModelLoadError is a RuntimeError raised only for unusable model files.
        from aimark.engines.models import ModelLoadError

        expected = (ModelLoadError, OSError, ValueError)
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(130) from None
        except expected as exc:
            fail(_one_line(exc))
        except RecursionError:
            fail("input is nested too deeply to read")
        except MemoryError:
            fail("input needs more memory than is available")
        except Exception as exc:  # noqa: BLE001 - exit 1 means "not satisfied" to `verify`: never a traceback
            # A foreign message may quote the input; its type says enough to report the bug.
            fail(f"internal error ({type(exc).__name__}); please report it with the command that caused it")

    return wrapper


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def read_text_input(source: str, *, limit: int = MAX_INPUT_BYTES) -> str:
    """Read a file (or '-' for stdin) as strict UTF-8, with a size cap."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(source, "rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        fail(f"file not found: {source}")
    except IsADirectoryError:
        fail(f"{source} is a directory, not a text file")
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror}")
    if len(data) > limit:
        fail(f"input is larger than {limit // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"input is not valid UTF-8 (invalid byte at offset {exc.start})")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


@contextmanager
def model_status() -> Iterator[Callable[[str], None]]:
    """A spinner whose message follows the model loader's stages."""
    with console.status("loading model") as status:
        yield lambda message: status.update(message)


@contextmanager
def token_progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tokens"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)
