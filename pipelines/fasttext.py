"""fastText conventions shared by ``thresher train-classifier`` and the quality stage.

Training and scoring must feed a model the same text and read its labels the same way,
or a trained model scores differently in the pipeline than on its held-out set.
"""

from __future__ import annotations

from pipelines.lazy import lazy_module

np = lazy_module("numpy")



def fasttext_text(text: str | None, max_chars: int | None = None) -> str:
    """What a fastText model reads: one line (fastText ends an example at a newline;
    NUL would end a word for fastText but not for its vector-file parser)."""
    text = text or ""
    if max_chars is not None:
        text = text[:max_chars]
    return text.replace("\n", " ").replace("\r", " ").replace("\0", " ")


def positive_scores(model, texts: list[str], label: str) -> np.ndarray:
    """Probability of ``label`` for each text (0 if the model never ranks it)."""
    if not texts:
        return np.zeros(0)
    labels, probs = model.predict(texts, k=-1)
    want = f"__label__{label}"
    out = np.zeros(len(texts))
    for i, (labs, ps) in enumerate(zip(labels, probs)):
        for lab, p in zip(labs, ps):
            if lab == want:
                out[i] = min(float(p), 1.0)
                break
    return out
