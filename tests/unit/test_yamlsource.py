"""Positions survive parsing: every YAML problem names the exact file, line and field."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos.errors import CatalogError
from chaos.yamlsource import MISSING, Node, check_version, did_you_mean, load_yaml, parse_yaml


def line_of(text: str, fragment: str) -> int:
    """1-based line of the only line containing `fragment` (ending in a newline: equal to it)."""
    lines = enumerate(text.splitlines(), 1)
    if fragment.endswith("\n"):
        hits = [number for number, line in lines if line == fragment[:-1]]
    else:
        hits = [number for number, line in lines if fragment in line]
    assert len(hits) == 1, f"{fragment!r} is on lines {hits}"
    return hits[0]


def expect_error(
    call: Callable[[], object], *, file: str | Path, line: int | None, field: str | None, says: str
) -> CatalogError:
    """Run `call`, require a CatalogError at exactly file:line:field whose reason has `says`."""
    with pytest.raises(CatalogError) as info:
        call()
    err = info.value
    assert (err.file, err.line, err.field) == (str(file), line, field), str(err)
    assert says in err.reason, err.reason
    assert str(file) in str(err)
    return err


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


DOC = """\
top:
  count: 3
  ratio: 0.5
  wait: 250ms
  label: hello
  mode: no
  items: [a, b]
  nothing:
  nested:
    deep: 1
