"""The leaderboard: collecting records and bundles, the submission gate, views, tables, and
the markdown and HTML pages. It reads what the run stage stored."""
