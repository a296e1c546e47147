"""The OpenAI-compatible gateway: OpenAI's shapes, Cogloop's Outputs, and the official client."""

import json
import socket
import time

import pytest

from inference import services
from inference.models import Output

CHAT = "/v1/chat/completions"
PROMPT = "Start with 40. Add 5. Subtract 3. What is the result?"


def chat(client, body, key, **headers):
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(CHAT, data=data, content_type="application/json", headers=headers)


def ask(**extra):
    return {"model": "cogloop", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 48, **extra}


def events(response) -> list:
    """The data of each server-sent event (comments skipped), [DONE] as the string."""
    text = b"".join(response.streaming_content).decode()
    assert text.endswith("data: [DONE]\n\n")
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
        else:
            assert block == "" or block.startswith(":"), block
    return out


@pytest.fixture
def base(db):
    return services.model_version_ensure_base()


def test_a_completion_is_openai_shaped_and_stored_as_a_scored_output(api_client, api_key, base):
    r = chat(api_client, ask(), api_key)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == base.name and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length") and choice["logprobs"] is None
    output = Output.objects.get(uuid=choice["cogloop"]["output_id"])
    assert output.raw_text == choice["message"]["content"] and output.prompt == PROMPT
    assert output.model_version == base and output.source == Output.Source.GENERATED
    assert choice["cogloop"]["cognition_score"] == output.cognition_score
    assert choice["cogloop"]["answer"] == output.answer and output.steps
    assert choice["cogloop"]["sample_group"] is None and choice["cogloop"]["is_majority"] is None
    usage = body["usage"]
    assert usage["completion_tokens"] == output.completion_tokens > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # greedy by default, as /api/v1/generate: the same prompt there gives the same answer
    generated = api_client.post(
        "/api/v1/generate",
        data=json.dumps({"prompt": PROMPT, "max_new_tokens": 48}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    ).json()
    assert generated["raw_text"] == output.raw_text
    assert generated["cognition_score"] == output.cognition_score


def test_n_samples_are_one_sample_group(api_client, api_key, base):
    body = chat(api_client, ask(n=3), api_key).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    group = body["cogloop"]["sample_group"]
    outputs = Output.objects.filter(sample_group=group).order_by("id")
    assert [str(o.uuid) for o in outputs] == [c["cogloop"]["output_id"] for c in body["choices"]]
    assert all(c["cogloop"]["sample_group"] == group for c in body["choices"])
    majority = body["cogloop"]["majority_answer"]
    for c in body["choices"]:
        assert isinstance(c["cogloop"]["is_majority"], bool)
        assert "agreement" in Output.objects.get(uuid=c["cogloop"]["output_id"]).score_parts
        if majority is None:
            assert c["cogloop"]["is_majority"] is False
    assert body["usage"]["completion_tokens"] == sum(o.completion_tokens for o in outputs)


def test_a_system_message_and_earlier_turns_are_ignored(api_client, api_key, base):
    plain = chat(api_client, ask(), api_key).json()
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Start with 1. What is the result?"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
    ]
    r = chat(api_client, {**ask(), "messages": messages}, api_key).json()
    assert r["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert Output.objects.get(uuid=r["choices"][0]["cogloop"]["output_id"]).prompt == PROMPT


def test_a_stop_sequence_cuts_what_is_returned_stored_and_scored(api_client, api_key, base):
    whole = chat(api_client, ask(), api_key).json()["choices"][0]["message"]["content"]
    assert "</think>" in whole
    r = chat(api_client, ask(stop=["</think>"], logprobs=True), api_key).json()
    (choice,) = r["choices"]
    assert choice["message"]["content"] == whole[: whole.index("</think>")]
    assert choice["finish_reason"] == "stop"
    output = Output.objects.get(uuid=choice["cogloop"]["output_id"])
    assert output.raw_text == choice["message"]["content"] and output.answer == ""
    assert r["usage"]["completion_tokens"] == output.completion_tokens < len(whole)
    if choice["logprobs"] is not None:
        assert len(choice["logprobs"]["content"]) == output.completion_tokens


def test_logprobs_are_the_answer_tokens_log_probabilities(api_client, api_key, base):
    r = chat(api_client, ask(logprobs=True, top_logprobs=0), api_key).json()
    (choice,) = r["choices"]
    content = choice["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == choice["message"]["content"]
    assert len(content) == r["usage"]["completion_tokens"]
    assert all(t["logprob"] <= 0 and t["top_logprobs"] == [] for t in content)
    # the same tokens and values give the stored model confidence
    output = Output.objects.get(uuid=choice["cogloop"]["output_id"])
    assert services.logprob_confidence(
        ([t["token"] for t in content], [t["logprob"] for t in content])
    ) == pytest.approx(output.model_confidence)


def test_a_stream_sends_the_stored_answer_in_openai_chunks(api_client, api_key, base):
    r = chat(api_client, ask(n=2, stream=True, stream_options={"include_usage": True}), api_key)
    assert r.status_code == 200 and r["Content-Type"].startswith("text/event-stream")
    data = events(r)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(c["delta"].get("content", "") for c in mine)
        last = mine[-1]
        assert last["finish_reason"] in ("stop", "length") and last["delta"] == {}
        output = Output.objects.get(uuid=last["cogloop"]["output_id"])
        assert output.raw_text == text and output.sample_group is not None
        assert last["cogloop"]["cognition_score"] == output.cognition_score


def test_an_idempotency_key_replays_the_completion(api_client, api_key, base):
    first = chat(api_client, ask(), api_key, **{"Idempotency-Key": "c1"}).json()
    again = chat(api_client, ask(), api_key, **{"Idempotency-Key": "c1"}).json()
    assert again["id"] == first["id"] and again["choices"] == first["choices"]
    assert Output.objects.count() == 1
    other = chat(api_client, ask(max_tokens=12), api_key, **{"Idempotency-Key": "c1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_models_lists_the_active_version(api_client, api_key, db):
    auth = {"Authorization": f"Bearer {api_key}"}
    assert api_client.get("/v1/models", headers=auth).json() == {"object": "list", "data": []}
    base = services.model_version_ensure_base()
    body = api_client.get("/v1/models", headers=auth).json()
    assert body["object"] == "list"
    (model,) = body["data"]
    assert model["id"] == base.name and model["object"] == "model" and model["owned_by"] == "cogloop"
    assert model["cogloop"]["version_id"] == base.pk
    for name in (base.name, "cogloop"):
        assert api_client.get(f"/v1/models/{name}", headers=auth).json()["id"] == base.name
    missing = api_client.get("/v1/models/gpt-4o", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert api_client.get("/v1/models").status_code == 401


# -- errors: OpenAI's shape, the right status, nothing written ---------------------------------


def assert_openai_error(response, status, code=None, param=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code:
        assert error["code"] == code
    if param:
        assert error["param"] == param, error
    return error


@pytest.mark.django_db
class TestBadRequestsWriteNothing:
    @pytest.mark.parametrize(
        "change, param",
        [
            ({"messages": []}, "messages"),
            ({"messages": "hi"}, "messages"),
            ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
            ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
            ({"messages": [{"role": "user", "content": "   "}]}, "messages"),
            ({"messages": [{"role": "user", "content": "a\u0000b"}]}, "messages"),
            (
                {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
                "messages",
            ),
            ({"messages": [{"role": "user"}]}, "messages"),
            ({"model": None}, "model"),
            ({"n": 0}, "n"),
            ({"n": 17}, "n"),
            ({"n": 3, "temperature": 0}, "temperature"),
            ({"temperature": 3}, "temperature"),
            ({"top_p": 0}, "top_p"),
            ({"max_tokens": 0}, "max_tokens"),
            ({"max_tokens": 100000}, "max_tokens"),
            ({"max_tokens": 10, "max_completion_tokens": 20}, "max_completion_tokens"),
            ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
            ({"stop": [""]}, "stop"),
            ({"stop": 7}, "stop"),
            ({"top_logprobs": 5, "logprobs": True}, "top_logprobs"),
            ({"stream_options": {"include_usage": True}}, "stream_options"),
            ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
            ({"frequency_penalty": 0.5}, "frequency_penalty"),
            ({"response_format": {"type": "json_object"}}, "response_format"),
            ({"temprature": 0.5}, "temprature"),
        ],
    )
    def test_a_bad_field_is_a_400_naming_it(self, api_client, api_key, base, change, param):
        body = {k: v for k, v in {**ask(), **change}.items() if v is not None}
        error = assert_openai_error(chat(api_client, body, api_key), 400, "validation_error", param)
        assert error["type"] == "invalid_request_error" and param in error["message"]

    def test_ignored_fields_are_accepted(self, api_client, api_key, base):
        r = chat(
            api_client, ask(seed=7, user="u1", metadata={"a": "b"}, tools=[], frequency_penalty=0), api_key
        )
        assert r.status_code == 200, r.content
        Output.objects.all().delete()

    def test_malformed_json_is_a_400(self, api_client, api_key, base):
        assert_openai_error(chat(api_client, '{"model": ', api_key), 400, "malformed_json")

    def test_no_key_or_a_wrong_key_is_a_401(self, api_client, api_key, base):
        error = assert_openai_error(chat(api_client, ask(), None), 401, "invalid_api_key")
        assert error["type"] == "authentication_error"
        assert_openai_error(chat(api_client, ask(), api_key[:-2] + "zz"), 401, "invalid_api_key")

    def test_an_unknown_model_is_a_404(self, api_client, api_key, base):
        error = assert_openai_error(chat(api_client, ask(model="gpt-4o"), api_key), 404, "model_not_found")
        assert error["param"] == "model" and base.name in error["message"]

    def test_no_model_served_is_a_503_also_for_a_stream(self, api_client, api_key):
        assert_openai_error(chat(api_client, ask(), api_key), 503, "no_model")
        r = chat(api_client, ask(stream=True), api_key)
        assert_openai_error(r, 503, "no_model")

    def test_an_over_long_prompt_is_a_413(self, api_client, api_key, base, settings):
        settings.COGLOOP = {**settings.COGLOOP, "MAX_PROMPT_CHARS": 20}
        assert_openai_error(chat(api_client, ask(), api_key), 413, "prompt_too_long")

    def test_too_many_requests_is_a_429_with_retry_after(self, api_client, api_key, base, monkeypatch):
        from inference.api import ApiKeyRateThrottle

        monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "1/min"})
        chat(api_client, ask(model="nope"), api_key)  # the one request this key may make
        r = chat(api_client, ask(), api_key)
        error = assert_openai_error(r, 429, "rate_limit_exceeded")
        assert error["type"] == "requests" and int(r["Retry-After"]) > 0

    def test_an_unknown_path_under_v1_is_an_openai_404(self, api_client, api_key, base):
        r = api_client.get("/v1/embeddings", headers={"Authorization": f"Bearer {api_key}"})
        assert_openai_error(r, 404, "not_found")

    def teardown_method(self):
        assert Output.objects.count() == 0


# -- a real server, a client that hangs up, and the official client ----------------------------


@pytest.fixture
def served(live_server, api_key, transactional_db):
    base = services.model_version_ensure_base()
    return live_server.url, api_key, base


def test_a_client_that_hangs_up_mid_stream_still_leaves_the_output_recorded(served):
    url, key, _ = served
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(ask(stream=True, max_tokens=64)).encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b": cogloop is generating" not in received:  # the stream has opened
            more = conn.recv(1024)
            assert more, received
            received += more
        assert received.startswith(b"HTTP/1.1 200")
        assert b"data:" not in received.partition(b"\r\n\r\n")[2]
    # hung up before any of the answer: it is generated, and recorded, all the same
    deadline = time.monotonic() + 60
    while not Output.objects.exists():
        assert time.monotonic() < deadline, "the Output was not recorded"
        time.sleep(0.2)
    assert Output.objects.get().prompt == PROMPT


def test_the_official_openai_client_works_unchanged(served):
    from openai import OpenAI

    url, key, base = served
    # closed at the end: a kept-alive connection holds the server thread and its database session
    with OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        _use_the_client(client, base)


def _use_the_client(client, base):
    from openai import NotFoundError

    models = client.models.list()
    assert [m.id for m in models.data] == [base.name]

    messages = [{"role": "user", "content": PROMPT}]
    completion = client.chat.completions.create(model=base.name, messages=messages, max_tokens=48)
    choice = completion.choices[0]
    assert completion.model == base.name and choice.message.role == "assistant"
    output = Output.objects.get(uuid=choice.cogloop["output_id"])
    assert output.raw_text == choice.message.content
    assert completion.usage.completion_tokens == output.completion_tokens

    group = client.chat.completions.create(
        model="cogloop", messages=messages, max_tokens=32, n=3, temperature=0.6, logprobs=True
    )
    assert len(group.choices) == 3
    assert len({c.cogloop["sample_group"] for c in group.choices}) == 1
    assert Output.objects.filter(sample_group=group.choices[0].cogloop["sample_group"]).count() == 3

    stream = client.chat.completions.create(
        model="cogloop", messages=messages, max_tokens=48, stream=True, stream_options={"include_usage": True}
    )
    text, ids, usage = "", set(), None
    for chunk in stream:
        ids.add(chunk.id)
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.delta.content or ""
            if c.finish_reason:
                streamed_id = c.model_extra["cogloop"]["output_id"]
    assert len(ids) == 1 and text == choice.message.content  # greedy: the same answer
    assert Output.objects.get(uuid=streamed_id).raw_text == text and usage.completion_tokens > 0

    with pytest.raises(NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=messages)
    assert missing.value.code == "model_not_found"


def test_the_gateway_adds_no_query_to_its_service_path(api_client, api_key, base, product_app, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.API_KEY_CACHE_S = 3600.0  # the key is read once (inference.services.api_key_authenticate)
    chat(api_client, ask(model=base.name), api_key)  # the model loads; its version's name is learnt
    for model in ("cogloop", base.name):
        with CaptureQueriesContext(connection) as direct:
            services.chat_completion_create(
                app=product_app, prompt=PROMPT, n=1, max_new_tokens=48, temperature=0.0, top_p=0.95
            )
        with CaptureQueriesContext(connection) as gateway:
            assert chat(api_client, ask(model=model), api_key).status_code == 200
        assert len(gateway) == len(direct), [q["sql"][:60] for q in gateway.captured_queries]
