"""Model families and the registry every other part of the toolkit iterates."""

from shufflenet_edge.models.registry import ModelInfo, build_model, get_info, list_models

__all__ = ["ModelInfo", "build_model", "get_info", "list_models"]
