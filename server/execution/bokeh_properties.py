"""What BokehJS does with each property of the Bokeh models cards may use, and so what a value may be.

Every property of every model in ``sanitize.ALLOWED_MODELS`` falls in one class (by name: Bokeh
uses a name for one meaning across models); ``tests/security/test_bokeh_properties.py`` fails on a
property in none, so a Bokeh upgrade that adds one fails until someone reads what BokehJS does with
it and classifies it here. A property in no class is unsafe (``rule`` is None).

- ``DRAWN``: numbers, enums, colours, data, references to other models (which are checked by
  name themselves) and the visual properties of lines, fills, hatches and text: BokehJS draws
  them on the canvas or computes with them. Any value.
- ``TEXT``: strings that reach the page as text (canvas text, ``textContent``, escaped table cells),
  never as HTML, CSS or a URL. Any value (the sanitizer's script-URL rule still applies).
- ``TEMPLATE``: strings some models parse as HTML (``TEMPLATE_OWNERS``: hover tooltips, table
  headers and group rows); there, no ``<`` and no ``{safe}``.
- ``EMPTY``: what sets CSS, HTML attributes, DOM elements, callbacks or URLs (``styles``,
  ``stylesheets``, ``css_classes``, ``html_attributes``, ``js_*_callbacks``, tool icons, the help
  tool's redirect, the plot's attribution, context menus...): must be left empty.
- ``TAGS``: ``tags``, which BokehJS never shows: scalars only, no objects.
- ``SIZE``: the pixel sizes and borders of layouts and figures (``SIZES``), from which BokehJS sizes its
  canvases: numbers of at most ``BOKEH_LENGTH`` (on other models a ``width`` or ``height`` is data: drawn).
"""

from __future__ import annotations

from typing import Literal

from bokeh.core import property_mixins

Rule = Literal["drawn", "text", "template", "empty", "tags", "size"]

SIZES = frozenset({
    "width", "height", "min_width", "min_height", "max_width", "max_height", "frame_width", "frame_height",
    "min_border", "min_border_left", "min_border_right", "min_border_top", "min_border_bottom",
})
"""Pixels of a layout (``LayoutDOM``: figures, grids, tables...); BokehJS sizes canvases from them."""

VISUAL_SUFFIXES = frozenset().union(*(mixin.properties() for mixin in (
    property_mixins.ScalarLineProps, property_mixins.ScalarFillProps, property_mixins.ScalarHatchProps,
    property_mixins.ScalarTextProps, property_mixins.ScalarImageProps)))
"""``line_color``, ``fill_alpha``, ``hatch_pattern``, ``text_font``...: alone or after a prefix
(``border_line_color``, ``major_label_text_font``); ``hatch_extra`` holds Texture models, checked by name."""

EMPTY = frozenset({
    "styles", "stylesheets", "css_classes", "css_variables", "html_attributes", "html_id", "elements",
    "context_menu", "js_property_callbacks", "js_event_callbacks", "subscribed_events",
    "attribution",  # HTML or text over the plot
    "icon",  # a tool icon may be any image URL; BooleanFormatter's icon names included
    "redirect",  # HelpTool opens it in a new window
})

TEMPLATE_OWNERS: dict[str, frozenset[str]] = {
    "tooltips": frozenset({"HoverTool"}),
    "title": frozenset({"TableColumn"}),
    "field": frozenset({"TableColumn"}),
    "index_header": frozenset({"DataTable", "DataCube"}),
    "getter": frozenset({"GroupingInfo"}),
    "field_": frozenset({"RowAggregator", "AvgAggregator", "MaxAggregator", "MinAggregator", "SumAggregator"}),
}
"""Which models parse a ``TEMPLATE`` property as HTML; on other models it is ``TEXT``."""

TEXT = frozenset({
    "name", "title", "text", "label", "axis_label", "major_label_overrides", "description", "filename",
    "group", "x_range_name", "y_range_name", "column_name", "fields", "factors", "stack_labels", "sort_by",
    "domain", "symbol", "format", "nan_format", "null_format", "language", "completions", "options",
    "context", "years", "months", "days", "hours", "hourmin", "minutes", "minsec", "seconds",
    "milliseconds", "microseconds", "nanoseconds", "base_unit", "full_unit", "unit", "basis", "exclude",
    "include", "cols", "rows", "empty_value",
})

