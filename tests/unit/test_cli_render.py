"""The CLI's pure parts: table and field rendering, the JobQueue's API port, the port-forward
line kubectl prints."""

from __future__ import annotations

import pytest
from jobqueue_cli.kube import FORWARDING_LINE, api_port
from jobqueue_cli.render import MAX_CELL, cell, fields, table


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        ("", "-"),
        (0, "0"),
        (1.25, "1.2"),
        (True, "True"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
        ("Traceback (most recent call last):\n  File x\nValueError: bad\n\n", "ValueError: bad"),
        ("\n \n", ""),
    ],
)
def test_a_cell_is_one_short_line(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_a_long_cell_is_cut_with_an_ellipsis() -> None:
    shown = cell("x" * 500)
    assert len(shown) == MAX_CELL and shown.endswith("...")


def test_table_aligns_columns_and_reads_nested_keys() -> None:
    rows = [
        {"name": "shop/emails", "ready": {"high": 12}},
        {"name": "q", "ready": {}},
    ]
    assert table(rows, [("QUEUE", "name"), ("HIGH", "ready.high")]).splitlines() == [
        "QUEUE        HIGH",
        "shop/emails  12",
        "q            -",
    ]


def test_table_of_no_rows_is_its_header() -> None:
    assert table([], [("ID", "id"), ("TYPE", "type")]) == "ID  TYPE"


def test_fields_show_structures_as_indented_json() -> None:
    text = fields({"id": "j1", "payload": {"to": "a"}, "error": None}, ["id", "payload", "error"])
    assert text.splitlines() == [
        "id:      j1",
        "payload: {",
        '           "to": "a"',
        "         }",
        "error:   -",
    ]


def test_the_api_port_is_the_spec_port_or_80() -> None:
    assert api_port({"spec": {"api": {"port": 8080}}}) == 8080
    assert api_port({"spec": {"api": {}}}) == 80
    assert api_port({"spec": {}}) == 80


def test_the_local_port_is_read_from_kubectl_output() -> None:
    match = FORWARDING_LINE.search("Forwarding from 127.0.0.1:43567 -> 8080")
    assert match is not None and match.group(1) == "43567"
    assert FORWARDING_LINE.search("Forwarding from [::1]:43567 -> 8080") is None
