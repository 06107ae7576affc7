"""Exceptions of cpt-hw.  The CLI turns any :class:`CptHwError` into one line on stderr and exit code 2."""

from __future__ import annotations


class CptHwError(Exception):
    """Base class of every error a user can cause (bad config, bad arguments, bad files)."""


class ConfigError(CptHwError, ValueError):
    """A hardware configuration value breaks a rule.  The message names field, value and rule."""


class ToolMissingError(CptHwError):
    """An external tool (vivado, vitis_hls, yosys, a simulator) is not on PATH."""
