"""The export pipeline (installed as `shufflenet_edge.export`).

The package is also the Python API's entry point: ``shufflenet_edge.export(model, out, ...)`` calls
`shufflenet_edge.api.export` (a package and a function cannot share the name otherwise).
"""

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from shufflenet_edge.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
