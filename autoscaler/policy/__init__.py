"""Policies: the reviewed `policies/*.toml` files, read, checked and watched.

Public surface: `model.Policy` (one pool's policy), `loader.PolicySet` and `loader.load_policies`,
`watch.PolicyWatcher` (reload on change), `importer` (`init --from-supervisor`), and the helpers
the other layers share: `inisafe` (values safe inside a Supervisor INI file), `fields` (the
editable fields of a policy) and `tomlfmt` (TOML writing). Imports nothing above it.
"""
