"""Search aliases and the experimental flag: set through the nodes' own schemas, only for fields the running
ComfyUI's ``io.Schema`` has (0.3.75 has ``is_experimental`` but not ``search_aliases``, added in 0.11)."""

from __future__ import annotations

import asyncio
import concurrent.futures

from comfyui_animapose.nodes import AnimaPoseExtension, register_model_folders
from comfyui_animapose.nodes.common import PREFIX
from comfyui_animapose.nodes.search_terms import EXPERIMENTAL, SEARCH_ALIASES, schema_fields, with_search_terms


def _schemas() -> dict:
    register_model_folders()
    # in a thread of its own: the browser tier's Playwright leaves an event loop running in the test thread
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        node_list = pool.submit(asyncio.run, AnimaPoseExtension().get_node_list()).result()
    return {s.node_id: (cls, s) for cls in node_list for s in [cls.define_schema()]}


def test_every_entry_names_a_node_of_the_pack():
    ids = {node_id[len(PREFIX):] for node_id in _schemas()}
    assert set(SEARCH_ALIASES) <= ids, set(SEARCH_ALIASES) - ids
    assert EXPERIMENTAL <= ids, EXPERIMENTAL - ids


def test_this_comfyui_gets_only_the_fields_it_has():
    fields = schema_fields()
    assert "is_experimental" in fields
    for node_id, (cls, schema) in _schemas().items():
        assert cls.GET_SCHEMA().is_experimental == (node_id[len(PREFIX):] in EXPERIMENTAL), node_id
        if "search_aliases" not in fields:  # 0.3.75: the schema stays as it was
            assert not hasattr(schema, "search_aliases"), node_id


def test_a_comfyui_with_search_aliases_gets_the_words_ade_users_type():
    schemas = _schemas()
    newer = schema_fields() | {"search_aliases"}
    apply = with_search_terms(schemas[PREFIX + "ApplyMotionModel"][1], PREFIX, newer)
    assert {"animatediff", "ade", "motion model", "gen2"} <= set(apply.search_aliases)
    context = with_search_terms(schemas[PREFIX + "ContextWindows"][1], PREFIX, newer)
    assert "context options" in context.search_aliases
    dreampose = with_search_terms(schemas[PREFIX + "LoadDreamPose"][1], PREFIX, newer)
    assert not getattr(dreampose, "search_aliases", None)  # nothing invented for nodes without a table entry
