"""Text helpers shared by stage families: word splitters (``words``), English word and
sentence rules (``words_en``, ``sentences``) and the normalization dedup hashes (``normalize``)."""
