"""The Hermes splitter: unit cases, the regression cases from engine-dialects.md §6, and properties:
any chunking of a stream folds to the non-streaming parse, which matches what the text was built from."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from routeway.transform.hermes import (
    ContentDelta,
    HermesStreamParser,
    Parsed,
    ReasoningDelta,
    ToolCall,
    ToolCallArguments,
    ToolCallError,
    ToolCallStart,
    parse_text,
)

PREFIX = "call_"
TOOLS = frozenset({"get_weather", "search", "noop"})


def stream(chunks: list[str], **kw) -> tuple[list, bool]:
    parser = HermesStreamParser(id_prefix=PREFIX, **kw)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    return events, parser.unclosed_think


def fold(events: list, unclosed: bool) -> Parsed:
    """Stream events to a Parsed, written independently of the module's own fold, checking on the way
    what a client relies on: no empty deltas, arguments only after their start, gap-free indexes."""
    content, reasoning, errors = [], [], []
    calls: dict[int, list] = {}
    void: set[int] = set()
    for event in events:
        match event:
            case ContentDelta(text) | ReasoningDelta(text):
                assert text, event
                (content if isinstance(event, ContentDelta) else reasoning).append(text)
            case ToolCallStart(index, id, name):
                assert index == len(calls) and id == f"{PREFIX}{index}" and name
                calls[index] = [id, name, ""]
            case ToolCallArguments(index, fragment):
                assert index in calls and index not in void and fragment
                calls[index][2] += fragment
            case ToolCallError(index, message):
                errors.append(message)
                if index in calls:
                    void.add(index)
            case _:
                raise AssertionError(event)
    tool_calls = [ToolCall(*calls[i]) for i in sorted(calls) if i not in void]
    return Parsed("".join(content), "".join(reasoning), tool_calls, errors, unclosed)


def split(text: str, cuts) -> list[str]:
    points = [0, *sorted(set(cuts)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def parse(text: str, **kw) -> Parsed:
    """parse_text, checked against char-by-char and one-chunk streaming on the way."""
    result = parse_text(text, id_prefix=PREFIX, **kw)
    assert fold(*stream(list(text), **kw)) == result
    assert fold(*stream([text], **kw)) == result
    return result


def call(name: str, arguments: object = None, raw: str | None = None) -> str:
    body = raw if raw is not None else json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


# -- unit cases ------------------------------------------------------------------------------------


def test_plain_text():
    assert parse("Hello, world!\nBye.") == Parsed("Hello, world!\nBye.", "", [], [], False)


def test_think_then_answer():
    r = parse("<think>\nLet me see.\n\nYes.\n</think>\n\nThe answer is 4.")
    assert (r.reasoning, r.content, r.unclosed_think) == ("Let me see.\n\nYes.", "The answer is 4.", False)


def test_think_after_leading_whitespace():
    r = parse("\n\n<think>x</think>\ny")
    assert (r.reasoning, r.content) == ("x", "y")


def test_answer_without_think_is_content():
    # a hybrid model that skips <think>: nothing is reasoning, a stray </think> is just text
    r = parse("Direct answer.</think> more")
    assert (r.content, r.reasoning, r.unclosed_think) == ("Direct answer.</think> more", "", False)


def test_two_tool_calls_after_thinking():
    text = ("<think>\nI need weather and news.\n</think>\n" + call("get_weather", {"city": "Paris"}) + "\n"
            + call("search", {"q": "news", "n": 3}))
    r = parse(text, tool_names=TOOLS)
    assert r.reasoning == "I need weather and news." and r.content == "" and r.errors == []
    assert r.tool_calls == [ToolCall("call_0", "get_weather", '{"city": "Paris"}'),
                            ToolCall("call_1", "search", '{"q": "news", "n": 3}')]


def test_tool_call_inside_unclosed_think():
    r = parse("<think>\nI should look it up.\n" + call("search", {"q": "x"}) + "\n")
    assert r.tool_calls == [ToolCall("call_0", "search", '{"q": "x"}')]
    assert (r.reasoning, r.content, r.unclosed_think) == ("I should look it up.", "", False)


def test_think_goes_on_after_a_tool_call_inside_it():
    r = parse("<think>a\n" + call("noop", {}) + "\nb\n</think>\nc")
    assert (r.reasoning, r.content, len(r.tool_calls)) == ("a\n\nb", "c", 1)
    assert parse("<think>a" + call("noop", {}) + "more thought").unclosed_think


def test_unclosed_think_at_end():
    r = parse("<think>\nStill thinking about <thi")
    assert (r.reasoning, r.content, r.unclosed_think) == ("Still thinking about <thi", "", True)
    assert parse("<think>").unclosed_think


def test_think_open():
    r = parse("\nalready thinking\n</think>\n\nanswer", think_open=True)
    assert (r.reasoning, r.content, r.unclosed_think) == ("already thinking", "answer", False)
    assert parse("cut off", think_open=True) == Parsed("", "cut off", [], [], True)
    # without the flag the same text is all content
    assert parse("already thinking</think>answer").reasoning == ""


def test_escaped_quotes_and_braces_in_arguments():
    raw = r'{"q": "a \"}\" b {", "code": "if (x) { return \"</tool_call>\"; }", "p": "C:\\", "t": "{test1,test2"}'
    r = parse(call("search", raw=f'{{"name": "search", "arguments": {raw}}}') + "after")
    assert r.tool_calls == [ToolCall("call_0", "search", raw)] and r.content == "after"
    assert json.loads(r.tool_calls[0].arguments)["code"] == 'if (x) { return "</tool_call>"; }'


def test_arguments_before_name():
    text = '<tool_call>{"arguments": {"city": "Oslo", "units": ["C"]}, "name": "get_weather"}</tool_call>'
    events, _ = stream(list(text))
    starts = [i for i, e in enumerate(events) if isinstance(e, ToolCallStart)]
    args = [i for i, e in enumerate(events) if isinstance(e, ToolCallArguments)]
    assert len(starts) == 1 and args and min(args) > starts[0]  # buffered until the name is known
    assert parse(text).tool_calls == [ToolCall("call_0", "get_weather", '{"city": "Oslo", "units": ["C"]}')]


def test_arguments_stream_before_the_call_closes():
    parser = HermesStreamParser(id_prefix=PREFIX)
    assert parser.feed('<tool_call>{"name": "search", "arguments": {"q": "lon') == [
        ToolCallStart(0, "call_0", "search"), ToolCallArguments(0, '{"q": "lon')]
    assert parser.feed('g"}}</tool_') == [ToolCallArguments(0, 'g"}')]  # not held with the tag
    assert parser.feed("call>") == []
    assert parser.finish() == []


def test_argument_shapes():
    assert parse(call("noop", raw='{"name": "noop"}')).tool_calls[0].arguments == "{}"
    assert parse(call("noop", raw='{"name": "noop", "arguments": null}')).tool_calls[0].arguments == "{}"
    assert parse(call("noop", {})).tool_calls[0].arguments == "{}"
    last_scalar = parse(call("f", {"a": {"b": [1, 2]}, "n": 1.5, "ok": True}))
    assert json.loads(last_scalar.tool_calls[0].arguments) == {"a": {"b": [1, 2]}, "n": 1.5, "ok": True}
    stringified = parse(call("f", raw='{"name": "f", "arguments": "{\\"a\\": \\"b}\\"}"}'))
    assert stringified.tool_calls == [ToolCall("call_0", "f", '{"a": "b}"}')]
    params = parse(call("f", raw='{"parameters": {"x": 1}, "name": "f"}'))
    assert params.tool_calls == [ToolCall("call_0", "f", '{"x": 1}')]


@pytest.mark.parametrize("raw, message", [
    ('{"name": "f", "arguments": {"a": 1}', "malformed tool call JSON"),  # missing brace
    ('{"name": "f", "arguments": {"a": 1}}}', "malformed tool call JSON"),  # stray outer brace
    ("{'name': 'f', 'arguments': {}}", "malformed tool call JSON"),
    ('get_weather("Paris")', "malformed tool call JSON"),
    ('{"name": "f", "arguments": {"a": 1},}', "malformed tool call JSON"),
    ('{"arguments": {"a": 1}}', "tool call has no name"),
    ('{"name": "", "arguments": {}}', "tool call has no name"),
    ('{"name": 3, "arguments": {}}', "tool call name is not a string"),
    ('{"name": "f", "arguments": [1, 2]}', "tool call arguments are not a JSON object"),
    ('{"name": "f", "arguments": "not json"}', "tool call arguments are not a JSON object"),
    ('{"name": "f", "arguments": 7}', "tool call arguments are not a JSON object"),
    ('{"name": "f", "name": "g", "arguments": {}}', 'duplicate "name"'),
    ('{"name": "f", "arguments": {"a": 1}, "parameters": {"b": 2}}', "duplicate arguments"),
    ('{"arguments": {"a": 1}, "arguments": {"b": 2}, "name": "f"}', "duplicate arguments"),
    ('["f", {}]', "malformed tool call"),
])
def test_malformed_calls_are_errors_not_content(raw, message):
    r = parse("before " + call("f", raw=raw) + " after " + call("noop", {"k": 1}))
    assert r.content == "before  after" and len(r.errors) == 1 and r.errors[0].startswith(message)
    assert [c.name for c in r.tool_calls] == ["noop"]
    assert "name" not in r.content and "{" not in r.content


def test_a_call_that_breaks_after_its_name_started_is_void():
    events, _ = stream(["<tool_call>", '{"name": "f", "arguments": {"a": 1}', "</tool_call>"])
    assert events[0] == ToolCallStart(0, "call_0", "f") and isinstance(events[-1], ToolCallError)
    assert events[-1].index == 0
    # the next good call takes the next index, so ids stay unique
    r = parse(call("f", raw='{"name": "f", "arguments": {]}') + call("g", {}))
    assert r.tool_calls == [ToolCall("call_1", "g", "{}")]


def test_unknown_tool():
    events, _ = stream([call("rm_rf", {"path": "/"}) + call("search", {"q": "x"})], tool_names=TOOLS)
    assert events[0] == ToolCallError(0, 'unknown tool "rm_rf"')  # never started: its would-be index
    assert events[1] == ToolCallStart(0, "call_0", "search")
    r = parse(call("rm_rf", {"path": "/"}), tool_names=TOOLS)
    assert r == Parsed("", "", [], ['unknown tool "rm_rf"'], False)
    assert parse(call("rm_rf", {})).tool_calls[0].name == "rm_rf"  # no tool list: no check


def test_unclosed_tool_call():
    r = parse('Let me check. <tool_call>\n{"name": "search", "arguments": {"q": "par')
    assert r == Parsed("Let me check.", "", [], ["unclosed tool call"], False)
    assert parse('<think>x<tool_call>{"name": "search"}\n</tool_c').unclosed_think


def test_angle_brackets_in_content():
    text = "if x<y and a < b then </ or <br> or <thinking> or <tool> </tool_call> -> ok"
    assert parse(text).content == text
    assert parse("<think>x<y </ </t <tool </think>").reasoning == "x<y </ </t <tool"


def test_a_lone_angle_bracket_is_released_promptly():
    parser = HermesStreamParser(id_prefix=PREFIX)
    assert parser.feed("a < b") == [ContentDelta("a < b")]
    assert parser.feed(" c<") == [ContentDelta(" c")]  # "<" could start a tag: held
    assert parser.feed("d") == [ContentDelta("<d")]
    assert parser.feed("\n\n") == []  # trailing whitespace waits for more text
    assert parser.feed("x") == [ContentDelta("\n\nx")]


def test_tags_split_across_chunks():
    chunks = ["<", "thi", "nk>", "r", "</th", "ink>", "\nc", "<to", "ol_c", "all>", '{"name": "f"', "}</", "tool",
              "_call", ">", " end"]
    r = fold(*stream(chunks))
    assert r == parse("".join(chunks))
    assert (r.reasoning, r.content, r.tool_calls) == ("r", "c end", [ToolCall("call_0", "f", "{}")])


def test_two_calls_and_text_in_one_chunk():
    text = "a" + call("f", {"x": 1}) + "b" + call("g", {"y": [2]}) + "c"
    events, _ = stream([text])
    assert [type(e).__name__ for e in events] == [
        "ContentDelta", "ToolCallStart", "ToolCallArguments", "ContentDelta", "ToolCallStart",
        "ToolCallArguments", "ContentDelta"]
    assert parse(text).content == "abc"


def test_unicode_and_emoji():
    r = parse("<think>ünï 😀</think>ñ 😀" + call("f", {"s": "😀\u2028é"}))
    assert (r.reasoning, r.content) == ("ünï 😀", "ñ 😀")
    assert json.loads(r.tool_calls[0].arguments) == {"s": "😀\u2028é"}


# -- property tests: texts from a grammar of segments, split anywhere -------------------------------

# Pieces of text that cannot combine into a tag (no token contains "k>" or "_call>"), but are full of
# tag prefixes and JSON punctuation.
TRICKY = ["a", "b", "word", "x<y", "a < b", "<", ">", "</", "<thi", "</too", "<tool", "<br>", "{", "}",
          '"', "\\", "/", "[", "]", ":", ",", " ", "  ", "\n", "\n\n", "\t", "é", "😀"]
CONTENT = st.lists(st.sampled_from([*TRICKY, "</think>", "</tool_call>"]), max_size=8).map("".join)
REASONING = st.lists(st.sampled_from([*TRICKY, "<think>", "</tool_call>", "</thi"]), max_size=8).map("".join)
PAD = st.sampled_from(["", " ", "\n", "\n\n", " \t\n"])

JSON_TEXT = st.lists(st.sampled_from(
    ["a", "b", " ", "\"", "\\", "{", "}", "[", "]", "</tool_call>", "<think>", "\n", "é", "😀", "\u2028", "\\n",
     "name", "arguments"]),
    max_size=6).map("".join)
SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False,
                                                                             allow_infinity=False) | JSON_TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JSON_TEXT, inner,
                                                                                            max_size=3),
                      max_leaves=8)
ARGUMENTS = st.dictionaries(JSON_TEXT, VALUES, max_size=4)


@dataclass
class Call:
    text: str
    name: str | None = None  # set for a valid call
    arguments: str | None = None
    value: object = None
    bad: bool = False


@st.composite
def dumps(draw, value) -> str:
    indent = draw(st.sampled_from([None, 2]))
    separators = draw(st.sampled_from([(", ", ": "), (",", ":")]))
    return json.dumps(value, indent=indent, separators=separators, ensure_ascii=draw(st.booleans()))


@st.composite
def tool_calls(draw, unknown_allowed: bool) -> Call:
    name = draw(st.sampled_from(sorted(TOOLS)))
    args = draw(ARGUMENTS)
    raw = draw(dumps(args))
    shape = draw(st.sampled_from(["object", "object", "object", "string", "missing", "null", "parameters"]))
    pairs = [("name", json.dumps(name))]
    expected = raw
    if shape == "string":
        expected = json.dumps(args)
        pairs.append(("arguments", json.dumps(expected)))
    elif shape == "null":
        pairs.append(("arguments", "null"))
    elif shape != "missing":
        pairs.append(("parameters" if shape == "parameters" else "arguments", raw))
    if shape in ("missing", "null"):
        args, expected = {}, "{}"
    if draw(st.booleans()):
        pairs.reverse()  # "arguments" before "name"
    if draw(st.integers(0, 3)) == 0:  # a key that is neither, with any value
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(["id", "type"])), draw(dumps(
            draw(VALUES)))))
    sep = draw(st.sampled_from([", ", ",\n  ", ","]))
    body = "{" + sep.join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
    fault = draw(st.sampled_from([None] * 12 + ["missing_brace", "trailing_comma", "junk", "unknown"]))
    if fault == "unknown" and not unknown_allowed:
        fault = None
    if fault == "missing_brace":
        body = body[:-1]
    elif fault == "trailing_comma":
        body = body[:-1] + ",}"
    elif fault == "junk":
        body = "call " + body
    elif fault == "unknown":
        body = body.replace(json.dumps(name), json.dumps("rm_rf"), 1)
    text = "<tool_call>" + draw(PAD) + body + draw(PAD) + "</tool_call>"
    if fault:
        return Call(text, bad=True)
    return Call(text, name, expected, args)


@st.composite
def documents(draw):
    """A Hermes-style output, with what parsing it must give (content, reasoning, calls, error count,
    unclosed). Returns (text, think_open, tool_names, expected)."""
    think_open = draw(st.booleans())
    tool_names = draw(st.sampled_from([None, TOOLS]))
    a_call = tool_calls(unknown_allowed=tool_names is not None)
    text, content, reasoning, calls, errors = [], [], [], [], 0
    unclosed = False
    n = draw(st.integers(0, 5))
    for position in range(n + 1):
        last = position == n
        # with think_open the text starts inside a think block whose "<think>" is in the prompt
        kind = "think" if position == 0 and think_open else draw(st.sampled_from(["content", "think", "call"]))
        if kind == "content":
            text.append(piece := draw(CONTENT))
            content.append(piece)
        elif kind == "call":
            c = draw(a_call)
            text.append(c.text)
            calls.append(c)
        else:
            closed = not last or draw(st.booleans())
            if not (position == 0 and think_open):
                text.append("<think>")
            dirty = True
            for item in draw(st.lists(st.sampled_from(["r", "r", "call"]), max_size=4)):
                if item == "call":
                    c = draw(a_call)
                    text.append(c.text)
                    calls.append(c)
                    dirty = False
                else:
                    text.append(piece := draw(REASONING))
                    reasoning.append(piece)
                    dirty = dirty or bool(piece.strip())
            if closed:
                text.append("</think>")
            else:
                unclosed = dirty
        if last and draw(st.integers(0, 5)) == 0:  # the text stops in the middle of a tool call
            c = draw(a_call)
            cut = draw(st.integers(len("<tool_call>"), len(c.text) - len("</tool_call>")))
            text.append(c.text[:cut])
            errors += 1
            unclosed = kind == "think" and not closed  # cut off inside a think block: truncated
    errors += sum(c.bad for c in calls)
    good = [c for c in calls if not c.bad]
    expected = ("".join(content).strip(), "".join(reasoning).strip(), good, errors, unclosed)
    return "".join(text), think_open, tool_names, expected


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


@PROPERTY
@given(documents(), st.data())
def test_any_chunking_gives_the_non_streaming_result(doc, data):
    text, think_open, tool_names, _expected = doc
    kw = {"think_open": think_open, "tool_names": tool_names}
    result = parse_text(text, id_prefix=PREFIX, **kw)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=60))
    assert fold(*stream(split(text, cuts), **kw)) == result
    assert fold(*stream(list(text), **kw)) == result  # every single-character split
    assert fold(*stream([text], **kw)) == result


@PROPERTY
@given(documents())
def test_parse_matches_what_the_text_was_built_from(doc):
    text, think_open, tool_names, (content, reasoning, calls, errors, unclosed) = doc
    result = parse_text(text, id_prefix=PREFIX, think_open=think_open, tool_names=tool_names)
    assert (result.content, result.reasoning) == (content, reasoning)
    assert (len(result.errors), result.unclosed_think) == (errors, unclosed)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [(c.name, c.arguments) for c in calls]
    for got, want in zip(result.tool_calls, calls, strict=True):
        assert json.loads(got.arguments) == want.value  # fragments concatenated parse to the original
    indexes = [int(c.id.removeprefix(PREFIX)) for c in result.tool_calls]
    assert indexes == sorted(set(indexes))
    if not errors:
        assert indexes == list(range(len(calls)))


# -- cost: the held-back text stays small, so the work per chunk does not grow with the stream --------


def test_long_streams_do_linear_work():
    parser = HermesStreamParser(id_prefix=PREFIX)
    work = [0]
    for name in ("_text_step", "_tool_step"):  # count the characters each step is handed
        step = getattr(parser, name)

        def counting(buf, i, out, final, step=step):
            work[0] += len(buf) - i
            return step(buf, i, out, final)
        setattr(parser, name, counting)

    pieces = ["<think>"] + ["thinking x<y a</b "] * 7000 + ["</think>", "answer < "] * 1 + ["and more "] * 6000
    pieces += ['<tool_call>{"name": "search", "arguments": {"q": "'] + ['ab\\"}{ <'] * 7000 + ['"}}</tool_call>']
    total, biggest, events = 0, 0, []
    for piece in pieces:
        for chunk in (piece[:3], piece[3:]):  # tags and escapes split across chunks too
            total += len(chunk)
            events += parser.feed(chunk)
            biggest = max(biggest, len(parser._buf) + sum(map(len, parser._pending)))
    events += parser.finish()
    assert len(pieces) * 2 >= 40_000
    assert biggest <= 12  # a partial "</tool_call>" at most, plus one space of pending whitespace
    assert work[0] <= 2 * total
    r = fold(events, parser.unclosed_think)
    assert r.reasoning.startswith("thinking x<y a</b") and r.content.startswith("answer <")
    assert json.loads(r.tool_calls[0].arguments) == {"q": 'ab"}{ <' * 7000}
