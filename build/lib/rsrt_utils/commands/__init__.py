"""The command-line shell: each module adds its `rsrt` subcommands and runs them; `rsrt_utils.cli` puts them together.

This is the one layer that composes the others: it chooses where work runs (`where.py`) and imports an extra's
package (Ray, the app, the study) only when its command runs."""
