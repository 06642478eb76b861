"""Sub-commands; importing this package registers them with the CLI."""

from shufflenet_edge.commands import info  # noqa: F401
from shufflenet_edge.commands import export  # noqa: F401
from shufflenet_edge.commands import android  # noqa: F401
from shufflenet_edge.commands import bench  # noqa: F401
from shufflenet_edge.commands import guidelines  # noqa: F401
from shufflenet_edge.commands import parity  # noqa: F401
