"""fastnn.viz: figures for the lessons (matplotlib's Agg canvas, no pyplot, no windows).

Every function takes numpy arrays (or Tensors), returns a matplotlib Figure and, given path=,
also writes it as a PNG (folders are created):

    image_grid(images, titles=None)              a grid of images (N,C,H,W) or (N,H,W[,C])
    filter_grid(weight)                           first-layer conv filters (O,I,kH,kW) as tiles
    feature_map_grid(maps, images=None)           each input image, then its feature maps
    layer_summary(columns)                        the layers side by side, left to right
    probe_bars(table)                             the linear-probe accuracies per layer
    save_figure(fig, path)                        write a figure (PNG by the extension)
"""
from .plots import (feature_map_grid, filter_grid, image_grid, layer_summary, probe_bars,
                    save_figure, to_hwc)

__all__ = ["image_grid", "filter_grid", "feature_map_grid", "layer_summary", "probe_bars",
           "save_figure", "to_hwc"]
