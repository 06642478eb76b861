"""shufflenet-edge: ShuffleNet V1/V2 from PyTorch to phones and ARM boards, with proof at every step."""

__version__ = "0.1.0"

__all__ = ["export", "parity", "__version__"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Lazy: `import shufflenet_edge` stays cheap (the CLI imports it); torch loads on first use.
    if name in ("export", "parity"):
        # Both are also module names (shufflenet_edge.export the package, shufflenet_edge.parity the module); each
        # module is callable and calls the API function, so attribute access and `from ... import` agree.
        import importlib

        return importlib.import_module(f"shufflenet_edge.{name}")
    raise AttributeError(f"module 'shufflenet_edge' has no attribute {name!r}")
