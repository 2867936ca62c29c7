"""The report of a run: a format-neutral document (`document`), figures (`figures`), the human-study sections
(`studies`) and the writer of report.md / report.html (`write`)."""
