"""Build the C firmware driver as a shared library (for ctypes co-simulation and tests).

The flags are the strict set the firmware promises to build clean with; a warning
is an error, so a test that builds the library also checks the code stays C99-clean.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parent
SOURCES = ("sbpca_driver.c",)
HEADERS = ("sbpca_driver.h", "sbpca_regs.h")
STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
LIBRARY_NAME = "libsbpca_driver.so"


class FirmwareBuildError(RuntimeError):
    """The C compiler is missing or rejected the firmware."""


def find_compiler(cc: str | None = None) -> str:
    """The C compiler to use: ``cc``, else ``$CC``, else gcc, else cc."""
    for candidate in (cc, os.environ.get("CC"), "gcc", "cc"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)  # type: ignore[return-value]
    raise FirmwareBuildError("no C compiler found (tried $CC, gcc, cc); install gcc")


def compile_command(out: Path, cc: str, extra_flags: tuple[str, ...] = ()) -> list[str]:
    """The full compiler command line for the shared library ``out``."""
    return [
        cc, *STRICT_FLAGS, "-O2", "-shared", "-fPIC", *extra_flags,
        "-I", str(FIRMWARE_DIR),
        *[str(FIRMWARE_DIR / s) for s in SOURCES],
        "-o", str(out),
    ]


def build_shared_library(out_dir: Path, *, cc: str | None = None, force: bool = False,
                         extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the driver into ``out_dir/libsbpca_driver.so`` and return its path.

    Rebuilds only when a source or header is newer than the library (or ``force``).
    Raises :class:`FirmwareBuildError` with the compiler's output when it fails.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / LIBRARY_NAME
    inputs = [FIRMWARE_DIR / n for n in SOURCES + HEADERS]
    for path in inputs:
        if not path.exists():
            raise FirmwareBuildError(f"firmware source {path} is missing")
    if not force and out.exists() and out.stat().st_mtime >= max(p.stat().st_mtime for p in inputs):
        return out
    compiler = find_compiler(cc)
    cmd = compile_command(out, compiler, tuple(extra_flags))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareBuildError(
            f"compiling the firmware failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}"
        )
    if proc.stderr.strip():  # -Werror makes this unreachable unless the compiler chats
        raise FirmwareBuildError(f"the compiler printed diagnostics:\n{proc.stderr}")
    return out
