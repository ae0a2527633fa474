"""Request and response bodies of the inference API (limits come from the server's settings)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from sentiment_hf.data.streamio import BLANK_TEXT, NON_BLANK, is_blank


def _check_text(text: str) -> str:
    if is_blank(text):
        raise ValueError(f"text is {BLANK_TEXT}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "text is not valid Unicode (lone surrogate escape); send UTF-8 text"
        ) from None
    return text


def _exactly_one_of_text_or_texts(schema: dict[str, Any]) -> None:
    """The documented body is what the server accepts: ``text`` xor ``texts``, never null."""
    for name in ("text", "texts"):
        prop = schema["properties"][name]
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            prop.update(variants[0])
        prop.pop("default", None)
    schema["properties"]["text"]["pattern"] = NON_BLANK
    schema["properties"]["texts"]["items"]["pattern"] = NON_BLANK
    schema["oneOf"] = [{"required": ["text"]}, {"required": ["texts"]}]
    schema["examples"] = [{"text": "a gorgeous, witty film"}, {"texts": ["great film", "awful"]}]


class _PredictBase(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_of_text_or_texts)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("text", "texts"):
                if name in data and data[name] is None:
                    raise ValueError(f'"{name}" is null; send a string, or leave the field out')
        return data

    @field_validator("text", check_fields=False)
    @classmethod
    def _text_ok(cls, value: str | None) -> str | None:
        return None if value is None else _check_text(value)

    @field_validator("texts", check_fields=False)
    @classmethod
    def _texts_ok(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for i, text in enumerate(value):
            try:
                _check_text(text)
            except ValueError as exc:
                raise ValueError(f"texts[{i}]: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> _PredictBase:
        if (self.text is None) == (self.texts is None):  # type: ignore[attr-defined]
            raise ValueError('send exactly one of "text" (a string) or "texts" (a list of strings)')
        return self

    def items(self) -> list[str]:
        """The texts to classify, in order."""
        return [self.text] if self.text is not None else list(self.texts)  # type: ignore[attr-defined]


def predict_request_model(max_text_chars: int, max_texts_per_request: int) -> type[_PredictBase]:
    """The ``POST /predict`` body schema with this server's limits built in (they show in /docs)."""
    text_type = Annotated[str, Field(max_length=max_text_chars)]
    return create_model(
        "PredictRequest",
        __base__=_PredictBase,
        text=(
            text_type | None,
            Field(None, description=f"One text (at most {max_text_chars} characters)."),
        ),
        texts=(
            Annotated[list[text_type], Field(min_length=1, max_length=max_texts_per_request)]
            | None,
            Field(
                None,
                description=f"Up to {max_texts_per_request} texts, "
                f"each at most {max_text_chars} characters.",
            ),
        ),
    )


def _explain_schema(schema: dict[str, Any]) -> None:
    schema["properties"]["text"]["pattern"] = NON_BLANK
    schema["examples"] = [{"text": "a gorgeous, witty film"}]


class _ExplainBase(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_explain_schema)

    @field_validator("text", check_fields=False)
    @classmethod
    def _text_ok(cls, value: str) -> str:
        return _check_text(value)


def explain_request_model(max_text_chars: int) -> type[_ExplainBase]:
    """The ``POST /explain`` body schema: one text of at most ``max_text_chars`` characters."""
    return create_model(
        "ExplainRequest",
        __base__=_ExplainBase,
        text=(
            Annotated[str, Field(max_length=max_text_chars)],
            Field(description=f"The text to explain (at most {max_text_chars} characters)."),
        ),
    )


class WordScore(BaseModel):
    """One whitespace-separated word of the text (``text[start:end]``) and its contribution."""

    word: str
    start: int
    end: int
    attribution: float = Field(
        description="Change of the explained label's probability this word accounts for: "
        "positive towards the label, negative against it."
    )


class ExplainResponse(BaseModel):
    """Per-word integrated-gradients attributions of one prediction."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    label: str
    score: float = Field(description="Probability of the predicted label (as /predict says).")
    abstained: bool
    target: str = Field(description="The label explained (the one chosen when abstaining).")
    words: list[WordScore]
    delta: float = Field(description="Convergence error: sum of attributions minus the change.")
    baseline_score: float = Field(description="Probability of `target` for the baseline input.")
    truncated: bool = Field(description="True when the text was cut to the model's max tokens.")
    n_steps: int
    baseline: str


class LabelScore(BaseModel):
    """The prediction for one text."""

    label: str = Field(
        description="The predicted label; for a multi-label model the most probable of "
        '`labels` ("" when no label reaches its threshold).'
    )
    labels: list[str] = Field(
        default_factory=list,
        description="Every label given to the text: `[label]` for a single-label model (`[]` "
        "when abstaining); for a multi-label model each label whose probability reaches its "
        "threshold, most probable first (possibly none).",
    )
    score: float = Field(
        description="Probability of the predicted label (multi-label: the highest probability "
        "of any label)."
    )
    probabilities: dict[str, float] = Field(
        description="Probability of every label (multi-label: independent sigmoids)."
    )
    abstained: bool = Field(
        False,
        description="True when the model's decision policy abstains: `label` is then "
        "'uncertain' and `score` the probability of the label it would have chosen.",
    )


class PredictResponse(BaseModel):
    """Predictions in input order, with the model that made them."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    backend: str
    multi_label: bool = Field(
        False, description="True for a multi-label model: read `labels`, not `label`."
    )
    predictions: list[LabelScore]


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: one readable line, plus field errors for validation failures."""

    detail: str
    errors: list[dict[str, Any]] | None = None
