"""PRODIGE: data as differentiable weighted graphs."""

__version__ = "0.1.0"
