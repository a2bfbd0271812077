"""validation.py: TGI's messages, their order, and the default quirk."""

from __future__ import annotations

import pytest
from fake_engine import make_limits

from pytgi.errors import ValidationError
from pytgi.server.tgi_schemas import GenerateParameters, GenerateRequest
from pytgi.server.validation import (
    check_best_of_bound,
    check_streamable,
    validate_generate,
)

LIMITS = make_limits(max_input_tokens=100, max_total_tokens=200)


def validate(parameters: dict | None, inputs: str = "Hello there", **kwargs: object):
    body: dict = {"inputs": inputs}
    if parameters is not None:
        body["parameters"] = parameters
    return validate_generate(GenerateRequest.model_validate(body), LIMITS, **kwargs)  # type: ignore[arg-type]


def message_of(parameters: dict | None, inputs: str = "Hello there") -> str:
    with pytest.raises(ValidationError) as info:
        validate(parameters, inputs)
    return str(info.value)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"best_of": 2}, "you must use sampling when `best_of` is > 1"),
        ({"temperature": 0.0}, "`temperature` must be strictly positive"),
        ({"temperature": -1}, "`temperature` must be strictly positive"),
        ({"repetition_penalty": 0.0}, "`repetition_penalty` must be strictly positive"),
        ({"frequency_penalty": 2.5}, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
        ({"frequency_penalty": -2.01}, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
        ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
        ({"top_p": 0.0}, "`top_p` must be > 0.0 and < 1.0"),
        ({"typical_p": 1.0}, "`typical_p` must be > 0.0 and < 1.0"),
        ({"top_k": 0}, "`top_k` must be strictly positive"),
        ({"top_k": -3}, "`top_k` must be strictly positive"),
        ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
        ({"best_of": 2, "do_sample": True, "seed": 3}, "`seed` must not be set when `best_of` > 1"),
        ({"top_n_tokens": 6}, "`top_n_tokens` must be >= 0 and <= 5. Given: 6"),
        ({"truncate": 0}, "`truncate` must be strictly positive and less than 100. Given: 0"),
        ({"truncate": 101}, "`truncate` must be strictly positive and less than 100. Given: 101"),
        ({"grammar": {"type": "json", "value": {"type": "object"}}}, "grammar is not valid: Grammar must have a 'properties' field"),
    ],
)
def test_each_rule_message(parameters: dict, message: str) -> None:
    assert message_of(parameters) == message


def test_empty_inputs() -> None:
    assert message_of(None, inputs="") == "`inputs` cannot be empty"


def test_rules_fire_in_tgi_order() -> None:
    """Break every rule at once, then fix them one at a time: each message appears in order."""
    # Any warper counts as sampling, so the warpers are broken only once best_of's rule is passed.
    broken: dict = {
        "best_of": 2,
        "repetition_penalty": 0.0,
        "frequency_penalty": 3.0,
        "max_new_tokens": 0,
        "stop": ["a"] * 5,
        "seed": 1,
        "top_n_tokens": 9,
        "truncate": 0,
        "grammar": {"type": "json", "value": {"type": "object"}},
    }
    fixes = [
        (
            "best_of",
            "you must use sampling",
            {"do_sample": True, "temperature": 0.0, "top_p": 1.0, "typical_p": 1.0, "top_k": 0},
        ),
        ("temperature", "`temperature`", {"temperature": 0.5}),
        ("repetition_penalty", "`repetition_penalty`", {"repetition_penalty": 1.1}),
        ("frequency_penalty", "`frequency_penalty`", {"frequency_penalty": 0.1}),
        ("top_p", "`top_p`", {"top_p": 0.9}),
        ("typical_p", "`typical_p`", {"typical_p": 0.9}),
        ("top_k", "`top_k`", {"top_k": 5}),
        ("max_new_tokens", "`max_new_tokens`", {"max_new_tokens": 5}),
        ("stop", "`stop`", {"stop": ["a"]}),
        ("seed", "`seed`", {"seed": None}),
        ("top_n_tokens", "`top_n_tokens`", {"top_n_tokens": 2}),
        ("inputs", "`inputs` cannot be empty", {}),
        ("truncate", "`truncate`", {"truncate": 10}),
        ("grammar", "grammar is not valid: Grammar must have a 'properties' field", {"grammar": None}),
    ]
    inputs = ""
    for name, expected, fix in fixes:
        assert message_of(broken, inputs=inputs).startswith(expected), name
        if name == "inputs":
            inputs = "Hello"
        broken.update(fix)
    validate(broken, inputs=inputs)


