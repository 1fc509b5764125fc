"""UI-format workflows (what the frontend saves and loads) -> API-format prompts (what POST /prompt runs).

Does what the ComfyUI frontend does when it queues a graph, from the server's /object_info:
- widget values: `widgets_values` holds one value per widget, in the order of the node's inputs in
  `input_order` (required, then optional); an INT with `control_after_generate` (or, when the option is
  absent, one named seed / noise_seed) is followed by its "control after generate" value, a COMBO with it
  by that value and a filter string, an image/video combo by its upload button's value ("image"); these
  UI-only values never reach the API. A dict `widgets_values` maps names to values.
- links: `[id, origin_id, origin_slot, target_id, target_slot, type]`; an input fed by a link becomes
  `[str(origin_id), origin_slot]`, seen through Reroute nodes, bypassed nodes (mode 4: to their input of
  the same type) and PrimitiveNode (its value).
- muted nodes (mode 2) and notes are left out; a node type the server does not know is an error.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"Note", "MarkdownNote"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")  # an upload button follows the combo
PASS_THROUGH = "Reroute"
PRIMITIVE = "PrimitiveNode"
MUTED, BYPASSED = 2, 4


class ConversionError(ValueError):
    """The UI workflow cannot be turned into an API prompt (unknown node type, broken link ...)."""


def input_specs(info: dict) -> list[tuple[str, list]]:
    """(name, [type, options]) of every input of a node definition, in the frontend's order."""
    specs = []
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    for section in ("required", "optional"):
        defined = info["input"].get(section, {})
        for name in order.get(section, []):
            spec = defined[name]
            specs.append((name, [spec[0], spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}]))
    return specs


def is_widget(spec: list) -> bool:
    kind, options = spec
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def ui_only_values(name: str, spec: list) -> list:
    """The UI-only widget values that follow this widget's value in widgets_values (as a saved example has them:
    controls set to "fixed"); only their number matters for reading a file."""
    kind, options = spec
    control = options.get("control_after_generate")
    values = []
    if kind == "INT" and (control if control is not None else name in ("seed", "noise_seed")):
        values = ["fixed"]
    elif (isinstance(kind, list) or kind == "COMBO") and control:
        values = ["fixed", ""]  # the control and its filter
    if any(options.get(key) for key in UPLOAD_OPTIONS):
        values.append("image")  # the upload button's saved value
    return values


def widget_values(node: dict, info: dict) -> dict:
    """{input name: value} of the node's widgets, read from its widgets_values."""
    saved = node.get("widgets_values")
    widgets = [(name, spec) for name, spec in input_specs(info) if is_widget(spec)]
    if saved is None:
        return {}
    if isinstance(saved, dict):
        return {name: saved[name] for name, _ in widgets if name in saved}
    values, position = {}, 0
    for name, spec in widgets:
        if position >= len(saved):
            raise ConversionError(
                f"node {node['id']} ({node['type']}): widgets_values has {len(saved)} values, none left for "
                f"'{name}' (widgets: {[n for n, _ in widgets]})")
        values[name] = saved[position]
        position += 1 + len(ui_only_values(name, spec))
    return values


def _source(nodes: dict, links: dict, link_id: int, input_type: str | None = None):
    """What feeds a link: ("link", [origin_id, slot]) or ("value", v), through reroutes and bypassed nodes."""
    seen = set()
    while True:
        if link_id in seen:
            raise ConversionError(f"link {link_id} loops through reroutes or bypassed nodes")
        seen.add(link_id)
        if link_id not in links:
            raise ConversionError(f"link {link_id} is not in the workflow's links")
        _, origin_id, origin_slot, _, _, link_type = links[link_id]
        origin = nodes.get(origin_id)
        if origin is None:
            raise ConversionError(f"link {link_id} starts at node {origin_id}, which is not in the workflow")
        wanted = input_type or link_type
        if origin["type"] == PRIMITIVE:
            return "value", (origin.get("widgets_values") or [None])[0]
        if origin["type"] == PASS_THROUGH or origin.get("mode") == BYPASSED:
            upstream = [i for i in origin.get("inputs", []) if i.get("link") is not None
                        and (origin["type"] == PASS_THROUGH or i.get("type") in (wanted, "*"))]
            if not upstream:
                return None, None
            link_id = upstream[0]["link"]
            continue
        if origin.get("mode") == MUTED:
            return None, None
        return "link", [str(origin_id), origin_slot]


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API prompt ({node id: {class_type, inputs, _meta}}) of a UI-format workflow."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node_id, node in nodes.items():
        kind = node["type"]
        if kind in NOTE_TYPES or kind in (PASS_THROUGH, PRIMITIVE) or node.get("mode") in (MUTED, BYPASSED):
            continue
        info = object_info.get(kind)
        if info is None:
            raise ConversionError(f"node {node_id}: the server has no node type {kind!r} (a missing custom node?)")
        inputs = widget_values(node, info)
        known = {name for name, _ in input_specs(info)}
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            name = slot.get("widget", {}).get("name") or slot["name"]
            if name not in known:
                raise ConversionError(f"node {node_id} ({kind}): input {name!r} is not in the node's definition")
            how, value = _source(nodes, links, slot["link"], slot.get("type"))
            if how is None:
                inputs.pop(name, None)
            else:
                inputs[name] = value
        title = node.get("title") or info.get("display_name") or kind
        prompt[str(node_id)] = {"inputs": inputs, "class_type": kind, "_meta": {"title": title}}
    return prompt
