"""A site's own priority: mail about a part no shipped email mentions, which the team calls High.

The shipped model does not read "the Quillon ledger sync is late" as High; a team that
does teaches it by recategorizing. The retraining unit tests and the daemon's e2e test
share these texts.
"""

from __future__ import annotations

# (subject, body) of the team's cases, as customers wrote them.
LEDGER_LAGS = [
    ("Quillon ledger sync late again", "The Quillon ledger sync ran two hours late tonight."),
    ("Ledger sync to Quillon is behind", "The sync to the Quillon ledger is behind by 40 minutes."),
    ("Quillon postings delayed", "Postings reached Quillon only at 11:00; check the ledger sync?"),
    ("Slow ledger sync", "The ledger sync into Quillon is slow today, batches arrive late."),
    ("Quillon sync lag", "We see lag on the Quillon sync: entries show up an hour late."),
    ("Late journal entries in Quillon", "Journal entries arrive late in Quillon, the sync waits."),
    ("Ledger sync delay", "The Quillon ledger sync was delayed this morning by 90 minutes."),
    ("Quillon: postings arrive late", "Postings arrive late in Quillon; the ledger sync is slow."),
]
# The same trouble, worded as none of the above.
NEW_LEDGER_LAG = (
    "Quillon ledger sync behind schedule",
    "The ledger sync to Quillon is behind again.",
)
