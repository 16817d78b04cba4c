"""Builds the optional compiled core, ``netassist._speedups``, where a C compiler exists.

Everything else about the package is in pyproject.toml. Without a compiler (or when the
compile fails) the build still succeeds and netassist runs its pure-Python core, as it also
does at run time with ``NETASSIST_PURE=1``; ``NETASSIST_PURE_BUILD=1`` skips the compile.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that turns any failure into one line and a pure-Python package."""

    def run(self) -> None:
        if os.environ.get("NETASSIST_PURE_BUILD", "") not in ("", "0"):
            print("netassist: NETASSIST_PURE_BUILD is set: not compiling the core", file=sys.stderr)
            return
        try:
            super().run()
        except Exception as exc:  # no compiler at all, a missing Python.h, ...
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: Exception) -> None:
        print(
            f"netassist: the compiled core was not built ({exc}); the pure-Python core serves",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "netassist._speedups",
            ["src/netassist/server/_speedups.c"],
            extra_compile_args=os.environ.get("NETASSIST_CFLAGS", "").split(),
            extra_link_args=os.environ.get("NETASSIST_LDFLAGS", "").split(),
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
