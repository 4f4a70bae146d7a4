"""fastnn.utils: data utilities (fastnn.utils.data), in PyTorch's layout."""
