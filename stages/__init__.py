"""thresher's stage library. One line per stage: YAML name -> "module:Class".

Modules are imported only when a pipeline uses the stage, so a missing optional
dependency only matters to the pipelines that need it.
"""

REGISTRY: dict[str, str] = {
    "extract": "stages.extraction.extract:Extract",
    "langid": "stages.language.langid:LangId",
    "gopher_quality": "stages.heuristics.gopher:GopherQuality",
    "gopher_repetition": "stages.heuristics.gopher_repetition:GopherRepetition",
    "c4": "stages.heuristics.c4:C4",
    "fineweb_quality": "stages.heuristics.fineweb:FineWebQuality",
    "char_ratio": "stages.heuristics.char_ratio:CharRatioFilter",
    "url_filter": "stages.heuristics.url_filter:UrlFilter",
    "datatrove": "stages.adapters.datatrove_adapter:Datatrove",
    "length": "stages.heuristics.length:LengthFilter",
    "exact_dedup": "stages.dedup.exact_dedup:ExactDedup",
    "minhash_dedup": "stages.dedup.minhash:MinHashDedup",
    "substring_dedup": "stages.dedup.subdoc:SubstringDedup",
    "sentence_span_dedup": "stages.dedup.subdoc:SentenceSpanDedup",
    "paragraph_dedup": "stages.dedup.subdoc:ParagraphDedup",
    "count_tokens": "stages.mixing.tokens:CountTokens",
    "rebalance": "stages.mixing.rebalance:Rebalance",
    "quality_classifier": "stages.model_filters.quality_classifier:QualityClassifier",
    "keep_top": "stages.model_filters.keep_top:KeepTop",
    "pii": "stages.pii.pii:Pii",
    "decontaminate": "stages.decontamination.decontaminate:Decontaminate",
    "tokenize_export": "stages.export.tokenize_export:TokenizeExport",
}

#: The language table of ``tokenizer: auto`` (rows of languages, segmenter, what it is), for
#: the stage reference (``thresher stages``), reached through pipelines.registry.
SEGMENTER_TABLE = "stages.text.segmenters:table_rows"

#: ``thresher`` subcommands the library provides, reached through pipelines.registry.command:
#: name -> {"arguments": "module:function(parser)", "run": "module:function(args) -> int"}.
#: The arguments module must be light: every ``thresher`` invocation builds the parser.
COMMANDS: dict[str, dict[str, str]] = {
    "thresholds": {"arguments": "stages.heuristics.thresholds_cli:add_arguments",
                   "run": "stages.heuristics.derive:run"},
}
