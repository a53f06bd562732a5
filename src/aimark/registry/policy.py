"""What the registry keeps, for how long, and how much a lookup must share before it is reported.

Plain constants, importable without the database layer (the CLI shows them as option defaults).
"""

# CN Measures for Labelling AI-Generated Content Art. 9: keep logs of implicit labelling for at least six months.
# The floor is the same six months: a shorter setting would make the service delete logs the Measures require.
MIN_RETENTION_DAYS = 183
DEFAULT_RETENTION_DAYS = MIN_RETENTION_DAYS
# The service purges this often (and once on start).
PURGE_INTERVAL_S = 3600.0
# A near match is reported only when this many tokens of the looked-up text lie in n-grams shared with the
# issued output. Without a floor, five words matched every output containing that common 5-gram and returned
# its id and time to anyone (a membership oracle). 16 tokens is twice the shortest copy winnowing is
# guaranteed to find (NGRAM + WINDOW - 1 = 8), about one sentence (16 characters of CJK text): a caller must
# already hold that much of an output to learn anything about it, and ordinary text rarely shares a run that
# long by chance, while common 5-grams ("at the end of the") recur everywhere. A paragraph with a few edits
# keeps well above it (an edited 31-token message keeps 21-27, depending on the secret). Exact copies of a
# whole output are always reported: the caller holds the entire output. Trusted callers may pass less.
DEFAULT_MIN_EVIDENCE_TOKENS = 16
