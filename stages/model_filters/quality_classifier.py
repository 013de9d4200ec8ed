"""Model-based quality filtering with a fastText classifier (train one with
`thresher train-classifier`).

The stage writes the probability of the positive label into a score column
(``quality_score`` by default) and drops documents below ``min_score``. To keep
a share of the corpus instead of a fixed score (e.g. the top 10% per language,
as FineWeb-Edu-style recipes do), leave ``min_score`` at 0 and put a
``keep_top`` stage after this one: it reads the score column and computes the
thresholds over the whole corpus (stages/model_filters/keep_top.py).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator

from pipelines.errors import UserError
from pipelines.fasttext import fasttext_text
from pipelines.io.models import file_sha256, local_model, model_key
from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Filter, FilterParams, Params, iter_docs

np = lazy_module("numpy")
pa = lazy_module("pyarrow")
pc = lazy_module("pyarrow.compute")

Score = Annotated[float, Field(ge=0, le=1)]
LANGUAGE = "language"


class QualityClassifierParams(FilterParams):
    model: str = Field(description="path or URL (s3://, gs://, hf://, https://) of a fastText "
                                   "supervised model (.bin or .ftz), e.g. from "
                                   "`thresher train-classifier`")
    model_sha256: str | None = Field(
        None, description="expected sha256 of `model`; checked before loading (the run's "
                          "manifest records the hash either way)")
    positive_label: str = Field("hq", description="label whose probability is the score "
                                                  "(without __label__)")
    column: str = Field("quality_score", description="column the score is written to")
    min_score: Score | dict[str, Score] = Field(
        0.0, description="drop documents scoring below this (reason low_quality); 0 keeps "
                         "all; a mapping gives a threshold per `language`, with `default` "
                         "for the rest (as langid's min_score)")
    max_chars: int | None = Field(
        None, gt=0, description="score only the first N characters (faster on long pages; "
                                "use the value the model was trained with)")

    @field_validator("positive_label")
    @classmethod
    def _strip_prefix(cls, v: str) -> str:
        return v.removeprefix("__label__")


class QualityClassifier(Filter):
    """fastText classifier score -> `quality_score`; drops `low_quality` below `min_score`."""

    Params: ClassVar[type[Params]] = QualityClassifierParams
    params: QualityClassifierParams
    materialize_params: ClassVar[frozenset[str]] = frozenset({"min_score"})
    columns: ClassVar[tuple[str, ...]] = (TEXT,)

    @property
    def annotations(self) -> dict[str, pa.DataType]:  # type: ignore[override]
        return {self.params.column: "float64"}

    def model_files(self) -> dict[str, str]:
        return {model_key(self.params.model): self._sha256}

    def input_columns(self) -> tuple[str, ...]:
        """The text, and the `language` column when `min_score` is a per-language mapping."""
        return (TEXT, LANGUAGE) if isinstance(self.params.min_score, dict) else (TEXT,)

    def _languages(self, table: pa.Table) -> list[str | None] | None:
        if not isinstance(self.params.min_score, dict):
            return None
        if LANGUAGE not in table.schema.names:
            raise UserError(f"stage {self.name}: a per-language min_score needs the "
                            f"{LANGUAGE!r} column (put langid before it)")
        return table.column(LANGUAGE).to_pylist()

    def setup(self) -> None:
        import fasttext

        want = self.params.model_sha256
        path = local_model(self.params.model, want, what=f"stage {self.name}: model")
        shown = model_key(self.params.model)  # the URL, or the absolute local path
        if not path.is_file():
            raise UserError(f"stage {self.name}: model file {shown} does not exist "
                            "(train one with `thresher train-classifier`)")
        self._sha256 = file_sha256(self.params.model)
        if want is not None and self._sha256 != want.lower():
            raise UserError(f"stage {self.name}: model {shown} has sha256 {self._sha256}, "
                            f"expected {want}")
        fasttext.FastText.eprint = lambda *a, **k: None  # silence its load_model warning
        self._model = fasttext.load_model(str(path))
        self._label = f"__label__{self.params.positive_label}"
        labels = self._model.get_labels()
        if self._label not in labels:
            raise UserError(f"stage {self.name}: model {shown} has no label "
                            f"{self.params.positive_label!r}; its labels: "
                            f"{', '.join(x.removeprefix('__label__') for x in labels)}")

    def scores(self, texts: list[str | None]) -> np.ndarray:
        """Probability of the positive label for each text (one fastText call per batch)."""
        lines = [fasttext_text(t, self.params.max_chars) for t in texts]
        if not lines:
            return np.zeros(0)
        labels, probs = self._model.predict(lines, k=-1)
        out = np.zeros(len(lines))
        want = self._label
        for i, (labs, ps) in enumerate(zip(labels, probs)):
            for lab, p in zip(labs, ps):
                if lab == want:
                    out[i] = min(float(p), 1.0)  # fastText's softmax can exceed 1 by an ulp
                    break
        return out

    def check_batch(self, table: pa.Table) -> tuple[list[str | None], dict[str, list]]:
        texts = [d[TEXT] for d in iter_docs(table, (TEXT,))]
        scores = self.scores(texts)
        return (self._reasons(scores, self._languages(table)),
                {self.params.column: pa.array(scores, pa.float64())})

    def _reasons(self, scores: np.ndarray, langs: list[str | None] | None = None,
                 ) -> list[str | None]:
        ms = self.params.min_score
        if isinstance(ms, dict):
            default = ms.get("default", 0.0)
            ms = np.array([ms.get(x, default) if x is not None else default
                           for x in langs or []], float)
        low = scores < ms
        return ["low_quality" if x else None for x in low.tolist()]

    def decide_from_columns(self, table: pa.Table) -> list[str | None]:
        """`thresher materialize`: the decision at new thresholds from the stored score."""
        col = self.params.column
        if col not in table.schema.names:
            raise UserError(f"stage {self.name}: the run has no {col!r} column to decide from")
        scores = pc.fill_null(table.column(col), np.nan).to_numpy(zero_copy_only=False)
        return self._reasons(scores, self._languages(table))

    def check(self, doc: dict[str, Any]):  # per-document form, used by tests/notebooks
        reasons, cols = self.check_batch(pa.table(
            {TEXT: [doc[TEXT]], **({LANGUAGE: [doc[LANGUAGE]]} if LANGUAGE in doc else {})}))
        return reasons[0], {k: v[0].as_py() for k, v in cols.items()}
