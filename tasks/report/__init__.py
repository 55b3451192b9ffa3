"""The report room: leaderboard, HTML and markdown renderings, figures, the protocol
comparison, and the Prefect tasks the report flows are made of."""