"""


@pytest.fixture
def doc() -> Node:
    return parse_yaml(DOC, file="doc.yaml")


def top(doc: Node) -> Node:
    return doc.require("top")


def test_typed_readers_return_values_with_defaults(doc: Node) -> None:
    node = top(doc)
    assert node.get_int("count") == 3
    assert node.get_float("ratio") == 0.5
    assert node.get_duration("wait") == pytest.approx(0.25)
    assert node.get_str("label") == "hello"
    assert node.get_choice("mode", ["yes", "no"]) == "no"  # YAML 1.1 would read False
    assert [item.as_str() for item in node.get_list("items")] == ["a", "b"]
    assert node.get_mapping("nested").get_int("deep") == 1
    assert node.get_int("absent", 7) == 7
    assert node.get_str("nothing", "default") == "default"
    assert node.get_duration("absent", None) is None
    assert not node.has("nothing") and node.has("count") and not node.has("absent")


def test_fields_and_lines_follow_the_document(doc: Node) -> None:
    items = top(doc).get_list("items")
    assert [item.field for item in items] == ["top.items[0]", "top.items[1]"]
    assert items[1].line == line_of(DOC, "items:")
    deep = top(doc).require("nested").require("deep")
    assert (deep.field, deep.line) == ("top.nested.deep", line_of(DOC, "deep:"))


@pytest.mark.parametrize(
    ("read", "field", "marker", "says"),
    [
        (lambda n: n.get_int("label"), "top.label", "label:", "expected a whole number"),
        (lambda n: n.get_int("count", lo=5), "top.count", "count:", "must be at least 5"),
        (lambda n: n.get_int("count", lo=1, hi=2), "top.count", "count:", "between 1 and 2"),
        (lambda n: n.get_float("label"), "top.label", "label:", "expected a number"),
        (lambda n: n.get_float("ratio", hi=0.1), "top.ratio", "ratio:", "at most 0.1"),
        (lambda n: n.get_str("count"), "top.count", "count:", 'write "3" in quotes'),
        (lambda n: n.get_duration("label"), "top.label", "label:", "'hello'"),
        (lambda n: n.get_choice("label", ["hullo", "x"]), "top.label", "label:", "'hullo'"),
        (lambda n: n.get_list("label"), "top.label", "label:", "expected a list"),
        (lambda n: n.get_mapping("items"), "top.items", "items:", "expected a mapping"),
        (lambda n: n.get_str("items"), "top.items", "items:", "got a list"),
        (lambda n: n.get_int("nothing"), "top.nothing", "nothing:", "'nothing' needs a value"),
        (lambda n: n.get_int("absent"), "top.absent", "top:", "required key 'absent'"),
        (lambda n: n.require("nested").require("x"), "top.nested.x", "nested:", "'x' is missing"),
        (lambda n: n.allow_keys("count"), "top.ratio", "ratio:", "valid keys here: count"),
    ],
)
def test_reader_errors_point_at_the_value(
    doc: Node, read: Callable[[Node], object], field: str, marker: str, says: str
) -> None:
    expect_error(
        lambda: read(top(doc)), file="doc.yaml", line=line_of(DOC, marker), field=field, says=says
    )


def test_unknown_key_suggests_the_closest_valid_one(doc: Node) -> None:
    err = expect_error(
        lambda: top(doc).allow_keys("count", "ratio", "weight", "label", "mode", "items"),
        file="doc.yaml",
        line=line_of(DOC, "wait:"),
        field="top.wait",
        says="unknown key 'wait' (did you mean 'weight'?)",
    )
    assert "valid keys here: count, ratio, weight" in err.reason


def test_bad_duration_names_the_value() -> None:
    text = "rto: 5 parsecs\n"
    err = expect_error(
        lambda: parse_yaml(text, file="c.yaml").get_duration("rto"),
        file="c.yaml",
        line=1,
        field="rto",
        says="'5 parsecs'",
    )
    assert "500ms" in err.reason  # the accepted forms are shown
    expect_error(
        lambda: parse_yaml("t: 0s\n", file="c.yaml").get_duration("t", positive=True),
        file="c.yaml",
        line=1,
        field="t",
        says="longer than zero",
    )
    node = parse_yaml("t: .inf\n", file="c.yaml")
    expect_error(lambda: node.get_duration("t"), file="c.yaml", line=1, field="t", says="finite")


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("a: [1, 2\nb: 3\n", 2, "expected ',' or ']'"),
        ("a: 1\n  b: 2\n", 2, "mapping values are not allowed here"),
        ("a: 'unterminated\n", 2, "(from line 1)"),
        ("a: 1\nb: \x07\n", 2, "U+0007"),
        ("---\na: 1\n---\nb: 2\n", 3, "single document"),
        ("a: *nowhere\n", 1, "undefined alias"),
    ],
)
def test_bad_yaml_names_the_line(tmp_path: Path, text: str, line: int, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    err = expect_error(lambda: load_yaml(path), file=path, line=line, field=None, says=says)
    assert err.reason.startswith("invalid YAML")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    expect_error(lambda: load_yaml(path), file=path, line=1, field=None, says="empty")


@pytest.mark.parametrize(("text", "says"), [("- a\n- b\n", "a list"), ("just words\n", "'just")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    err = expect_error(lambda: load_yaml(path), file=path, line=1, field=None, says=says)
    assert "must be a mapping" in err.reason


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    expect_error(lambda: load_yaml(missing), file=missing, line=None, field=None, says="not found")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"a: \xff\xfe\n")
    expect_error(lambda: load_yaml(binary), file=binary, line=None, field=None, says="UTF-8")


def test_duplicate_keys_are_refused_anywhere(tmp_path: Path) -> None:
    text = "a:\n  b:\n    - x: 1\n      y: 2\n      x: 3\n"
    path = write(tmp_path, text)
    err = expect_error(
        lambda: load_yaml(path), file=path, line=5, field="a.b[0].x", says="duplicate key 'x'"
    )
    assert "first on line 3" in err.reason
    top_level = write(tmp_path, "a: 1\nb: 2\na: 3\n", "top.yaml")
    expect_error(lambda: load_yaml(top_level), file=top_level, line=3, field="a", says="'a'")


def test_non_scalar_keys_are_refused() -> None:
    expect_error(
        lambda: parse_yaml("? [a, b]\n: 1\n", file="k.yaml"),
        file="k.yaml",
        line=1,
        field=None,
        says="plain names",
    )


def test_merge_keys_apply_and_own_keys_override() -> None:
    text = "base: &base {port: 1, host: h}\nsvc:\n  <<: *base\n  port: 2\n"
    svc = parse_yaml(text, file="m.yaml").require("svc")
    assert [(entry.key, entry.as_value()) for entry in svc.entries()] == [
        ("port", 2),
        ("host", "h"),
    ]
    host = svc.require("host")
    assert (host.field, host.line) == ("svc.host", 1)  # where the value is written
    assert svc.as_value() == {"port": 2, "host": "h"}


def test_merge_of_a_scalar_and_self_reference_are_refused() -> None:
    expect_error(
        lambda: parse_yaml("a:\n  <<: 3\n", file="m.yaml").require("a").entries(),
        file="m.yaml",
        line=2,
        field="a",
        says="merges mappings only",
    )
    looped = parse_yaml("a: &x\n  k: 1\n  <<: *x\n", file="m.yaml")
    expect_error(
        lambda: looped.require("a").entries(), file="m.yaml", line=3, field="a", says="itself"
    )


def test_as_value_refuses_recursive_aliases() -> None:
    node = parse_yaml("body: &b [1, *b]\n", file="r.yaml").require("body")
    expect_error(node.as_value, file="r.yaml", line=1, field="body[1]", says="refers to itself")


def test_odd_tags_and_impossible_dates_become_catalog_errors() -> None:
    node = parse_yaml("a: !custom 1\nb: 2020-13-45\nc: !!timestamp x\n", file="t.yaml")
    expect_error(lambda: node.require("a").scalar, file="t.yaml", line=1, field="a", says="!custom")
    expect_error(lambda: node.get_str("b"), file="t.yaml", line=2, field="b", says="quote it")
    expect_error(lambda: node.get_str("c"), file="t.yaml", line=3, field="c", says="'x'")


def test_deep_nesting_is_a_catalog_error() -> None:
    text = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(CatalogError, match="nested too deeply"):
        parse_yaml(text, file="deep.yaml")


def test_templates_allow_only_named_placeholders() -> None:
    node = parse_yaml("ok: '{host}:{port}'\nbad: '{host}:{prt}'\nodd: '{host'\n", file="u.yaml")
    assert node.get("ok", lambda n: n.as_template({"host", "port"})) == "{host}:{port}"
    expect_error(
        lambda: node.require("bad").as_template({"host", "port"}),
        file="u.yaml",
        line=2,
        field="bad",
        says="placeholder {prt}",
    )
    expect_error(
        lambda: node.require("odd").as_template({"host"}),
        file="u.yaml",
        line=3,
        field="odd",
        says="bad template",
    )
    fmt = parse_yaml("f: '{host!r}'\n", file="u.yaml").require("f")
    expect_error(
        lambda: fmt.as_template({"host"}), file="u.yaml", line=1, field="f", says="not allowed"
    )


def test_env_names() -> None:
    node = parse_yaml("good: DB_URL\nbad: DB-URL\n", file="e.yaml")
    assert node.require("good").as_env_name() == "DB_URL"
    expect_error(
        lambda: node.require("bad").as_env_name(),
        file="e.yaml",
        line=2,
        field="bad",
        says="not an environment variable name",
    )


@pytest.mark.parametrize(
    ("text", "required", "line", "says"),
    [
        ("version: 2\n", True, 1, "unsupported version 2"),
        ("version: one\n", False, 1, "version one"),
        ("version: true\n", False, 1, "unsupported version"),
        ("name: x\n", True, 1, "required key 'version'"),
    ],
)
def test_check_version(text: str, required: bool, line: int, says: str) -> None:
    root = parse_yaml(text, file="v.yaml")
    expect_error(
        lambda: check_version(root, supported=1, required=required),
        file="v.yaml",
        line=line,
        field="version",
        says=says,
    )


def test_check_version_accepts_the_supported_one_and_optional_absence() -> None:
    check_version(parse_yaml("version: 1\n", file="v.yaml"), supported=1, required=True)
    check_version(parse_yaml("name: x\n", file="v.yaml"), supported=1, required=False)


def test_did_you_mean() -> None:
    assert did_you_mean("paymnts", ["payments", "orders"]) == " (did you mean 'payments'?)"
    assert did_you_mean("zzz", ["payments", "orders"]) == ""
    assert repr(MISSING) == "MISSING"
