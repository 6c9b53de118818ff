"""The study layer: validated run parameters, the papermill runner, sweeps, reports, figures and audits."""