def test_default_quirk_parameters_absent_means_sampling() -> None:
    validated = validate(None)
    assert validated.request.sampling.do_sample is True
    assert validated.details is False


def test_default_quirk_parameters_present_means_greedy() -> None:
    validated = validate({})
    sampling = validated.request.sampling
    assert sampling.do_sample is False and sampling.is_greedy
    assert (sampling.temperature, sampling.top_k, sampling.top_p, sampling.typical_p) == (1.0, 0, 1.0, 1.0)
    assert (sampling.repetition_penalty, sampling.frequency_penalty, sampling.top_n_tokens) == (1.0, 0.0, 0)
    assert validated.details is False and validated.return_full_text is False
    assert validated.request.stopping.max_new_tokens is None
    assert validated.request.decoder_input_details is False


def test_nulls_mean_absent() -> None:
    validated = validate({"do_sample": None, "stop": None, "details": None, "temperature": None})
    assert validated.request.sampling.do_sample is False
    assert validated.request.stopping.stop == ()


def test_fields_reach_the_engine_request() -> None:
    validated = validate(
        {
            "do_sample": True,
            "temperature": 0.7,
            "top_k": 40,
            "top_p": 0.9,
            "typical_p": 0.95,
            "repetition_penalty": 1.2,
            "frequency_penalty": -0.5,
            "seed": 42,
            "top_n_tokens": 3,
            "max_new_tokens": 17,
            "stop": ["\n", "END"],
            "truncate": 50,
            "details": True,
            "decoder_input_details": True,
            "return_full_text": True,
            "adapter_id": "unknown-adapter",
        }
    )
    request = validated.request
    assert request.prompt == "Hello there" and request.add_special_tokens
    assert (
        request.sampling.temperature == 0.7 and request.sampling.top_k == 40 and request.sampling.seed == 42
    )
    assert request.sampling.top_n_tokens == 3 and request.sampling.frequency_penalty == -0.5
    assert request.stopping.max_new_tokens == 17 and request.stopping.stop == ("\n", "END")
    assert request.truncate == 50 and request.decoder_input_details
    assert validated.details and validated.return_full_text
    assert len(request.request_id) == 32 and int(request.request_id, 16) >= 0


def test_request_ids_are_fresh() -> None:
    assert validate({}).request.request_id != validate({}).request.request_id


def test_return_full_text_default_is_the_route_default() -> None:
    assert validate({}, default_return_full_text=True).return_full_text is True
    assert validate({"return_full_text": False}, default_return_full_text=True).return_full_text is False


def test_best_of_bound() -> None:
    assert check_best_of_bound(GenerateParameters(), LIMITS) == 1
    assert check_best_of_bound(GenerateParameters(best_of=0), LIMITS) == 1
    assert check_best_of_bound(GenerateParameters(best_of=2), LIMITS) == 2
    with pytest.raises(ValidationError, match=r"^`best_of` must be > 0 and <= 2\. Given: 3$"):
        check_best_of_bound(GenerateParameters(best_of=3), LIMITS)
    with pytest.raises(ValidationError, match=r"^`best_of` != 1 is not allowed for this endpoint$"):
        check_best_of_bound(GenerateParameters(best_of=2), make_limits(max_best_of=1))


def test_stream_only_rules() -> None:
    check_streamable(GenerateParameters())
    check_streamable(GenerateParameters(best_of=1))
    with pytest.raises(ValidationError, match=r"^`best_of` != 1 is not supported when streaming tokens$"):
        check_streamable(GenerateParameters(best_of=2))
    with pytest.raises(ValidationError, match=r"^`best_of` != 1 is not supported when streaming tokens$"):
        check_streamable(GenerateParameters(best_of=0))
    with pytest.raises(
        ValidationError, match="^`decoder_input_details` == true is not supported when streaming"
    ):
        check_streamable(GenerateParameters(decoder_input_details=True))


def test_ignore_eos_extension_is_off_by_default() -> None:
    assert validate({}).request.stopping.ignore_eos is False
    assert validate({"ignore_eos": True}).request.stopping.ignore_eos is True


def test_watermark_reaches_the_engine_request() -> None:
    assert validate({"watermark": True}).request.sampling.watermark is True
    assert validate({}).request.sampling.watermark is False
