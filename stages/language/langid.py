"""Language identification with a fastText model (lid.176.ftz ships with thresher)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from pipelines.errors import UserError
from pipelines.io.models import file_sha256, local_model, model_key
from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params, iter_docs

pa = lazy_module("pyarrow")

BUNDLED_MODEL = Path(__file__).parents[1] / "models" / "lid.176.ftz"
BUNDLED_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"


Score = Annotated[float, Field(ge=0, le=1)]  # fastText's probability: a higher one never exists


class LangIdParams(FilterParams):
    languages: list[str] = Field(
        [], description="languages kept (fastText labels without __label__, e.g. en, de, zh); "
                        "empty keeps every language")
    min_score: Score | dict[str, Score] = Field(
        0.0, description="minimum score of the top language; a mapping gives a threshold per "
                         "language, with `default` for the rest")
    model: str | None = Field(
        None, description="path or URL (s3://, gs://, hf://, https://) of a fastText LID "
                          "model (lid.176.bin, GlotLID, ...); default: the bundled lid.176.ftz")
    model_sha256: str | None = Field(
        None, description="expected sha256 of `model`; checked before loading")
    max_chars: int | None = Field(
        None, gt=0, description="identify the language from the first N characters only "
                                "(fastText's cost grows with the text); default: the whole text")


class LangId(Filter):
    """Writes `language` and `language_score`; drops `other_language` and `low_score`."""

    Params: ClassVar[type[Params]] = LangIdParams
    params: LangIdParams
    materialize_params: ClassVar[frozenset[str]] = frozenset({"languages", "min_score"})
    annotations: ClassVar[dict[str, pa.DataType]] = {
        "language": "string", "language_score": "float64"}

    def model_path(self) -> str:
        """The model's path or URL as configured (the bundled model's path by default)."""
        return self.params.model or str(BUNDLED_MODEL)

    def expected_sha256(self) -> str | None:
        return self.params.model_sha256 or (None if self.params.model else BUNDLED_SHA256)

    def model_files(self) -> dict[str, str]:
        return {model_key(self.model_path()): self._sha256}

    def setup(self) -> None:
        import fasttext

        want = self.expected_sha256()
        path = local_model(self.model_path(), want, what=f"stage {self.name}: model")
        if not path.is_file():
            raise UserError(f"stage {self.name}: model file {path} does not exist")
        self._sha256 = file_sha256(self.model_path())
        if want is not None and self._sha256 != want.lower():
            raise UserError(f"stage {self.name}: model {path} has sha256 {self._sha256}, "
                            f"expected {want}")
        fasttext.FastText.eprint = lambda *a, **k: None  # silence its load_model warning
        self._model = fasttext.load_model(str(path))

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        n = self.params.max_chars
        texts = [(d[TEXT] or "")[:n].replace("\n", " ") for d in iter_docs(table, (TEXT,))]
        labels, probs = self._model.predict(texts, k=1) if texts else ([], [])
        langs: list[str | None] = []
        scores: list[float | None] = []
        for lab, prob in zip(labels, probs):
            langs.append(lab[0].removeprefix("__label__") if len(lab) else None)
            scores.append(float(prob[0]) if len(prob) else 0.0)
        return self._decide(langs, scores), {"language": langs, "language_score": scores}

    def _decide(self, langs: list[str | None], scores: list[float | None]) -> list[str | None]:
        allowed = set(self.params.languages)
        ms = self.params.min_score
        thresholds = ms if isinstance(ms, dict) else {"default": ms}
        default = thresholds.get("default", 0.0)
        reasons: list[str | None] = []
        for lang, score in zip(langs, scores):
            if allowed and lang not in allowed:
                reasons.append("other_language")
            elif score is None or score < thresholds.get(lang, default):
                reasons.append("low_score")
            else:
                reasons.append(None)
        return reasons

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: the decision at new thresholds from the stored columns."""
        missing = [c for c in self.annotations if c not in table.schema.names]
        if missing:
            raise UserError(f"stage {self.name}: the run has no {', '.join(missing)} column(s) "
                            "to decide from")
        return self._decide(table.column("language").to_pylist(),
                            table.column("language_score").to_pylist())

    def check(self, doc: dict[str, Any]):  # per-document form, used by tests/notebooks
        reasons, cols = self.check_batch(pa.table({TEXT: [doc[TEXT]]}))
        return reasons[0], {k: v[0] for k, v in cols.items()}
