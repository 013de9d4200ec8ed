"""thresher's stage library. One line per stage: YAML name -> "module:Class".

Modules are imported only when a pipeline uses the stage, so a missing optional
dependency only matters to the pipelines that need it.
"""

REGISTRY: dict[str, str] = {
    "extract": "stages.extract:Extract",
    "langid": "stages.langid:LangId",
    "gopher_quality": "stages.gopher:GopherQuality",
    "length": "stages.length:LengthFilter",
    "exact_dedup": "stages.exact_dedup:ExactDedup",
    "minhash_dedup": "stages.minhash:MinHashDedup",
    "count_tokens": "stages.tokens:CountTokens",
    "rebalance": "stages.rebalance:Rebalance",
    "quality_classifier": "stages.quality_classifier:QualityClassifier",
    "keep_top": "stages.keep_top:KeepTop",
}
