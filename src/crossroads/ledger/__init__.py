"""The usage ledger: one record per request, priced, written off the request path in batches."""