DRAWN = frozenset({
    # layout and size
    "above", "below", "center", "left", "right", "top", "bottom", "align", "aspect_ratio", "aspect_scale",
    "sizing_mode", "width", "height", "width_policy", "height_policy", "min_width", "min_height", "max_width",
    "max_height", "margin", "spacing", "padding", "flow_mode", "resizable", "visible", "disabled", "children",
    "child", "tabs", "active", "tabs_location", "closable", "tooltip", "checkable", "horizontal_scrollbar",
    "vertical_scrollbar", "frame_align", "frame_width", "frame_height", "inner_width", "inner_height",
    "outer_width", "outer_height", "min_border", "min_border_left", "min_border_right", "min_border_top",
    "min_border_bottom", "hidpi", "hold_render", "output_backend", "lod_factor", "lod_interval",
    "lod_threshold", "lod_timeout", "reset_policy", "match_aspect", "window_axis", "link_layouts",
    "title_location", "toolbar", "toolbar_location", "toolbar_inner", "toolbar_sticky", "border_radius",
    # renderers, glyphs, data
    "renderers", "renderer", "glyph", "hover_glyph", "muted_glyph", "nonselection_glyph", "selection_glyph",
    "data_source", "source", "target", "view", "filter", "data", "default_values", "geojson", "selected",
    "selection_policy", "indices", "booleans", "line_indices", "multiline_indices", "image_indices",
    "level", "muted", "coordinates", "propagate_hover", "decorations", "marking", "node", "edge_renderer",
    "node_renderer", "inspection_policy", "layout_provider", "layout", "graph_layout", "groups",
    "fill_renderer", "line_renderer", "levels", "operand", "operands", "transform", "x", "y", "x0", "y0",
    "x1", "y1", "x2", "y2", "cx", "cy", "cx0", "cy0", "cx1", "cy1", "xs", "ys", "xs_units", "ys_units",
    "x_start", "y_start", "x_end", "y_end", "x_offset", "y_offset", "x_units", "y_units", "angle",
    "angle_units", "start_angle", "end_angle", "start_angle_units", "end_angle_units", "direction",
    "radius", "radius_units", "radius_dimension", "inner_radius", "outer_radius", "inner_radius_units",
    "outer_radius_units", "length", "length_units", "width_units", "height_units", "size", "marker",
    "hit_dilation", "image", "dw", "dh", "dw_units", "dh_units", "dilate", "origin", "anchor", "q", "r",
    "scale", "n", "outline_shape", "step_mode", "gradient", "y_intercept", "location", "location_units",
    "dimension", "lower", "upper", "lower_units", "upper_units", "base_units", "lower_head", "upper_head",
    "start", "end", "start_units", "end_units", "bottom_units", "top_units", "left_units", "right_units",
    "bottom_limit", "top_limit", "left_limit", "right_limit", "editable", "movable", "symmetric",
    "inverted", "use_handles", "handles", "all", "move", "resize", "sides", "corners", "top_left",
    "top_right", "bottom_left", "bottom_right", "offset", "standoff", "vertical_align",
    # ranges, scales, axes, tickers, formatters, mappers
    "x_range", "y_range", "x_scale", "y_scale", "extra_x_ranges", "extra_y_ranges", "extra_x_scales",
    "extra_y_scales", "x_source", "y_source", "x_target", "y_target", "source_scale", "target_scale",
    "range", "bounds", "flipped", "follow", "follow_interval", "default_span", "only_visible",
    "range_padding", "range_padding_units", "reset_start", "reset_end", "factor_padding", "group_padding",
    "subgroup_padding", "min_interval", "max_interval", "axis", "ticker", "tickers", "formatter", "ticks",
    "minor_ticks", "face", "fixed_location", "cross_bounds", "axis_label_align", "axis_label_orientation",
    "axis_label_standoff", "axis_label_standoff_mode", "major_label_orientation", "major_label_policy",
    "major_label_standoff", "group_label_orientation", "subgroup_label_orientation", "major_tick_in",
    "major_tick_out", "minor_tick_in", "minor_tick_out", "base", "mantissas", "desired_num_ticks",
    "num_minor_ticks", "num_major_ticks", "interval", "mapper", "min_distance", "min_exponent",
    "power_limit_high", "power_limit_low", "precision", "use_scientific", "rounding", "boundary_scaling",
    "context_location", "context_which", "hide_repeats", "strip_leading_zeros", "font_style",
    "background_color", "palette", "nan_color", "low", "high", "low_color", "high_color", "bins",
    "rescale_discrete_levels", "color_baseline", "alpha_mapper", "markers", "patterns", "default_value",
    "color_mapper", "display_low", "display_high", "scale_alpha", "title_standoff", "label_standoff",
    "orientation", "label_align", "label_location", "label_height", "label_width", "title_align",
    "length_sizing", "bar_length", "bar_length_units", "dimensional", "clip", "mean", "distribution",
    "value", "include_zero", "initial", "index", "pad_before", "pad_after", "ascending_first",
    # legends
    "items", "click_policy", "glyph_height", "glyph_width", "item_background_policy", "ncols", "nrows",
    # tools and the toolbar
    "tools", "active_drag", "active_inspect", "active_multi", "active_scroll", "active_tap", "autohide",
    "logo", "group_types", "callback", "formatters", "filters", "defs", "mode", "point_policy",
    "line_policy", "muted_policy", "show_arrow", "attachment", "limit", "behavior", "gesture", "modifiers",
    "dimensions", "overlay", "continuous", "greedy", "persistent", "select_every_mousemove", "toggleable",
    "factor", "speed", "hit_test", "hit_test_behavior", "hit_test_mode", "maintain_focus", "zoom_on_axis",
    "zoom_together", "x_interaction", "y_interaction", "start_gesture", "add", "drag", "num_objects",
    "default_overrides", "vertex_renderer", "intersection_renderer",
    # tables
    "columns", "editor", "sorter", "sortable", "default_sort", "auto_edit", "autosize_mode", "fit_columns",
    "frozen_columns", "frozen_rows", "header_row", "index_position", "index_width", "multi_selectable",
    "reorderable", "row_height", "scroll_to_selection", "selectable", "grouping", "aggregators",
    "collapsed", "step",
    # the document
    "notifications", "notify_connection_status", "reconnect_session", "syncable",
})
"""``callback``, ``formatters``, ``filters``, ``defs``, ``tooltip``: references to models that are
checked by name (every callback model and ``Tooltip`` are denied)."""


def rule(attr: str, model: str | None, layout: bool = True) -> Rule | None:
    """How to check ``attr`` of ``model`` (None: of any model), a layout or not; None if it is not classified."""
    if attr in SIZES and layout:
        return "size"
    owners = TEMPLATE_OWNERS.get(attr)
    if owners is not None and (model is None or model in owners):
        return "template"
    if attr in EMPTY:
        return "empty"
    if attr == "tags":
        return "tags"
    if attr in TEXT or owners is not None:
        return "text"
    if attr in DRAWN or any(attr == s or attr.endswith("_" + s) for s in VISUAL_SUFFIXES):
        return "drawn"
    return None
