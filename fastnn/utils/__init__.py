"""fastnn.utils: data utilities (fastnn.utils.data), in PyTorch's layout."""
from . import data  # noqa: F401  (fastnn.utils.data after `import fastnn.utils`, as in torch)
