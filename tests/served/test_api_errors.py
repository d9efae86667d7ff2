"""How a served model's failures are recorded: the server's error text without the key it
echoes, Retry-After honoured, a timeout named with its seconds, a long wait announced, and
URL credentials beside an api_key refused at start. A scripted stdlib server stands in."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from scripted_http import ScriptedServer

from rgen_harness.chat import api_backend
from rgen_harness.chat.api_backend import ApiChatBackend, ApiModelUnusable

KEY = "sk-test-SECRETkey-0123456789"


def chat_url(server: ScriptedServer) -> str:
    return f"http://127.0.0.1:{server.port}/v1/chat/completions"


def backend(url, *, timeout=30, retries=2):
    """An ApiChatBackend over a stand-in for lm-eval's LocalChatCompletion (the attributes
    `_post` reads, with lm-eval's names)."""
    lm = SimpleNamespace(
        base_url=url,
        api_key=KEY,
        header={"Authorization": f"Bearer {KEY}"},
        max_retries=retries,
        timeout=timeout,
        _concurrent=1,
        verify_certificate=True,
        parse_generations=lambda outputs: [outputs["choices"][0]["message"]["content"]],
    )
    b = object.__new__(ApiChatBackend)
    b.lm, b.chat, b.tokenizer = lm, True, None
    return b


def post(b):
    return asyncio.run(b._post_all([lambda: {"messages": [{"role": "user", "content": "hi"}]}]))[0]


OK = (200, {}, json.dumps({"choices": [{"message": {"content": "hello"}}]}), 0)


def test_error_body_echoing_the_key_is_masked_in_the_reason():
    server = ScriptedServer([(401, {}, 'invalid key "{auth}" (api_key=' + KEY + ")", 0)])
    try:
        gen = post(backend(chat_url(server)))
    finally:
        server.close()
    assert gen.error.startswith("HTTP 401 from http://127.0.0.1:")
    assert KEY not in gen.error and "***" in gen.error


def test_retry_after_is_honoured():
    server = ScriptedServer([(429, {"Retry-After": "2"}, "slow down", 0), OK])
    try:
        gen = post(backend(chat_url(server)))
    finally:
        server.close()
    assert gen.text == "hello"
    assert server.times[1] - server.times[0] >= 1.9  # lm-eval's back-off would be 1 s


def test_timeout_is_named_with_its_seconds_and_announced(monkeypatch, caplog):
    monkeypatch.setattr(api_backend, "WAIT_WARNING_S", 0.3)
    server = ScriptedServer([(200, {}, "{}", 1.6)])
    try:
        with caplog.at_level("WARNING"):
            gen = post(backend(chat_url(server), timeout=1, retries=1))
    finally:
        server.close()
    assert "timed out after 1 s" in gen.error
    assert "no answer after" in caplog.text


def test_url_credentials_beside_an_api_key_are_refused_at_start():
    lm = backend("http://user:pw-SECRET@127.0.0.1:9/v1/chat/completions").lm
    with pytest.raises(ApiModelUnusable, match="carries credentials") as caught:
        api_backend._check_credentials(lm, "LocalChatCompletion")
    assert "pw-SECRET" not in str(caught.value) and "http://***@127.0.0.1:9" in str(caught.value)
