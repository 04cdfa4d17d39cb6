r"""Split the raw text of Hermes-style models into reasoning, content and tool calls.

Hermes 3/4 write reasoning as ``<think>…</think>`` and tool calls as
``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` inside ordinary text. One TEXT / THINK / TOOL
state machine serves both paths: `HermesStreamParser` is fed chunks and returns events; `parse_text`
feeds it the whole text and folds the events, so the two agree for any chunking by construction. A feed
looks only at the new chunk plus a held-back suffix that could still become a tag, so the cost of a
chunk does not grow with the stream.

Decisions (pinned down by tests/test_transform_hermes.py):
- Reasoning is only what lies between a real ``<think>`` (or the start, with ``think_open``) and
  ``</think>``. A ``</think>`` outside a think block, a ``<think>`` inside one and a ``</tool_call>``
  outside a call are text: the model wrote them, and guessing would move text between fields.
- Whitespace: content and reasoning are each one stream with the tags cut out; each loses its leading
  and trailing whitespace ("<think>\nR\n</think>\n\nA" gives "R" and "A") and keeps the whitespace
  between its pieces. Streaming holds a trailing whitespace run back until more text follows.
- A ``<tool_call>`` inside a think block is a tool call, and the block goes on after it. `unclosed_think`
  is true when the text ends inside a think block, unless the last non-blank thing in it was a complete
  tool call (the model called a tool while thinking and stopped: not a truncation).
- Ids are f"{id_prefix}{index}"; an index is handed out with a ToolCallStart (the name is known and
  allowed), so a client sees no gaps. An error for a call that never started carries the next index.
- Arguments stream as the model's raw text of the "arguments" (or "parameters") object. A JSON string
  (stringified JSON) is decoded once, when complete, and sent as one fragment; null, "" or no key mean
  "{}". Arrays and other scalars are errors.
- A call that is not valid JSON, has no name, names a tool outside ``tool_names`` or is cut off by the end
  of the text gives one ToolCallError (one Parsed.errors entry) and never becomes content. The error can
  follow a ToolCallStart for the same index (the JSON broke after the name): that call is void.
- ``</tool_call>`` ends a call only outside JSON strings, so arguments may contain it; the price is that
  a call with an unterminated string runs to the end of the text (an unclosed-call error).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

THINK_OPEN, THINK_CLOSE, CALL_OPEN, CALL_CLOSE = "<think>", "</think>", "<tool_call>", "</tool_call>"


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the JSON text of the arguments as the model wrote it (see the module notes)


@dataclass(slots=True)
class Parsed:
    content: str
    reasoning: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unclosed_think: bool = False  # ended inside <think>: the finish reason should become "length"


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArguments:
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class ToolCallError:
    index: int
    message: str


Event = ContentDelta | ReasoningDelta | ToolCallStart | ToolCallArguments | ToolCallError

_TEXT, _THINK, _TOOL = 0, 1, 2  # _TEXT and _THINK double as indexes of the content/reasoning streams
_DELTA = (ContentDelta, ReasoningDelta)
_TAGS = {_TEXT: (THINK_OPEN, CALL_OPEN), _THINK: (THINK_CLOSE, CALL_OPEN)}
_LONGEST_TAG = len(CALL_CLOSE)
_STRING_STOP = re.compile(r'["\\]')  # inside a JSON string only these two characters matter
_JSON_WS = " \t\r\n"
_ARGUMENT_KEYS = ("arguments", "parameters")


class _Call:
    """One <tool_call> body being read: a JSON lexer (strings, escapes, bracket depth) and a tiny parser
    of the top-level object that knows where the "name" and "arguments" values start and end. The body
    is kept whole only to `json.loads` it once at </tool_call>."""

    __slots__ = ("ret", "body", "in_str", "esc", "depth", "expect", "key", "role", "kind", "capture",
                 "streaming", "args", "have_args", "have_name", "index", "error")

    def __init__(self, ret: int) -> None:
        self.ret = ret  # the mode to return to after </tool_call>
        self.body: list[str] = []
        self.in_str = self.esc = False
        self.depth = 0
        # where the top-level parser is: open, key, keystr, colon, value, in_value, after, done, broken
        self.expect = "open"
        self.key: str | None = None  # the current key
        self.role: str | None = None  # its value's role: "name" or "args"
        self.kind: str | None = None  # its value's kind: str, box or scalar
        self.capture: list[str] | None = None  # the key, name or string-arguments token being read
        self.streaming = False  # inside an object "arguments" value: characters go to `args`
        self.args: list[str] = []  # argument text not yet emitted (all of it while the name is unknown)
        self.have_args = self.have_name = False
        self.index: int | None = None  # set when ToolCallStart is emitted
        self.error: str | None = None

    def take(self, s: str) -> None:
        self.body.append(s)
        if self.capture is not None:
            self.capture.append(s)
        if self.streaming:
            self.args.append(s)

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.streaming = False
        self.args.clear()  # a failed call sends no more arguments


class HermesStreamParser:
    def __init__(self, *, id_prefix: str, tool_names: frozenset[str] | None = None,
                 think_open: bool = False) -> None:
        self._prefix = id_prefix
        self._tools = tool_names
        self._mode = _THINK if think_open else _TEXT
        self._buf = ""  # held back: a suffix that may still become a tag
        self._pending = ["", ""]  # per stream: trailing whitespace not yet known to be inside the text
        self._started = [False, False]  # per stream: has non-blank text been emitted
        self._dirty = think_open  # the open think block has text after its last tool call
        self._call: _Call | None = None
        self._next_index = 0

    @property
    def unclosed_think(self) -> bool:
        return self._dirty and (self._mode == _THINK or (self._call is not None and self._call.ret == _THINK))

    def feed(self, text: str) -> list[Event]:
        out: list[Event] = []
        self._buf += text
        self._run(out, final=False)
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        self._run(out, final=True)  # nothing is a tag prefix any more: held-back text is text
        call = self._call
        if call is not None:  # its arguments were flushed at the end of the last step
            out.append(ToolCallError(self._index_of(call), call.error or "unclosed tool call"))
            self._call, self._mode = None, call.ret
            self._dirty = True  # cut off in the middle of a call: truncated
        return out  # whitespace still pending trails its stream: it is never sent

    # -- the state machine --------------------------------------------------------------------------

    def _run(self, out: list[Event], final: bool) -> None:
        buf = self._buf
        i: int | None = 0
        while i is not None and i < len(buf):
            step = self._tool_step if self._mode == _TOOL else self._text_step
            i = step(buf, i, out, final)  # the index where the next mode starts, or None: hold back
        self._buf = "" if i is not None else self._buf

    def _text_step(self, buf: str, i: int, out: list[Event], final: bool) -> int | None:
        tags = _TAGS[self._mode]
        lt = buf.find("<", i)
        while lt != -1:
            for tag in tags:
                if buf.startswith(tag, lt):
                    self._emit(buf[i:lt], out)
                    self._enter(tag)
                    return lt + len(tag)
            if not final and len(buf) - lt < _LONGEST_TAG and any(t.startswith(buf[lt:]) for t in tags):
                self._emit(buf[i:lt], out)
                self._buf = buf[lt:]
                return None
            lt = buf.find("<", lt + 1)  # a literal "<" ("a < b", "x<y"): released at once
        self._emit(buf[i:], out)
        return len(buf)

    def _enter(self, tag: str) -> None:
        if tag == CALL_OPEN:
            self._call, self._mode = _Call(self._mode), _TOOL
        elif tag == THINK_OPEN:
            self._mode, self._dirty = _THINK, True
        else:
            self._mode = _TEXT

    def _emit(self, s: str, out: list[Event]) -> None:
        """Send text to the current stream, keeping its leading and trailing whitespace out."""
        stream = self._mode
        if not self._started[stream]:
            s = s.lstrip()
        core = s.rstrip()
        if not core:
            if self._started[stream]:
                self._pending[stream] += s
            return
        out.append(_DELTA[stream](self._pending[stream] + core))
        self._pending[stream] = s[len(core):]
        self._started[stream] = True
        if stream == _THINK:
            self._dirty = True

    def _tool_step(self, buf: str, i: int, out: list[Event], final: bool) -> int | None:
        call = self._call
        assert call is not None
        n = len(buf)
        while i < n:
            if call.in_str:
                if call.esc:
                    call.esc = False
                    call.take(buf[i])
                    i += 1
                    continue
                stop = _STRING_STOP.search(buf, i)
                j = stop.start() if stop else n
                if j > i:
                    call.take(buf[i:j])
                if j == n:
                    break
                call.take(buf[j])
                i = j + 1
                if buf[j] == "\\":
                    call.esc = True
                else:
                    call.in_str = False
                    self._string_closed(call, out)
                continue
            ch = buf[i]
            if ch == "<":  # </tool_call> counts only outside JSON strings
                if buf.startswith(CALL_CLOSE, i):
                    self._close_call(call, out)
                    return i + len(CALL_CLOSE)
                if not final and n - i < _LONGEST_TAG and CALL_CLOSE.startswith(buf[i:]):
                    self._flush_args(call, out)
                    self._buf = buf[i:]
                    return None
            self._structure(call, ch, out)
            i += 1
        self._flush_args(call, out)
        return n

    def _structure(self, call: _Call, ch: str, out: list[Event]) -> None:
        """One character outside JSON strings: track the top-level object, then take the character."""
        expect = call.expect
        if expect == "in_value" and call.kind == "scalar" and ch in ",}":
            self._value_done(call, out)  # a number/true/null ends at the next delimiter
            expect = call.expect
        if ch == '"':
            call.in_str = True
        if expect == "in_value" or expect == "broken":
            if ch in "{[":
                call.depth += 1
            elif ch in "}]":
                call.depth -= 1
            call.take(ch)
            if expect == "in_value" and call.kind == "box" and call.depth == 1:
                self._value_done(call, out)
            return
        if ch in _JSON_WS:
            call.take(ch)
            return
        if expect == "value":
            self._value_start(call, ch)
            call.take(ch)
            return
        if expect == "open" and ch == "{":
            call.depth, call.expect = 1, "key"
        elif expect == "key" and ch == '"':
            call.capture, call.expect = [], "keystr"
        elif expect == "colon" and ch == ":":
            call.expect = "value"
        elif expect == "after" and ch == ",":
            call.expect = "key"
        elif expect in ("key", "after") and ch == "}":
            call.expect = "done"
        else:  # not JSON: json.loads at </tool_call> reports it; until then only the lexer runs
            call.expect, call.capture, call.streaming = "broken", None, False
        call.take(ch)

    def _value_start(self, call: _Call, ch: str) -> None:
        call.expect = "in_value"
        call.kind = "str" if ch == '"' else "box" if ch in "{[" else "scalar"
        if call.kind == "box":
            call.depth += 1
        call.role = "name" if call.key == "name" else "args" if call.key in _ARGUMENT_KEYS else None
        if call.role == "name":
            if call.have_name:
                call.fail('duplicate "name" in tool call')
            call.have_name = True
            if call.kind != "str":
                call.fail("tool call name is not a string")
            call.capture = []
        elif call.role == "args":
            if call.have_args:
                call.fail("duplicate arguments in tool call")
            if ch == "{":
                call.streaming = call.error is None
                call.have_args = True
            elif ch == "[":
                call.fail("tool call arguments are not a JSON object")
            else:
                call.capture = []  # a string (stringified JSON) or null: judged when complete

    def _string_closed(self, call: _Call, out: list[Event]) -> None:
        if call.expect == "keystr":
            call.key, call.expect = _decode("".join(call.capture or ())), "colon"
            call.capture = None
        elif call.expect == "in_value" and call.kind == "str":
            self._value_done(call, out)

    def _value_done(self, call: _Call, out: list[Event]) -> None:
        token = "".join(call.capture) if call.capture is not None else None
        role = call.role
        call.expect, call.kind, call.role, call.capture, call.streaming = "after", None, None, None, False
        if role == "name" and token is not None:
            name = _decode(token)
            if not name:
                call.fail("tool call has no name")
            elif self._tools is not None and name not in self._tools:
                call.fail(f'unknown tool "{name}"')
            if call.error is None and name:  # (no name has failed the call already)
                call.index, self._next_index = self._next_index, self._next_index + 1
                out.append(ToolCallStart(call.index, f"{self._prefix}{call.index}", name))
        elif role == "args" and token is not None:
            value = _loads(token)
            if value is None or (isinstance(value, str) and not value.strip()):
                return  # null or "": no arguments, "{}" at the end
            if not isinstance(value, str) or not isinstance(_loads(value), dict):
                call.fail("tool call arguments are not a JSON object")
                return
            call.have_args = True
            call.args.append(value)  # stringified JSON: decoded once, sent as one fragment

    def _flush_args(self, call: _Call, out: list[Event]) -> None:
        if call.index is not None and call.args and call.error is None:  # without a name, arguments wait
            out.append(ToolCallArguments(call.index, "".join(call.args)))
            call.args.clear()

    def _close_call(self, call: _Call, out: list[Event]) -> None:
        self._flush_args(call, out)
        error = call.error
        if error is None:
            try:
                body = json.loads("".join(call.body))
            except ValueError as exc:
                error = f"malformed tool call JSON: {exc}"
            else:
                if not isinstance(body, dict):
                    error = "malformed tool call: not a JSON object"
                elif call.index is None:
                    error = "tool call has no name"
        if error is not None:
            out.append(ToolCallError(self._index_of(call), error))
        elif not call.have_args:
            out.append(ToolCallArguments(self._index_of(call), "{}"))  # a tool without parameters
        self._call, self._mode = None, call.ret
        if call.ret == _THINK:
            self._dirty = False  # thinking that ends with a tool call was not cut off

    def _index_of(self, call: _Call) -> int:
        return call.index if call.index is not None else self._next_index


_INVALID = object()


def _loads(token: str) -> object:
    try:
        return json.loads(token)
    except ValueError:
        return _INVALID


def _decode(token: str) -> str | None:
    """A complete JSON string token (a key or the name) to its text; None if it is not one."""
    value = _loads(token)
    return value if isinstance(value, str) else None


def collect(events: list[Event], unclosed_think: bool = False) -> Parsed:
    """Fold stream events into the non-streaming result (what `parse_text` returns)."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, tuple[str, str, list[str]]] = {}
    errors: list[str] = []
    for event in events:
        if isinstance(event, ContentDelta):
            content.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallStart):
            calls[event.index] = (event.id, event.name, [])
        elif isinstance(event, ToolCallArguments):
            calls[event.index][2].append(event.fragment)
        else:
            errors.append(event.message)
            calls.pop(event.index, None)  # a started call whose JSON broke later is void
    tool_calls = [ToolCall(id, name, "".join(args)) for _, (id, name, args) in sorted(calls.items())]
    return Parsed("".join(content), "".join(reasoning), tool_calls, errors, unclosed_think)


def parse_text(text: str, *, id_prefix: str, tool_names: frozenset[str] | None = None,
               think_open: bool = False) -> Parsed:
    parser = HermesStreamParser(id_prefix=id_prefix, tool_names=tool_names, think_open=think_open)
    events = parser.feed(text)
    events += parser.finish()
    return collect(events, parser.unclosed_think)
