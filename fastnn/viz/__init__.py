"""fastnn.viz: figures for the lessons (matplotlib's Agg canvas, no pyplot, no windows).

Every function takes numpy arrays (or Tensors), returns a matplotlib Figure and, given path=,
also writes it as a PNG (folders are created):

    image_grid(images, titles=None)              a grid of images (N,C,H,W) or (N,H,W[,C])
    filter_grid(weight)                           first-layer conv filters (O,I,kH,kW) as tiles
    feature_map_grid(maps, images=None)           each input image, then its feature maps
    layer_summary(columns)                        the layers side by side, left to right
    probe_bars(table)                             the linear-probe accuracies per layer
    save_figure(fig, path)                        write a figure (PNG by the extension)

and, for the lessons (lesson_plots.py):

    decision_boundaries(panels)                   2-D classifiers: regions, boundary, points
    network_diagram(sizes, layer_names)           a fully connected network, layers named
    attention_heatmaps(weights, tokens)           (H, T, T) attention maps, one per head
    temperature_bars(probs, temperatures, labels) next-token distributions side by side
    loss_surface(w1, w2, loss, trajectory)        contours of a loss with a descent path
    line_chart(series) / bar_chart(values)        curves and annotated bars
    roofline(peak_gflops, bandwidth_gbs, points)  the roofline model with measured kernels
    heatmaps(matrices, titles)                    matrices side by side (e.g. Gram matrices)
"""
from .lesson_plots import (attention_heatmaps, bar_chart, decision_boundaries, heatmaps,
                           line_chart, loss_surface, network_diagram, roofline,
                           temperature_bars)
from .plots import (feature_map_grid, filter_grid, image_grid, layer_summary, probe_bars,
                    save_figure, to_hwc)

__all__ = ["image_grid", "filter_grid", "feature_map_grid", "layer_summary", "probe_bars",
           "save_figure", "to_hwc", "decision_boundaries", "network_diagram", "attention_heatmaps",
           "temperature_bars", "loss_surface", "line_chart", "bar_chart", "roofline", "heatmaps"]
