"""The judge adapters: the OpenAI judge against the real fake server through the real SDK,
and the offline rule-based judge."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from adapters.llm.judge import (
    MSG_CONTENT_FILTER,
    MSG_CUT_OFF,
    MSG_INVALID,
    MSG_UNREACHABLE,
    OpenAIJudge,
)
from adapters.llm.offline import OFFLINE_JUDGE_LABEL, OfflineJudge
from bench.fakes.openai_server import (
    CONTENT_FILTER,
    MALFORMED,
    REFUSAL,
    REFUSAL_TEXT,
    TRUNCATED,
    FakeOpenAI,
    minimal_instance,
)
from core.evaluation import (
    Evaluation,
    JudgeRequest,
    JudgeResult,
    check,
    criteria_for,
    judge_messages,
)
from core.tokens import TokenCounter
from tests.fakes.judge_answers import valid_answer

MODEL = "gpt-4o-mini"
DEFAULT_TEMPERATURE_MODEL = "o3-mini"
CRITERIA = criteria_for(["uses a hash map"])
TRANSCRIPT = (  # as core.transcript.judge_transcript writes it
    "[1] Candidate: First, let's plan: the input is a list of ints and a target;\n"
    "    ┆ return the indices of two numbers that sum to the target.\n"
    "[1] Assistant: Use a hash map from value to index.\n"
    "[2] Candidate: Why is the hash map lookup O(1)? What about duplicates as an edge case?\n"
    "[2] Assistant: Average O(1); duplicates work if you check before inserting.\n"
    "[3] Candidate (failed): Then write tests for the empty list, because I want to be sure.\n"
    "[3] Assistant: Here are three tests."
)
TURNS = {  # turn number -> what the judge read of it
    n: "\n".join(TRANSCRIPT.split(f"[{n}]")[1:]).split(f"[{n + 1}]")[0] for n in (1, 2, 3)
}
MESSAGES = judge_messages(
    "Two sum: find two numbers that add up to a target.",
    CRITERIA,
    TRANSCRIPT,
    "prompts: 3; tokens used: 900 of 10000",
)
ANSWER: dict[str, Any] = {
    "criteria": [
        {"criterion": c.key, "score": 3, "evidence": [{"turn": 2, "quote": "Why is the hash"}]}
        for c in CRITERIA
    ],
    "strengths": ["Asks why the lookup is O(1)."],
    "concerns": ["No complexity stated for the whole solution."],
    "follow_up_questions": ["How would you handle a stream of numbers?"],
    "signal": "mixed",
    "rationale": "Careful questions, little independent testing.",
}

ClientFactory = Callable[..., AsyncOpenAI]


def judge_request(
    model: str = MODEL,
    *,
    messages: list[dict[str, str]] | None = None,
    turns: tuple[int, ...] = (1, 2, 3),
    max_completion_tokens: int = 2000,
) -> JudgeRequest:
    return JudgeRequest(
        model=model,
        messages=MESSAGES if messages is None else messages,
        criteria=CRITERIA,
        turn_numbers=turns,
        max_completion_tokens=max_completion_tokens,
    )


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest_asyncio.fixture
async def make_client(fake: FakeOpenAI) -> AsyncIterator[ClientFactory]:
    made: list[AsyncOpenAI] = []

    def factory(
        *, max_retries: int = 0, timeout: float = 5.0, base_url: str | None = None
    ) -> AsyncOpenAI:
        client = AsyncOpenAI(
            api_key="test-key",
            base_url=base_url or fake.base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


@pytest.fixture
def judge(make_client: ClientFactory) -> OpenAIJudge:
    return OpenAIJudge(make_client())


# -- the OpenAI judge: answers --------------------------------------------------------------


async def test_valid_answer_parses_with_usage_as_reported(
    fake: FakeOpenAI, judge: OpenAIJudge
) -> None:
    fake.structured.append(ANSWER)

    result = await judge.evaluate(judge_request())

    counter = TokenCounter(MODEL)
    assert result.error is None
    assert result.evaluation == Evaluation.model_validate(ANSWER)
    assert result.usage is not None
    assert result.usage.prompt_tokens == counter.count_messages(MESSAGES)
    assert result.usage.completion_tokens == counter.count_text(json.dumps(ANSWER))
    assert judge.label is None


async def test_request_is_strict_structured_output_at_temperature_zero(
    fake: FakeOpenAI, judge: OpenAIJudge
) -> None:
    fake.structured.append(ANSWER)

    await judge.evaluate(judge_request(max_completion_tokens=1234))

    [body] = fake.requests
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["name"] == "Evaluation"
    schema = response_format["json_schema"]["schema"]
    assert set(schema["required"]) == set(Evaluation.model_fields)
    assert schema["additionalProperties"] is False
    assert body["temperature"] == 0
    assert body["max_completion_tokens"] == 1234
    assert body["model"] == MODEL
    assert body["messages"] == MESSAGES
    assert body["stream"] is False


async def test_fake_default_answer_is_a_minimal_valid_evaluation(
    fake: FakeOpenAI, judge: OpenAIJudge
) -> None:
    result = await judge.evaluate(judge_request())

    assert result.error is None
    assert result.evaluation == Evaluation(
        criteria=[],
        strengths=[],
        concerns=[],
        follow_up_questions=[],
        signal="strong no",
        rationale="",
    )


async def test_valid_answer_helper_scores_the_requested_rubric(
    fake: FakeOpenAI, judge: OpenAIJudge
) -> None:
    fake.structured_default = valid_answer

    result = await judge.evaluate(judge_request())

    assert result.evaluation is not None
    checked, problem = check(result.evaluation, CRITERIA, TURNS)
    assert problem is None and checked is not None
    assert [s.criterion for s in checked.criteria] == [c.key for c in CRITERIA]
    assert all(s.score == 4 for s in checked.criteria)
    assert all([e.turn for e in s.evidence] == [1] for s in checked.criteria)
    assert checked.signal == "yes"


# -- the OpenAI judge: model failures become errors ------------------------------------------


@pytest.mark.parametrize(
    ("scripted", "error"),
    [
        (REFUSAL, f"the model refused: {REFUSAL_TEXT}"),
        (MALFORMED, MSG_INVALID),
        ({"criteria": "not a list"}, MSG_INVALID),
        (TRUNCATED, MSG_CUT_OFF),
        (CONTENT_FILTER, MSG_CONTENT_FILTER),
    ],
)
async def test_model_failures_become_errors_with_usage(
    fake: FakeOpenAI, judge: OpenAIJudge, scripted: dict[str, Any] | str, error: str
) -> None:
    fake.structured.append(scripted)

    result = await judge.evaluate(judge_request())

    assert result == JudgeResult(None, result.usage, error=error)
    assert result.usage is not None
    assert result.usage.prompt_tokens == TokenCounter(MODEL).count_messages(MESSAGES)
    assert len(fake.requests) == 1  # no retry: that is the caller's policy


async def test_refusal_is_cut_to_200_characters(fake: FakeOpenAI, judge: OpenAIJudge) -> None:
    fake.refusal_text = "I cannot evaluate this transcript. " * 10
    fake.structured_default = lambda body: REFUSAL

    result = await judge.evaluate(judge_request())

    assert result.evaluation is None
    assert result.error == "the model refused: " + fake.refusal_text[:200]


async def test_token_limit_cut_off_takes_usage_from_the_completion(
    fake: FakeOpenAI, judge: OpenAIJudge
) -> None:
    fake.structured.append(ANSWER)

    result = await judge.evaluate(judge_request(max_completion_tokens=7))

    assert result.evaluation is None
    assert result.error == MSG_CUT_OFF
    assert result.usage is not None
    assert result.usage.completion_tokens == 7


# -- the OpenAI judge: API failures become errors --------------------------------------------


async def test_http_500_mentions_the_status(fake: FakeOpenAI, judge: OpenAIJudge) -> None:
    fake.fail_with(500, message="The server is on fire.")

    result = await judge.evaluate(judge_request())

    assert result.evaluation is None and result.usage is None
    assert result.error == "the evaluation API failed (HTTP 500: The server is on fire.)"
    assert len(fake.requests) == 1


async def test_api_key_in_error_is_scrubbed(fake: FakeOpenAI, judge: OpenAIJudge) -> None:
    fake.fail_with(401, message="Incorrect API key provided: sk-proj-abcdef123456.")

    result = await judge.evaluate(judge_request())

    assert result.error is not None
    assert "HTTP 401" in result.error
    assert "abcdef" not in result.error


async def test_other_400_is_not_retried(fake: FakeOpenAI, judge: OpenAIJudge) -> None:
    fake.fail_with(400, message="Something else is wrong.")

    result = await judge.evaluate(judge_request())

    assert result.error == "the evaluation API failed (HTTP 400: Something else is wrong.)"
    assert len(fake.requests) == 1


async def test_unreachable_api(make_client: ClientFactory) -> None:
    async with FakeOpenAI() as gone:
        base_url = gone.base_url
    judge = OpenAIJudge(make_client(base_url=base_url))

    result = await judge.evaluate(judge_request())

    assert result == JudgeResult(None, None, error=MSG_UNREACHABLE)


async def test_timeout_counts_as_unreachable(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.slow_first_byte(5.0)
    judge = OpenAIJudge(make_client(timeout=0.2))

    result = await judge.evaluate(judge_request())

    assert result == JudgeResult(None, None, error=MSG_UNREACHABLE)


# -- the OpenAI judge: models that accept only their default temperature ---------------------


async def test_default_temperature_model_is_retried_without_and_remembered(
    fake: FakeOpenAI, judge: OpenAIJudge
) -> None:
    fake.default_temperature_only.add(DEFAULT_TEMPERATURE_MODEL)
    fake.structured.extend([ANSWER, ANSWER])

    first = await judge.evaluate(judge_request(DEFAULT_TEMPERATURE_MODEL))

    assert first.error is None
    assert first.evaluation == Evaluation.model_validate(ANSWER)
    assert [r.get("temperature") for r in fake.requests] == [0, None]
    assert "temperature" not in fake.requests[1]

    second = await judge.evaluate(judge_request(DEFAULT_TEMPERATURE_MODEL))

    assert second.error is None
    assert len(fake.requests) == 3
    assert "temperature" not in fake.requests[2]

    # Other models still get temperature 0.
    await judge.evaluate(judge_request(MODEL))
    assert fake.requests[3]["temperature"] == 0


async def test_fake_rejects_temperature_like_openai(
    fake: FakeOpenAI, make_client: ClientFactory
) -> None:
    fake.default_temperature_only.add(DEFAULT_TEMPERATURE_MODEL)

    with pytest.raises(openai.BadRequestError) as caught:
        await make_client().chat.completions.create(
            model=DEFAULT_TEMPERATURE_MODEL,
            messages=[{"role": "user", "content": "hi"}],
            temperature=0,
        )

    assert caught.value.body == {
        "message": "Unsupported value: 'temperature' does not support 0 with this model. "
        "Only the default (1) value is supported.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "unsupported_value",
    }


# -- the fake's strict schema checks ---------------------------------------------------------


def _schema_request(schema: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "Thing", "strict": strict, "schema": schema},
    }


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "In context=(), 'additionalProperties' is required to be supplied and to be false.",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "In context=(), 'required' is required to be supplied and to be an array "
            "including every key in properties. Missing 'b'.",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/Inner"}},
                "required": ["a"],
                "additionalProperties": False,
                "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "string"}}}},
            },
            "In context=('$defs', 'Inner'), 'additionalProperties' is required",
        ),
        (
            {"type": "array", "items": {"type": "string"}},
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"array\"'.",
        ),
    ],
)
async def test_fake_rejects_non_strict_schema(
    fake: FakeOpenAI, make_client: ClientFactory, schema: dict[str, Any], problem: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await make_client().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"response_format": _schema_request(schema)},
        )

    assert caught.value.status_code == 400
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == "response_format"
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["message"].startswith(f"Invalid schema for response_format 'Thing': {problem}")


async def test_fake_accepts_non_strict_schema_when_strict_is_off(
    fake: FakeOpenAI, make_client: ClientFactory
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}

    completion = await make_client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"response_format": _schema_request(schema, strict=False)},
    )

    assert json.loads(completion.choices[0].message.content or "") == {"a": ""}


def test_minimal_instance_follows_refs_enums_and_required() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "enum": [3, 4]},
            "s": {"type": "string"},
            "o": {"$ref": "#/$defs/O"},
            "maybe": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
            "optional": {"type": "string"},
        },
        "required": ["n", "s", "o", "maybe"],
        "$defs": {
            "O": {
                "type": "object",
                "properties": {"xs": {"type": "array"}, "f": {"type": "number"}},
                "required": ["xs", "f"],
            }
        },
    }

    assert minimal_instance(schema) == {"n": 3, "s": "", "o": {"xs": [], "f": 0}, "maybe": False}


# -- the offline judge -----------------------------------------------------------------------


async def test_offline_judge_is_deterministic_and_passes_the_checks() -> None:
    judge = OfflineJudge()
    request = judge_request()

    first = await judge.evaluate(request)
    second = await judge.evaluate(request)

    assert judge.label == OFFLINE_JUDGE_LABEL
    assert first == second
    assert first.error is None and first.evaluation is not None
    evaluation = first.evaluation
    Evaluation.model_validate_json(evaluation.model_dump_json())  # schema-valid round trip
    assert [s.criterion for s in evaluation.criteria] == [c.key for c in CRITERIA]
    checked, problem = check(evaluation, CRITERIA, TURNS)
    assert problem is None
    assert checked == evaluation  # no evidence had to be dropped
    cited = {e.turn for s in evaluation.criteria for e in s.evidence}
    assert cited and cited <= set(request.turn_numbers)
    assert "rule" in evaluation.rationale
    assert all("offline rules" in q for q in evaluation.follow_up_questions)


async def test_offline_judge_counts_usage_honestly() -> None:
    result = await OfflineJudge().evaluate(judge_request())

    counter = TokenCounter(MODEL)
    assert result.usage is not None and result.evaluation is not None
    assert result.usage.prompt_tokens == counter.count_messages(MESSAGES) > 0
    assert result.usage.completion_tokens == counter.count_text(result.evaluation.model_dump_json())
    assert result.usage.completion_tokens > 0


async def test_offline_judge_rules_reward_checking_and_the_hint() -> None:
    careless = judge_messages(
        "Two sum.",
        CRITERIA,
        "[1] Candidate: write it\n[1] Assistant: Here it is, with tests for every edge case "
        "and a hash map, because that is O(n).\n[2] Candidate: ok thanks",
        "prompts: 2",
    )

    careful = (await OfflineJudge().evaluate(judge_request())).evaluation
    sloppy = (
        await OfflineJudge().evaluate(judge_request(messages=careless, turns=(1, 2)))
    ).evaluation

    assert careful is not None and sloppy is not None
    scores = {s.criterion: s.score for s in careful.criteria}
    low = {s.criterion: s.score for s in sloppy.criteria}
    assert scores["verification"] > low["verification"] == 1
    hint = CRITERIA[-1].key  # "uses a hash map"
    assert scores[hint] > low[hint] == 1
    assert scores["communication"] > low["communication"]


async def test_offline_judge_cites_only_known_turns() -> None:
    transcript = (
        "[1] Candidate: Why does this fail?\n[1] Assistant: Because of a bug.\n"
        "[7] Candidate: Write tests because I want edge cases covered."
    )
    messages = judge_messages("Two sum.", CRITERIA, transcript, "prompts: 2")

    result = await OfflineJudge().evaluate(judge_request(messages=messages, turns=(1,)))

    assert result.evaluation is not None
    cited = {e.turn for s in result.evaluation.criteria for e in s.evidence}
    assert cited == {1}


async def test_offline_judge_with_no_turns() -> None:
    messages = judge_messages("Two sum.", CRITERIA, "(no prompts)", "prompts: 0")

    result = await OfflineJudge().evaluate(judge_request(messages=messages, turns=()))

    assert result.error is None and result.evaluation is not None
    evaluation = result.evaluation
    checked, problem = check(evaluation, CRITERIA, {})
    assert problem is None and checked is not None
    assert all(s.score == 1 and s.evidence == [] for s in evaluation.criteria)
    assert "no prompts were sent" in evaluation.rationale
    assert evaluation.signal == "strong no"
    assert result.usage is not None and result.usage.completion_tokens > 0


async def test_offline_judge_reads_whole_prompts_without_labels_or_replies() -> None:
    transcript = (
        "[4] Candidate (refused: did not fit the remaining budget): Sort it.\n"
        "Then check the edge cases.\n"
        "[4] Assistant: Why not test it too? Because tests help.\n"
        "[5] Assistant: an orphan reply that asks why"
    )
    messages = judge_messages("Two sum.", CRITERIA, transcript, "prompts: 1")

    result = await OfflineJudge().evaluate(judge_request(messages=messages, turns=(4, 5)))

    assert result.evaluation is not None
    by_key = {s.criterion: s for s in result.evaluation.criteria}
    assert [e.quote for e in by_key["verification"].evidence] == [
        "Sort it.\nThen check the edge cases."
    ]
    assert by_key["verification"].score == 3  # one prompt checks; the replies don't count
    assert by_key["communication"].score == 1  # "because" is only in the reply
