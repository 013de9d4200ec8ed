"""thresher's stage library. One line per stage: YAML name -> "module:Class".

Modules are imported only when a pipeline uses the stage, so a missing optional
dependency only matters to the pipelines that need it.
"""

REGISTRY: dict[str, str] = {
    "extract": "stages.extract:Extract",
    "langid": "stages.langid:LangId",
    "gopher_quality": "stages.gopher:GopherQuality",
    "gopher_repetition": "stages.gopher_repetition:GopherRepetition",
    "c4": "stages.c4:C4",
    "fineweb_quality": "stages.fineweb:FineWebQuality",
    "char_ratio": "stages.char_ratio:CharRatioFilter",
    "url_filter": "stages.url_filter:UrlFilter",
    "datatrove": "stages.datatrove_adapter:Datatrove",
    "length": "stages.length:LengthFilter",
    "exact_dedup": "stages.exact_dedup:ExactDedup",
    "minhash_dedup": "stages.minhash:MinHashDedup",
    "count_tokens": "stages.tokens:CountTokens",
    "rebalance": "stages.rebalance:Rebalance",
    "quality_classifier": "stages.quality_classifier:QualityClassifier",
    "keep_top": "stages.keep_top:KeepTop",
}
