"""Chat templates: a conversation -> the one string a chat model was trained to continue.

A chat model never sees "messages": it sees text with its own markers around each turn. The
model ships the recipe as a Jinja template (in a GGUF file's `tokenizer.chat_template`, or in
tokenizer_config.json / chat_template.jinja). SmolLM2's, for instance, turns

    [{"role": "user", "content": "Hi"}]

into (it adds a default system message when the conversation has none)

    <|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    <|im_start|>user
    Hi<|im_end|>
    <|im_start|>assistant

where the last line, the generation prompt, is where the model's answer begins.

We render the template the way Hugging Face's `apply_chat_template` does, so the text is the
same byte for byte: a sandboxed Jinja environment (a template is code from a file), block tags
that eat the newline after them and the indentation before them (`trim_blocks`,
`lstrip_blocks`), the loop-control extension, `raise_exception(message)` for a template to
refuse a conversation, a `tojson` that keeps non-ASCII text as it is, and `strftime_now`.
"""

import json
from datetime import datetime

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fromscratch.errors import UserError


def _raise_exception(message: str):
    raise UserError(f"the chat template refuses this conversation: {message}")


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _environment() -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
    return environment


def _check_messages(messages) -> None:
    """A conversation is a list of {"role": ..., "content": ...} dicts; say what is wrong if not."""
    if not isinstance(messages, list | tuple):
        raise UserError(f"messages must be a list of {{'role': ..., 'content': ...}} dicts, "
                        f"not {messages!r}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise UserError(f"message {i} must be a dict with a 'role', not {message!r}")


def render_chat_template(
    template: str, messages: list[dict], *, add_generation_prompt: bool = True, **variables
) -> str:
    """The text of `messages` by `template`.

    add_generation_prompt: end with the marker that opens the assistant's turn.
    variables: the special tokens a template may use (bos_token, eos_token, ...).

    >>> render_chat_template(
    ...     "{% for m in messages %}<{{ m.role }}>{{ m.content }}\\n{% endfor %}"
    ...     "{% if add_generation_prompt %}<assistant>{% endif %}",
    ...     [{"role": "user", "content": "Hi"}])
    '<user>Hi\\n<assistant>'
    """
    _check_messages(messages)
    try:
        compiled = _environment().from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise UserError(
            f"the chat template is not valid Jinja: {error} (line {error.lineno})"
        ) from None
    return compiled.render(
        messages=messages, add_generation_prompt=add_generation_prompt, **variables
    )
