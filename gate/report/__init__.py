"""report.json (schema, validated on write and read) and its renderings: report.md, the PR
comment and job summary (Jinja, sandboxed), the terminal."""
