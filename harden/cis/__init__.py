"""The CIS side: the one-exec probe, the declarative catalogues and their evaluation, cluster checks, results and reports."""
