"""The model side: one adapter over every model kind, and loading with the conversion cache."""
from .adapter import ModelAdapter, Preprocessing
from .loading import load_model, resolve_model

__all__ = ["ModelAdapter", "Preprocessing", "load_model", "resolve_model"]
